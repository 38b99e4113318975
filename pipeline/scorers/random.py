"""Uniform random scores: with any selector this is random pruning, the baseline every method
must beat (and, with KD, often fails to; seed 000)."""
from __future__ import annotations

import numpy as np

from pipeline.scorers import SCORERS, Scorer
from pipeline.seeding import numpy_generator


@SCORERS.register("random")
class RandomScore(Scorer):
    draws_at_random = True

    def score(self, ctx):
        return uniform_scores(len(ctx.data.train), ctx.seed)

    @staticmethod
    def redraw(sample_index: np.ndarray, seed: int) -> np.ndarray:
        """The scores of the samples ``sample_index`` (canonical, ascending) that ``score`` gives
        with ``seed``: the generator's doubles come in sample order, so a prefix is the same draw."""
        return uniform_scores(int(sample_index.max()) + 1, seed)[sample_index]


def uniform_scores(n: int, seed: int) -> np.ndarray:
    return numpy_generator(seed, "random-score").random(n)
