"""One cycle (the shape of torch's OneCycleLR): cosine warm-up from base/25 over the first 25 % of
training, then cosine annealing to base/25e4, as a function of the share of training done."""
from __future__ import annotations

import math

from pipeline.schedules import SCHEDULES, Schedule


def one_cycle_lr(progress: float, peak: float) -> float:
    start, end, warmup = peak / 25, peak / 25e4, 0.25
    if progress < warmup:
        low, high, t = start, peak, progress / warmup
    else:
        low, high, t = peak, end, (progress - warmup) / (1 - warmup)
    return high + (low - high) * (1 + math.cos(math.pi * min(t, 1.0))) / 2


@SCHEDULES.register("onecycle")
class OneCycle(Schedule):
    def rate(self, base, clock):
        return one_cycle_lr(clock.progress, base)
