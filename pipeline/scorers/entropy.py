"""Predictive entropy of the trained full-data teacher on the un-augmented sample (or a seeded
augmented view: ``view``), H(p) = -sum_k p_k ln p_k with p = softmax(z_t) (natural log): an
uncertainty score, higher = harder, in [0, ln K]."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.scorers import SCORERS, TeacherOutputScorer


def entropy_score(logits: torch.Tensor) -> torch.Tensor:
    log_probs = F.log_softmax(logits.double(), dim=1)
    return -(log_probs.exp() * log_probs).sum(1)


@SCORERS.register("entropy")
class Entropy(TeacherOutputScorer):
    def score(self, ctx):
        return entropy_score(self.logits(ctx)).numpy()
