"""Cross-entropy of the trained full-data teacher on the un-augmented sample, CE(z_t, y): the
difficulty MDSLR (seed 001) ranks samples by."""
from __future__ import annotations

import torch.nn.functional as F

from pipeline.scorers import SCORERS, Scorer


@SCORERS.register("teacher_ce")
class TeacherCE(Scorer):
    needs = frozenset({"teacher_logits"})

    def score(self, ctx):
        return F.cross_entropy(ctx.teacher_logits.double(), ctx.data.train.labels, reduction="none").numpy()
