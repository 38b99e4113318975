"""Learning-rate schedules, as functions of the share of training done (so that epochs of varying
length, as with InfoBatch, keep the schedule)."""
from __future__ import annotations

import math


def one_cycle_lr(progress: float, peak: float) -> float:
    """One-cycle learning rate at ``progress`` in [0, 1] of training: cosine warm-up from peak/25
    over the first 25 %, then cosine annealing to peak/25e4 (the shape of torch's OneCycleLR, as
    a function of progress so that epochs of varying length, as with InfoBatch, keep the schedule)."""
    start, end, warmup = peak / 25, peak / 25e4, 0.25
    if progress < warmup:
        low, high, t = start, peak, progress / warmup
    else:
        low, high, t = peak, end, (progress - warmup) / (1 - warmup)
    return high + (low - high) * (1 + math.cos(math.pi * min(t, 1.0))) / 2
