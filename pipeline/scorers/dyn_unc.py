"""Dynamic uncertainty (He et al., CVPR 2024 workshops, "Large-scale Dataset Pruning with Dynamic
Uncertainty"): over every window of J consecutive epochs of the teacher's training, the standard
deviation of the sample's true-class probability P_t(y|x) (recorded by
``pipeline.dynamics.Dynamics`` at each presentation), averaged over the windows:

    U_k(x) = sqrt( sum_{j=0}^{J-1} (P_{k+j} - mean_k)^2 / (J - 1) ),   U(x) = mean_{k=1}^{K-J+1} U_k(x)

over the K recorded epochs (``epochs``: the first K only). Higher = more uncertain, which the paper
keeps (``hardest``). The released code multiplies by 10, which changes no ranking; its ImageNet
script also leaves out the window that ends at the last epoch, the paper's formula (here) does not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dynamics import per_epoch, windows
from pipeline.errors import UserError
from pipeline.scorers import SCORERS, Scorer


def window_std(probs: np.ndarray, window: int) -> np.ndarray:
    """(num_samples, K - J + 1): the sample standard deviation (ddof 1) of each window of ``probs``."""
    return windows(probs, window).std(axis=2, ddof=1)


def dynamic_uncertainty(probs: np.ndarray, window: int) -> np.ndarray:
    """``probs``: (num_samples, K) true-class probabilities; U(x) per sample (float64)."""
    return window_std(np.asarray(probs, dtype=np.float64), window).mean(axis=1)


@dataclass(frozen=True)
class WindowParams:
    window: int = 10  # J, epochs per window (the papers' 10)
    epochs: int | None = None  # the first K epochs of the teacher's training; None: all it recorded

    def __post_init__(self):
        if self.window < 2:
            raise UserError(f"window must be at least 2 epochs (a standard deviation), got {self.window}")
        if self.epochs is not None and self.epochs < self.window:
            raise UserError(f"epochs ({self.epochs}) must be at least the window ({self.window})")


@SCORERS.register("dyn_unc")
class DynamicUncertainty(Scorer):
    needs = frozenset({"dynamics"})
    Params = WindowParams

    def score(self, ctx):
        scored = ctx.data.train_indices.numpy()  # the teacher never saw the held-out samples
        probs = per_epoch(ctx.dynamics, "true_prob", scored, len(ctx.data.train), self.name, self.params.epochs)
        if probs.shape[1] < self.params.window:
            raise UserError(f"{self.name} window {self.params.window} is longer than the teacher's "
                            f"{probs.shape[1]} recorded epochs")
        scores = np.full(len(ctx.data.train), np.nan)
        scores[scored] = dynamic_uncertainty(probs[scored], self.params.window)
        return scores
