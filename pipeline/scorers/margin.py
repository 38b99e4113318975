"""Margin uncertainty of the trained full-data teacher on the un-augmented sample (or a seeded
augmented view: ``view``): the gap p_(1) - p_(2) between its two largest softmax probabilities,
negated so that higher = harder, -(p_(1) - p_(2)) in [-1, 0]. (Not AUM's logit margin: this one is
on probabilities and ignores the label.)"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.scorers import SCORERS, TeacherOutputScorer


def margin_score(logits: torch.Tensor) -> torch.Tensor:
    top2 = F.softmax(logits.double(), dim=1).topk(2, dim=1).values
    return -(top2[:, 0] - top2[:, 1])


@SCORERS.register("margin")
class Margin(TeacherOutputScorer):
    def score(self, ctx):
        return margin_score(self.logits(ctx)).numpy()
