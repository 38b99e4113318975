"""Decoupled knowledge distillation (Zhao et al., CVPR 2022): the KD term split into a target-class
part (TCKD: binary distribution [p_y, 1 - p_y]) and a non-target part (NCKD: the distribution
over the other classes, renormalised), weighted separately and added to the labels' CE:

    L = CE(z_s, y) + w(epoch) * T^2 * (tckd_weight * KL(b_t || b_s) + nckd_weight * KL(p^_t || p^_s))

w ramps linearly from 1/warmup_epochs at the first epoch to 1 (as the reference code's
``min(epoch / warmup, 1)`` with 1-based epochs). Defaults are the paper's CIFAR-100 ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.losses import LOSSES, DistillLoss


def _binary_log_probs(log_p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log [p_y, 1 - p_y] from log-probabilities, without computing 1 - p_y (stable)."""
    target = log_p.gather(1, labels[:, None])
    rest = log_p.scatter(1, labels[:, None], float("-inf")).logsumexp(1, keepdim=True)
    return torch.cat([target, rest], dim=1)


def _without_target(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The logits of the C - 1 non-target classes of each row, in class order."""
    keep = torch.ones_like(logits, dtype=torch.bool).scatter(1, labels[:, None], False)
    return logits[keep].view(len(logits), -1)


def _kl(log_p_t: torch.Tensor, log_p_s: torch.Tensor) -> torch.Tensor:
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="none").sum(1)


@LOSSES.register("dkd")
class DecoupledKD(DistillLoss):
    needs_teacher = True

    @dataclass(frozen=True)
    class Params:
        tckd_weight: float = 1.0  # weight of the target-class term (the paper's alpha)
        nckd_weight: float = 8.0  # weight of the non-target term (the paper's beta; CIFAR-100: 8)
        temperature: float = 4.0  # T of both softmaxes; both terms are scaled by T^2
        warmup_epochs: int = 20  # epochs over which the DKD weight ramps linearly up to 1 (0: none)

        def __post_init__(self):
            for name in ("tckd_weight", "nckd_weight", "warmup_epochs"):
                if getattr(self, name) < 0:
                    raise UserError(f"dkd {name} must be >= 0, got {getattr(self, name)}")
            if not self.temperature > 0:
                raise UserError(f"dkd temperature must be > 0, got {self.temperature}")

    def __init__(self, params: Params | None = None):
        super().__init__(params)
        p = self.params
        self.tckd_weight, self.nckd_weight, self.temperature = p.tckd_weight, p.nckd_weight, p.temperature
        self.warmup_epochs = p.warmup_epochs
        self.ramp = 1.0

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.ramp = min((epoch + 1) / self.warmup_epochs, 1.0) if self.warmup_epochs else 1.0

    def forward(self, student_logits, labels, teacher_logits, student_features=None, teacher_features=None):
        t = self.temperature
        z_s, z_t = student_logits / t, teacher_logits.detach() / t
        log_p_s, log_p_t = F.log_softmax(z_s, 1), F.log_softmax(z_t, 1)
        tckd = _kl(_binary_log_probs(log_p_t, labels), _binary_log_probs(log_p_s, labels))
        nckd = _kl(F.log_softmax(_without_target(z_t, labels), 1), F.log_softmax(_without_target(z_s, labels), 1))
        weight = self.ramp * t**2
        return {
            "ce": F.cross_entropy(student_logits, labels, reduction="none"),
            "tckd": weight * self.tckd_weight * tckd,
            "nckd": weight * self.nckd_weight * nckd,
        }
