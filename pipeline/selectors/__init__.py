"""Selector registry: turn per-sample scores (higher = harder) into the kept subset.

A selector is a function ``pick(scores, indices, k, rng, params) -> kept indices`` over one
group of samples: one class when the budget is class-balanced (the default), else the whole set.
Its parameters, if any, are a frozen dataclass registered with it
(``@SELECTORS.register("stratified", Params)``; without one it gets ``NoParams``), and ``params``
is an instance of it (``SELECTORS.params`` checks a config entry into one). Grouping, budgets and
the checks on what a selector returns live here, once, so every selector gets the exact budgets of
``budget.py``.

Adding a selector: one file in this package with ``@SELECTORS.register("name")`` and its import below.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.errors import UserError
from pipeline.params import NoParams
from pipeline.registry import Registry
from pipeline.selectors.budget import class_budgets, total_budget

SELECTORS: Registry = Registry("selector")
NO_PARAMS = NoParams()


def order_by_score(scores: np.ndarray, indices: np.ndarray, descending: bool) -> np.ndarray:
    """``indices`` sorted by score, ties broken by ascending sample index (so equal scores always
    give the same subset)."""
    return indices[np.lexsort((indices, -scores if descending else scores))]


def _check_picked(selector: str, kept, group: np.ndarray, k: int) -> np.ndarray:
    """A selector that returns the wrong number of indices, duplicates or foreign indices is a bug
    (ValueError, not UserError, so it keeps its traceback)."""
    kept = np.asarray(kept)
    if len(kept) != k:
        raise ValueError(f"internal error: selector {selector!r} returned {len(kept)} indices for a budget of {k}")
    if len(kept) and kept.dtype.kind not in "iu":
        raise ValueError(f"internal error: selector {selector!r} returned indices of dtype {kept.dtype}")
    if len(np.unique(kept)) != k:
        raise ValueError(f"internal error: selector {selector!r} returned duplicate indices")
    if not np.isin(kept, group).all():
        raise ValueError(f"internal error: selector {selector!r} returned indices outside its group")
    return kept.astype(group.dtype, copy=False)


def select_subset(
    selector: str,
    scores: np.ndarray,
    labels: np.ndarray,
    keep_fraction: float,
    rng: np.random.Generator,
    class_balanced: bool = True,
    params: Mapping | None = None,
) -> np.ndarray:
    """Sorted canonical indices of the kept samples. ``scores[i]`` and ``labels[i]`` belong to
    sample ``i``; ``params`` are the selector's parameters, as a config entry (unknown names are a
    UserError) or its Params."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if not 0 < keep_fraction <= 1:
        raise UserError(f"keep fraction must be in (0, 1], got {keep_fraction}")
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise UserError(f"{len(bad)} scores are NaN or infinite, first at sample indices {bad[:5].tolist()}")
    if total_budget(len(scores), keep_fraction) == 0:
        raise UserError(f"keep fraction {keep_fraction} of {len(scores)} samples keeps none; allowed: f >= {0.5 / len(scores):.2g}")
    pick = SELECTORS.get(selector)
    params = SELECTORS.params(selector, params)
    indices = np.arange(len(scores))
    if class_balanced:
        budgets = class_budgets(labels, keep_fraction)
        groups = [(c, indices[labels == c], k) for c, k in budgets.items()]
    else:
        groups = [(None, indices, total_budget(len(scores), keep_fraction))]
    kept = []
    for c, group, k in groups:
        if k > len(group):
            where = f"of class {c}, which has only {len(group)}" if class_balanced else f"of the {len(group)} samples"
            raise UserError(f"selector {selector!r} asked for {k} samples {where}")
        kept.append(_check_picked(selector, pick(scores[group], group, k, rng, params), group, k))
    return np.sort(np.concatenate(kept))


from pipeline.selectors import easiest, hardest, medium, random, stratified  # noqa: E402,F401
