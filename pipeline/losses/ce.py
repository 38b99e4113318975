"""Plain training on the labels (the ``alpha = 0`` end of Hinton KD)."""
from __future__ import annotations

import torch.nn.functional as F

from pipeline.losses import LOSSES, DistillLoss


@LOSSES.register("ce")
class CrossEntropy(DistillLoss):
    def forward(self, student_logits, labels, teacher_logits=None, student_features=None, teacher_features=None):
        return {"ce": F.cross_entropy(student_logits, labels, reduction="none")}
