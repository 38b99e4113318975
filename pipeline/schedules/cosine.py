"""Cosine annealing from the base rate to ``min_lr`` over the whole run, stepped every iteration
(DeepCore: CosineAnnealingLR over len(loader) x epochs iterations)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.errors import UserError
from pipeline.schedules import SCHEDULES, Schedule, WarmupParams


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    @dataclass(frozen=True)
    class Params(WarmupParams):
        min_lr: float = 0.0  # the rate reached at the end of training

        def __post_init__(self):
            super().__post_init__()
            if self.min_lr < 0:
                raise UserError(f"cosine min_lr must be >= 0, got {self.min_lr}")

    def rate(self, base, clock):
        return self.params.min_lr + (base - self.params.min_lr) * (1 + math.cos(math.pi * clock.progress)) / 2
