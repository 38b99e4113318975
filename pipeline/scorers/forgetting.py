"""Forgetting events (Toneva et al. 2019), counted from the correctness of every sample at each
presentation during the teacher's full-data training (recorded by ``pipeline.dynamics.Dynamics``).

An event is a presentation at which the sample is misclassified after being classified correctly
at its previous presentation. Samples never classified correctly are the hardest: by default
(Toneva) they score the number of presentations, above any reachable count; ``never_learned:
zero`` gives them 0 instead (DeepCore's convention).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError
from pipeline.scorers import SCORERS, Scorer


def forgetting_counts(correct: np.ndarray, never_learned: str = "max") -> np.ndarray:
    """``correct``: bool (num_samples, num_presentations) in presentation order."""
    correct = np.asarray(correct, dtype=bool)
    events = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1)
    unlearned = ~correct.any(axis=1)
    scores = events.astype(np.float64)
    scores[unlearned] = correct.shape[1] if never_learned == "max" else 0.0
    return scores


@SCORERS.register("forgetting")
class Forgetting(Scorer):
    needs = frozenset({"dynamics"})

    @dataclass(frozen=True)
    class Params:
        never_learned: str = "max"  # "max" (Toneva et al.) or "zero" (DeepCore)

        def __post_init__(self):
            if self.never_learned not in ("max", "zero"):
                raise UserError(f"forgetting never_learned must be 'max' or 'zero', got {self.never_learned!r}")

    def score(self, ctx):
        scored = ctx.data.train_indices.numpy()  # the teacher never saw the held-out samples
        correct = ctx.dynamics.pivot(index="sample_index", columns="epoch", values="correct").reindex(index=scored)
        if correct.isna().any().any():
            raise UserError("forgetting needs every sample's correctness at every epoch of the teacher's training")
        scores = np.full(len(ctx.data.train), np.nan)
        scores[scored] = forgetting_counts(correct.to_numpy(dtype=bool), self.params.never_learned)
        return scores
