"""DUAL, Difficulty and Uncertainty-Aware Lightweight score (Cho et al., ICML 2025, "Lightweight
Dataset Pruning without Full Training via Example Difficulty and Prediction Uncertainty"): over
the windows of J consecutive epochs among the first T of the teacher's training, the standard
deviation of the true-class probability (prediction uncertainty, as dynamic uncertainty) times one
minus its mean (difficulty), averaged over the windows:

    DUAL_T(x) = mean_{k=1}^{T-J+1} U_k(x) (1 - mean_k(x))

with U_k and mean_k the sample standard deviation (ddof 1) and mean of P_t(y|x) over window k.
Defaults T = 30, J = 10 (the paper's CIFAR setting). Higher = kept. The released code multiplies by
10, which changes no ranking. ``hardest`` keeps the highest (DUAL without the sampling).

The paper pairs the score with a pruning-ratio-adaptive Beta sampling of the kept samples: the
selector ``dual_beta`` (``pipeline.selectors.dual_beta``), which also reads each sample's prediction
mean from the scorer ``dual_difficulty`` (``pipeline.scorers.dual_difficulty``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dynamics import per_epoch, windows
from pipeline.errors import UserError
from pipeline.scorers import SCORERS, Scorer
from pipeline.scorers.dyn_unc import window_std


def dual(probs: np.ndarray, window: int) -> np.ndarray:
    """``probs``: (num_samples, T) true-class probabilities of the first T epochs; DUAL per sample."""
    probs = np.asarray(probs, dtype=np.float64)
    return (window_std(probs, window) * (1.0 - windows(probs, window).mean(axis=2))).mean(axis=1)


@SCORERS.register("dual")
class DUAL(Scorer):
    needs = frozenset({"dynamics"})

    @dataclass(frozen=True)
    class Params:
        window: int = 10  # J
        epochs: int = 30  # T: the first T epochs of the teacher's training

        def __post_init__(self):
            if self.window < 2:
                raise UserError(f"dual window must be at least 2 epochs (a standard deviation), got {self.window}")
            if self.epochs < self.window:
                raise UserError(f"dual epochs ({self.epochs}) must be at least its window ({self.window})")

    def score(self, ctx):
        scored = ctx.data.train_indices.numpy()  # the teacher never saw the held-out samples
        probs = per_epoch(ctx.dynamics, "true_prob", scored, len(ctx.data.train), self.name, self.params.epochs)
        scores = np.full(len(ctx.data.train), np.nan)
        scores[scored] = dual(probs[scored], self.params.window)
        return scores
