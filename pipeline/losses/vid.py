"""Variational information distillation (Ahn et al., CVPR 2019) on intermediate features, added
to Hinton KD:

    L = (1 - alpha) * CE + alpha * T^2 * KL + vid_weight * sum over layer pairs of L_vid
    L_vid = mean over elements of 0.5 * ((mu(f_s) - f_t)^2 / sigma^2 + log sigma^2)

mu is a regressor of three 1x1 convolutions with ReLUs between (student channels -> teacher
channels -> teacher channels -> teacher channels), sigma^2 = softplus(w) + 1e-5 a learned
per-channel variance initialised to 5, both trained with the student (as RepDistiller). Features
are the outputs of the named layers, taken with forward hooks; where the two maps differ in size
the larger is average-pooled to the smaller. alpha = 0 (default) is RepDistiller's CE + VID.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.features import LayerOutputs
from pipeline.losses import LOSSES, DistillLoss
from pipeline.losses.kd import HintonKD, check_kd_params

INITIAL_VARIANCE, MIN_VARIANCE = 5.0, 1e-5


class VariationalRegressor(nn.Module):
    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        c = teacher_channels
        self.mean = nn.Sequential(
            nn.Conv2d(student_channels, c, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c, c, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c, c, 1, bias=False),
        )
        # softplus(w) + MIN_VARIANCE = INITIAL_VARIANCE at initialisation
        w = math.log(math.expm1(INITIAL_VARIANCE - MIN_VARIANCE))
        self.raw_variance = nn.Parameter(torch.full((c,), w))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Per-sample L_vid."""
        student, teacher = _as_map(student), _as_map(teacher.detach())
        size = min(student.shape[-2], teacher.shape[-2]), min(student.shape[-1], teacher.shape[-1])
        student, teacher = _pool_to(student, size), _pool_to(teacher, size)
        variance = (F.softplus(self.raw_variance) + MIN_VARIANCE)[None, :, None, None]
        mean = self.mean(student.float())
        nll = 0.5 * ((mean - teacher.float()) ** 2 / variance + variance.log())
        return nll.flatten(1).mean(1)


def _as_map(features: torch.Tensor) -> torch.Tensor:
    return features[:, :, None, None] if features.dim() == 2 else features


def _pool_to(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return features if tuple(features.shape[-2:]) == size else F.adaptive_avg_pool2d(features, size)


@LOSSES.register("vid")
class VID(DistillLoss):
    needs_teacher = True

    @dataclass(frozen=True)
    class Params:
        alpha: float = 0.0  # weight of Hinton KD's KL term, as in kd (0: RepDistiller's CE + VID)
        temperature: float = 4.0  # T of the KD term
        vid_weight: float = 1.0  # weight of the summed VID terms
        # the student and teacher layers whose outputs are paired, one pair per position
        # (module names as in ``named_modules``, e.g. features.6)
        student_layers: Sequence[str] = ()
        teacher_layers: Sequence[str] = ()

        def __post_init__(self):
            student_layers, teacher_layers = self.student_layers, self.teacher_layers
            if not student_layers or len(student_layers) != len(teacher_layers):
                raise UserError(f"vid needs student_layers and teacher_layers of the same non-zero length, "
                                f"got {list(student_layers)} and {list(teacher_layers)}")
            if self.vid_weight < 0:
                raise UserError(f"vid vid_weight must be >= 0, got {self.vid_weight}")
            check_kd_params(self.alpha, self.temperature)

    def __init__(self, params: Params | None = None):
        super().__init__(params)
        p = self.params
        self.kd = HintonKD(HintonKD.Params(p.alpha, p.temperature))
        self.vid_weight = p.vid_weight
        self.student_layers, self.teacher_layers = tuple(p.student_layers), tuple(p.teacher_layers)
        self.regressors = nn.ModuleList()

    @torch.no_grad()
    def prepare(self, student, teacher, example):
        modes = student.training, teacher.training
        student.eval(), teacher.eval()
        with LayerOutputs(student, self.student_layers) as s, LayerOutputs(teacher, self.teacher_layers) as t:
            student(example), teacher(example)
        student.train(modes[0]), teacher.train(modes[1])
        self.regressors = nn.ModuleList(
            VariationalRegressor(_as_map(s.outputs[a]).shape[1], _as_map(t.outputs[b]).shape[1])
            for a, b in zip(self.student_layers, self.teacher_layers)
        ).to(example.device)

    def forward(self, student_logits, labels, teacher_logits, student_features=None, teacher_features=None):
        if len(self.regressors) != len(self.student_layers):
            raise RuntimeError("VID.prepare must run before the first step")
        vid = sum(
            regressor(student_features[a], teacher_features[b])
            for regressor, a, b in zip(self.regressors, self.student_layers, self.teacher_layers)
        )
        return {**self.kd(student_logits, labels, teacher_logits), "vid": self.vid_weight * vid}
