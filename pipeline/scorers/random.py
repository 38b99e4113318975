"""Uniform random scores: with any selector this is random pruning, the baseline every method
must beat (and, with KD, often fails to; seed 000)."""
from __future__ import annotations

from pipeline.scorers import SCORERS, Scorer
from pipeline.seeding import numpy_generator


@SCORERS.register("random")
class RandomScore(Scorer):
    def score(self, ctx):
        return numpy_generator(ctx.seed, "random-score").random(len(ctx.data.train))
