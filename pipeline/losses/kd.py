"""Hinton et al. (2015) knowledge distillation, in the convention of the data-pruning KD paper
(seed 000) and prune-then-distill:

    L = (1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

with the KL summed over classes (per sample; the batch mean of it is the usual "batchmean" KL).
"""
from __future__ import annotations

import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.losses import LOSSES, DistillLoss


def kd_kl(student_logits, teacher_logits, temperature: float):
    """T^2 * KL(p_t || p_s) at temperature T, per sample."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / temperature, dim=1)  # the teacher is never trained
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="none").sum(1) * temperature**2


@LOSSES.register("kd")
class HintonKD(DistillLoss):
    needs_teacher = True

    def __init__(self, alpha: float = 0.9, temperature: float = 4.0):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"kd alpha must be in [0, 1], got {alpha}")
        if not temperature > 0:
            raise UserError(f"kd temperature must be > 0, got {temperature}")
        self.alpha, self.temperature = alpha, temperature

    def forward(self, student_logits, labels, teacher_logits):
        return {
            "ce": (1 - self.alpha) * F.cross_entropy(student_logits, labels, reduction="none"),
            "kd": self.alpha * kd_kl(student_logits, teacher_logits, self.temperature),
        }
