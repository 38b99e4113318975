"""Hinton et al. (2015) knowledge distillation, in the convention of the data-pruning KD paper
(seed 000) and prune-then-distill:

    L = (1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

with the KL summed over classes (per sample; the batch mean of it is the usual "batchmean" KL).

``reshape: true`` applies MDSLR's logit reshaping to the teacher before the KL term: each teacher
logit vector is rescaled so its std across classes equals s[y], the mean of that std over all
training samples of the sample's class, computed once from the full-data teacher before pruning
(``class_logit_std``; the teacher stage stores it next to the teacher).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.losses import LOSSES, DistillLoss


def kd_kl(student_logits, teacher_logits, temperature: float):
    """T^2 * KL(p_t || p_s) at temperature T, per sample."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / temperature, dim=1)  # the teacher is never trained
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="none").sum(1) * temperature**2


def class_logit_std(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """s[c]: the mean over the samples of class c of the (unbiased) std of their logit vector
    across classes (MDSLR)."""
    per_sample = logits.float().std(dim=1)
    totals = torch.zeros(num_classes).index_add_(0, labels, per_sample)
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise UserError(f"class-wise teacher statistics need every class; classes without samples: "
                        f"{torch.nonzero(counts == 0).flatten().tolist()}")
    return totals / counts


def reshape_logits(teacher_logits: torch.Tensor, labels: torch.Tensor, class_std: torch.Tensor) -> torch.Tensor:
    """z_t' = z_t / std(z_t) * s[y] (no mean-centring). A constant logit vector (std 0, which
    METHODS leaves undefined) stays as it is, rather than becoming NaN."""
    std = teacher_logits.std(dim=1, keepdim=True)
    return torch.where(std > 0, teacher_logits / std.clamp_min(torch.finfo(std.dtype).tiny) * class_std[labels, None], teacher_logits)


def check_kd_params(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"kd alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise UserError(f"kd temperature must be > 0, got {temperature}")


@LOSSES.register("kd")
class HintonKD(DistillLoss):
    needs_teacher = True

    @dataclass(frozen=True)
    class Params:
        alpha: float = 0.9  # weight of the KD term; 1 - alpha weighs the labels' CE (0: labels only, 1: pure KD)
        temperature: float = 4.0  # T, softening both softmaxes; the KD term is scaled by T^2
        reshape: bool = False  # MDSLR's logit reshaping of the teacher (needs the teacher's class statistics)

        def __post_init__(self):
            check_kd_params(self.alpha, self.temperature)

    def __init__(self, params: Params | None = None):
        super().__init__(params)
        p = self.params
        self.alpha, self.temperature, self.reshape = p.alpha, p.temperature, bool(p.reshape)
        self.needs_teacher_class_std = self.reshape
        self.register_buffer("class_std", None)

    def set_teacher_class_std(self, class_std: torch.Tensor) -> None:
        self.class_std = class_std

    def forward(self, student_logits, labels, teacher_logits, student_features=None, teacher_features=None):
        if self.reshape:
            if self.class_std is None:
                raise UserError("kd with reshape: true needs the teacher's class statistics (set_teacher_class_std)")
            teacher_logits = reshape_logits(teacher_logits, labels, self.class_std.to(teacher_logits.dtype))
        return {
            "ce": (1 - self.alpha) * F.cross_entropy(student_logits, labels, reduction="none"),
            "kd": self.alpha * kd_kl(student_logits, teacher_logits, self.temperature),
        }
