"""Cross-entropy of the trained full-data teacher on the un-augmented sample, CE(z_t, y): the
difficulty MDSLR (seed 001) ranks samples by."""
from __future__ import annotations

import torch.nn.functional as F

from pipeline.scorers import SCORERS, Scorer
from pipeline.train import predict


@SCORERS.register("teacher_ce")
class TeacherCE(Scorer):
    def score(self, ctx):
        logits = predict(ctx.teacher(), ctx.data.train, ctx.batch_size, ctx.device)
        return F.cross_entropy(logits.double(), ctx.data.train.labels, reduction="none").numpy()
