"""Cross-entropy of the trained full-data teacher on the un-augmented sample (or a seeded augmented
view: ``view``), CE(z_t, y): the difficulty MDSLR (seed 001) ranks samples by."""
from __future__ import annotations

import torch.nn.functional as F

from pipeline.scorers import SCORERS, TeacherOutputScorer


@SCORERS.register("teacher_ce")
class TeacherCE(TeacherOutputScorer):
    def score(self, ctx):
        return F.cross_entropy(self.logits(ctx).double(), ctx.data.train.labels, reduction="none").numpy()
