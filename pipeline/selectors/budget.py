"""Exact subset budgets (METHODS.md): k = round(f * N), half rounded up; class-balanced budgets
k_c = floor(f * n_c) plus one for the classes with the largest remainders f * n_c - floor(f * n_c)
(ties to the lower class) until sum_c k_c = k. Computed in exact rational arithmetic so that
0.1 * 30 is 3, not 3.0000000000000004."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def _exact(keep_fraction: float) -> Fraction:
    return Fraction(str(keep_fraction))  # the decimal the user wrote, not its binary neighbour


def total_budget(num_samples: int, keep_fraction: float) -> int:
    return math.floor(_exact(keep_fraction) * num_samples + Fraction(1, 2))


def class_budgets(labels: np.ndarray, keep_fraction: float) -> dict[int, int]:
    f = _exact(keep_fraction)
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    shares = [f * int(n) for n in counts]
    budgets = [math.floor(s) for s in shares]
    extra = total_budget(int(counts.sum()), keep_fraction) - sum(budgets)
    by_remainder = sorted(range(len(classes)), key=lambda i: (-(shares[i] - budgets[i]), i))
    for i in by_remainder[:extra]:
        budgets[i] += 1
    return {int(c): k for c, k in zip(classes, budgets)}
