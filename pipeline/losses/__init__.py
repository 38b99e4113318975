"""Loss registry. A loss is an ``nn.Module`` built from its config parameters; its forward takes
``(student_logits, labels, teacher_logits, student_features, teacher_features)`` and returns a
dict of named, already weighted PER-SAMPLE terms (each of shape (batch,)); the training loss is
the batch mean of their sum. Per sample, so that sample weights (InfoBatch) apply to every loss,
and per-epoch metrics record every term. Features are the outputs of the layers the loss names in
``student_layers`` / ``teacher_layers``, taken with forward hooks (``pipeline.features``).

Adding a loss: one file in this package with ``@LOSSES.register("name")`` and its import below.
Its nested frozen dataclass ``Params`` declares its config parameters (types, defaults, a comment
each; values checked in ``__post_init__``), registered with it; the loss is built from an instance
of it (``build_loss`` checks the keyword arguments into one with ``LOSSES.params``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from pipeline.registry import Registry

LOSSES: Registry = Registry("loss")


class DistillLoss(nn.Module):
    @dataclass(frozen=True)
    class Params:
        pass

    needs_teacher: bool = False
    # the full-data teacher's per-class logit std (MDSLR reshaping), given by set_teacher_class_std
    needs_teacher_class_std: bool = False
    student_layers: tuple[str, ...] = ()
    teacher_layers: tuple[str, ...] = ()

    def __init__(self, params: Any = None):
        """``params``: this loss's Params (its defaults when None)."""
        super().__init__()
        self.params = self.Params() if params is None else params

    def prepare(self, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor) -> None:
        """Build learned parts whose shapes depend on the models (called once before training,
        with one input batch); their parameters are trained with the student's."""

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (0-based), for losses with a schedule."""


def build_loss(name: str, **params) -> DistillLoss:
    return LOSSES.get(name)(LOSSES.params(name, params))


from pipeline.losses import ce, dkd, kd, vid  # noqa: E402,F401
