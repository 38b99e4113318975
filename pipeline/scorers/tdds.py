"""Temporal Dual-Depth Scoring (Zhang et al., CVPR 2024, "Spanning Training Progress: Temporal
Dual-Depth Scoring (TDDS) for Enhanced Dataset Pruning"), as its released code
(``importance_evaluation.py``) computes it over the first T epochs of the teacher's training:

- first depth, each epoch's contribution of a sample, the projected gradient approximated by the
  change of its prediction from the previous epoch (``prob_change``, recorded by
  ``pipeline.dynamics.Dynamics``): d_t = sum_c |p_t,c (log(p_t,c + 1e-8) - log(p_t-1,c + 1e-8))|,
  an absolute-value KL divergence between consecutive epochs' softmax outputs;
- second depth, its variability in each window k of J consecutive epochs (J - 1 changes):
  R_k = sqrt( sum_j (d_j - mean_k d)^2 ), the L2 norm of the deviations (the paper's variance,
  as the code takes it: sqrt(J - 1) times the population standard deviation);
- the windows weighted by an exponential moving average that favours the late ones:
  TDDS(x) = sum_{k=0}^{T-J} beta (1 - beta)^{T-J-k} R_k, beta = ``decay`` (0.9).

Higher = kept (the paper keeps the highest scores: ``hardest``). Defaults: J = ``window`` = 10 and
beta = 0.9 (the code's); T = ``epochs``, None: every recorded epoch (the paper sets T per dataset).
Epoch 1 has no change (no previous epoch): window 1 is epochs 1 .. J, changes 2 .. J.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dynamics import per_epoch, windows
from pipeline.errors import UserError
from pipeline.scorers import SCORERS, Scorer


def tdds(changes: np.ndarray, window: int, decay: float = 0.9) -> np.ndarray:
    """``changes``: (num_samples, T - 1), d_t for epochs 2 .. T; TDDS per sample (float64)."""
    changes = np.asarray(changes, dtype=np.float64)
    within = windows(changes, window - 1)  # window k: the J - 1 changes of epochs k+1 .. k+J
    spread = np.sqrt(((within - within.mean(axis=2, keepdims=True)) ** 2).sum(axis=2))
    count = spread.shape[1]  # T - J + 1
    weights = decay * (1.0 - decay) ** np.arange(count - 1, -1, -1, dtype=np.float64)
    return spread @ weights


@SCORERS.register("tdds")
class TDDS(Scorer):
    needs = frozenset({"dynamics"})

    @dataclass(frozen=True)
    class Params:
        window: int = 10  # J, epochs per window (J - 1 changes)
        epochs: int | None = None  # T: the first T epochs of the teacher's training; None: all it recorded
        decay: float = 0.9  # beta of the moving average

        def __post_init__(self):
            if self.window < 2:
                raise UserError(f"tdds window must be at least 2 epochs (one change), got {self.window}")
            if self.epochs is not None and self.epochs < self.window:
                raise UserError(f"tdds epochs ({self.epochs}) must be at least its window ({self.window})")
            if not 0.0 < self.decay < 1.0:
                raise UserError(f"tdds decay must be in (0, 1), got {self.decay}")

    def score(self, ctx):
        scored = ctx.data.train_indices.numpy()  # the teacher never saw the held-out samples
        changes = per_epoch(ctx.dynamics, "prob_change", scored, len(ctx.data.train), self.name, self.params.epochs,
                            first=2)
        if changes.shape[1] + 1 < self.params.window:
            raise UserError(f"tdds window {self.params.window} is longer than the teacher's "
                            f"{changes.shape[1] + 1} recorded epochs")
        scores = np.full(len(ctx.data.train), np.nan)
        scores[scored] = tdds(changes[scored], self.params.window, self.params.decay)
        return scores
