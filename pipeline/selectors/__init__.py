"""Selector registry: turn per-sample scores (higher = harder) into the kept subset.

A selector is a function ``pick(scores, indices, k, rng) -> kept indices`` over one group of
samples: one class when the budget is class-balanced (the default), else the whole set. Grouping
and budgets live here, once, so every selector gets the exact budgets of ``budget.py``.

Adding a selector: one file in this package with ``@SELECTORS.register("name")`` and its import below.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import UserError
from pipeline.registry import Registry
from pipeline.selectors.budget import class_budgets, total_budget

SELECTORS: Registry = Registry("selector")


def order_by_score(scores: np.ndarray, indices: np.ndarray, descending: bool) -> np.ndarray:
    """``indices`` sorted by score, ties broken by ascending sample index (so equal scores always
    give the same subset)."""
    return indices[np.lexsort((indices, -scores if descending else scores))]


def select_subset(
    selector: str,
    scores: np.ndarray,
    labels: np.ndarray,
    keep_fraction: float,
    rng: np.random.Generator,
    class_balanced: bool = True,
) -> np.ndarray:
    """Sorted canonical indices of the kept samples. ``scores[i]`` and ``labels[i]`` belong to
    sample ``i``."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if not 0 < keep_fraction <= 1:
        raise UserError(f"keep fraction must be in (0, 1], got {keep_fraction}")
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise UserError(f"{len(bad)} scores are NaN or infinite, first at sample indices {bad[:5].tolist()}")
    if total_budget(len(scores), keep_fraction) == 0:
        raise UserError(f"keep fraction {keep_fraction} of {len(scores)} samples keeps none; allowed: f >= {0.5 / len(scores):.2g}")
    pick = SELECTORS.get(selector)
    indices = np.arange(len(scores))
    if class_balanced:
        budgets = class_budgets(labels, keep_fraction)
        groups = [(indices[labels == c], k) for c, k in budgets.items()]
    else:
        groups = [(indices, total_budget(len(scores), keep_fraction))]
    kept = [pick(scores[group], group, k, rng) for group, k in groups]
    return np.sort(np.concatenate(kept))


from pipeline.selectors import easiest, hardest, random  # noqa: E402,F401
