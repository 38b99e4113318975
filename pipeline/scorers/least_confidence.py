"""Least confidence of the trained full-data teacher on the un-augmented sample (or a seeded
augmented view: ``view``), 1 - max_k p_k with p = softmax(z_t): an uncertainty score, higher =
harder, in [0, 1 - 1/K]."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.scorers import SCORERS, TeacherOutputScorer


def least_confidence_score(logits: torch.Tensor) -> torch.Tensor:
    return 1 - F.softmax(logits.double(), dim=1).max(1).values


@SCORERS.register("least_confidence")
class LeastConfidence(TeacherOutputScorer):
    def score(self, ctx):
        return least_confidence_score(self.logits(ctx)).numpy()
