"""Loss registry. A loss is an ``nn.Module`` built from its config parameters; its forward takes
``(student_logits, labels, teacher_logits)`` and returns a dict of named, already weighted
PER-SAMPLE terms (each of shape (batch,)); the training loss is the batch mean of their sum. Per
sample, so that sample weights (InfoBatch) apply to every loss, and per-epoch metrics record
every term.

Adding a loss: one file in this package with ``@LOSSES.register("name")`` and its import below.
"""
from __future__ import annotations

import torch.nn as nn

from pipeline.registry import Registry

LOSSES: Registry = Registry("loss")


class DistillLoss(nn.Module):
    needs_teacher: bool = False


def build_loss(name: str, **params) -> DistillLoss:
    return LOSSES.get(name)(**params)


from pipeline.losses import ce, kd  # noqa: E402,F401
