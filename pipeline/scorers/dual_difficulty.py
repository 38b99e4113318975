"""DUAL's prediction mean as a score (Cho et al., ICML 2025): one minus the mean true-class
probability over the first T epochs of the teacher's training (higher = harder),

    dual_difficulty(x) = 1 - mean_{t=1}^{T} P_t(y|x)

DUAL's difficulty term over all T epochs rather than per window; default T = 30, as the released
code's ``target_probs[:30]``. The selector ``dual_beta`` samples by it (its ``mean_scorer``): give
it the same ``epochs`` as ``dual``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dynamics import per_epoch
from pipeline.errors import UserError
from pipeline.scorers import SCORERS, Scorer


@SCORERS.register("dual_difficulty")
class DUALDifficulty(Scorer):
    needs = frozenset({"dynamics"})

    @dataclass(frozen=True)
    class Params:
        epochs: int = 30  # T: the first T epochs of the teacher's training (as dual's)

        def __post_init__(self):
            if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
                raise UserError(f"dual_difficulty epochs must be an integer >= 1, got {self.epochs!r}")

    def score(self, ctx):
        scored = ctx.data.train_indices.numpy()  # the teacher never saw the held-out samples
        probs = per_epoch(ctx.dynamics, "true_prob", scored, len(ctx.data.train), self.name, self.params.epochs)
        scores = np.full(len(ctx.data.train), np.nan)
        scores[scored] = 1.0 - probs[scored].mean(axis=1)
        return scores
