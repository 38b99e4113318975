"""Selector registry: turn per-sample scores (higher = harder) into the kept subset.

A selector is a function ``pick(scores, indices, k, rng, params) -> Picked`` over one group of
samples: one class when the budget is class-balanced (the default), else the whole set. It returns
the kept indices and the number of tied samples its cut-offs split (``Picked``). Its parameters, if
any, are a frozen dataclass registered with it (``@SELECTORS.register("stratified", Params)``;
without one it gets ``NoParams``), and ``params`` is an instance of it (``SELECTORS.params`` checks
a config entry into one). Grouping, budgets and the checks on what a selector returns live here,
once, so every selector gets the exact budgets of ``budget.py``.

Ties: every selector that orders samples by score (hardest, easiest, medium, and stratified's hard
cutoff) has ``OrderParams`` (its one field, ``ties``) among its parameters and orders through
``order_by_score``. ``ties: random`` (default) orders equal scores by a permutation drawn from the
selection's seeded generator; ``ties: index`` by ascending sample index (the only order before
this option). The permutation is drawn only for a group that has equal scores, so scores without
ties give the same subset in both modes and leave the generator untouched. d2 takes ``ties`` too,
for the equal values of its greedy pass (its module says how).

Embeddings: a selector that picks by geometry (herding, kcenter; d2 by geometry and score) sets
``needs_embeddings = True`` on its function; ``select_subset`` then passes it, and only it, the
keyword ``embeddings``: one row per sample of the group (a float tensor, on the device the
distances are to be computed on). Every other selector keeps the plain signature.

Adding a selector: one file in this package with ``@SELECTORS.register("name")`` and its import below.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.params import NoParams
from pipeline.registry import Registry
from pipeline.selectors.budget import class_budgets, total_budget

SELECTORS: Registry = Registry("selector")
NO_PARAMS = NoParams()
TIES = ("random", "index")


@dataclass(frozen=True)
class OrderParams:
    """The parameters of every selector that orders samples by score (a selector with more
    parameters subclasses it)."""

    ties: str = "random"  # order of equal scores: random (seeded permutation) or index (ascending sample index)

    def __post_init__(self):
        if not isinstance(self.ties, str) or self.ties not in TIES:
            raise UserError(f"selector ties must be one of {', '.join(TIES)}, got {self.ties!r}")


ORDER_PARAMS = OrderParams()


class Picked(NamedTuple):
    """What a selector returns for one group."""

    kept: np.ndarray  # the kept sample indices, a subset of the group's
    ties_at_cutoff: int = 0  # samples whose score is equal to that of a sample on the other side of a cut-off


@dataclass(frozen=True, eq=False)
class Selection:
    """What ``select_subset`` returns."""

    kept: np.ndarray  # sorted canonical indices of the kept samples
    ties_at_cutoff: int  # ``Picked.ties_at_cutoff`` summed over the groups (classes)
    params: Any  # the selector's Params as used, defaults filled in


def draws_at_random(name: str) -> bool:
    """Whether selector ``name``'s subset is a seeded random draw (``random``), which
    selection.random_draws: per_student_seed redraws for every student seed."""
    return getattr(SELECTORS.get(name), "draws_at_random", False)


def needs_embeddings(name: str) -> bool:
    """Whether selector ``name`` picks from the scoring teacher's embeddings (herding, kcenter, d2),
    so that its job must be given them."""
    return getattr(SELECTORS.get(name), "needs_embeddings", False)


def second_scorer_key(name: str) -> str | None:
    """The parameter of selector ``name`` that names a second configured scorer, whose table its
    subset job reads too and passes it as ``cutoff_scores`` (``stratified``'s ``cutoff_scorer``,
    ``dual_beta``'s ``mean_scorer``); None for a selector without one."""
    return getattr(SELECTORS.get(name), "second_scorer", None)


def second_scorer(name: str, params) -> str | None:
    """The second scorer that selector ``name``'s ``params`` (a config mapping or its Params) name, or None."""
    key = second_scorer_key(name)
    if key is None:
        return None
    return params.get(key) if isinstance(params, Mapping) else getattr(params, key)


def order_by_score(scores: np.ndarray, indices: np.ndarray, descending: bool, ties: str,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """``indices`` sorted by score (highest first when ``descending``), equal scores in ascending
    sample index (``ties="index"``) or in the order of ``rng.permutation(len(indices))``
    (``ties="random"``), drawn only when some scores are equal."""
    scores, indices = np.asarray(scores, dtype=np.float64), np.asarray(indices)
    if ties not in TIES:
        raise ValueError(f"internal error: ties must be one of {TIES}, got {ties!r}")
    tiebreak = indices
    if ties == "random" and len(np.unique(scores)) < len(scores):
        tiebreak = rng.permutation(len(indices))
    return indices[np.lexsort((tiebreak, -scores if descending else scores))]


def split_ties(scores: np.ndarray, side: np.ndarray) -> int:
    """Samples whose score value occurs on both sides of a partition of one group (``side`` a
    boolean mask): the tied samples that a cut-off through an ordering by score splits, i.e.
    whose side the tie order, not the score, decided. 0 when the cut falls between distinct scores."""
    scores, side = np.asarray(scores, dtype=np.float64), np.asarray(side, dtype=bool)
    both = np.intersect1d(scores[side], scores[~side])
    return int(np.isin(scores, both).sum())


def keep_window(scores: np.ndarray, indices: np.ndarray, descending: bool, start: int, stop: int,
                params: OrderParams, rng: np.random.Generator) -> Picked:
    """Keep the positions ``[start, stop)`` of the group ordered by ``order_by_score``, with the
    ties that the window's two ends split."""
    scores, indices = np.asarray(scores, dtype=np.float64), np.asarray(indices)
    kept = order_by_score(scores, indices, descending, params.ties, rng)[start:stop]
    return Picked(kept, split_ties(scores, np.isin(indices, kept)))


def _check_picked(selector: str, picked, group: np.ndarray, k: int) -> Picked:
    """A selector that returns anything but a Picked (TypeError), the wrong number of indices,
    duplicates or foreign indices is a bug (ValueError, not UserError, so it keeps its traceback)."""
    if not isinstance(picked, Picked):
        raise TypeError(f"internal error: selector {selector!r} returned a {type(picked).__name__}, not a Picked")
    kept = np.asarray(picked.kept)
    if len(kept) != k:
        raise ValueError(f"internal error: selector {selector!r} returned {len(kept)} indices for a budget of {k}")
    if len(kept) and kept.dtype.kind not in "iu":
        raise ValueError(f"internal error: selector {selector!r} returned indices of dtype {kept.dtype}")
    if len(np.unique(kept)) != k:
        raise ValueError(f"internal error: selector {selector!r} returned duplicate indices")
    if not np.isin(kept, group).all():
        raise ValueError(f"internal error: selector {selector!r} returned indices outside its group")
    ties = picked.ties_at_cutoff
    if isinstance(ties, bool) or not isinstance(ties, (int, np.integer)) or not 0 <= ties <= len(group):
        raise ValueError(f"internal error: selector {selector!r} returned ties_at_cutoff {ties!r}")
    return Picked(kept.astype(group.dtype, copy=False), int(ties))


def select_subset(
    selector: str,
    scores: np.ndarray,
    labels: np.ndarray,
    keep_fraction: float,
    rng: np.random.Generator,
    class_balanced: bool = True,
    params: Mapping | None = None,
    cutoff_scores: np.ndarray | None = None,
    embeddings=None,
) -> Selection:
    """The kept samples (sorted canonical indices), the tied samples the cut-offs split (summed over
    the classes when class-balanced) and the Params used. ``scores[i]`` and ``labels[i]`` belong to
    sample ``i``; ``params`` are the selector's parameters, as a config entry (unknown names are a
    UserError) or its Params; ``cutoff_scores[i]``, another scorer's score of sample ``i``, for a
    selector whose parameters name a second scorer (``second_scorer``: ``stratified``'s cutoff,
    ``dual_beta``'s prediction means); ``embeddings[i]``, sample ``i``'s embedding (a 2-D torch
    tensor), for a selector that ``needs_embeddings``."""
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
    if (second_scorer(selector, params) is None) != (cutoff_scores is None):
        key = second_scorer_key(selector)
        raise UserError(f"selector {selector!r}: a second scorer's scores are given exactly when its {key} names one"
                        if key else f"selector {selector!r} reads no second scorer's scores, but some were given")
    wants_embeddings = getattr(pick, "needs_embeddings", False)
    if wants_embeddings and embeddings is None:
        raise UserError(f"selector {selector!r} selects by the scoring teacher's embeddings, but none were given")
    if not wants_embeddings and embeddings is not None:
        raise UserError(f"selector {selector!r}: embeddings are given exactly to the selectors that pick by them")
    if wants_embeddings and (embeddings.dim() != 2 or len(embeddings) != len(scores)):
        raise ValueError(f"internal error: embeddings of shape {tuple(embeddings.shape)} for {len(scores)} scores")
    indices = np.arange(len(scores))
    if class_balanced:
        budgets = class_budgets(labels, keep_fraction)
        groups = [(c, indices[labels == c], k) for c, k in budgets.items()]
    else:
        groups = [(None, indices, total_budget(len(scores), keep_fraction))]
    picked = []
    for c, group, k in groups:
        if k > len(group):
            where = f"of class {c}, which has only {len(group)}" if class_balanced else f"of the {len(group)} samples"
            raise UserError(f"selector {selector!r} asked for {k} samples {where}")
        extra = {} if cutoff_scores is None else {"cutoff_scores": np.asarray(cutoff_scores, dtype=np.float64)[group]}
        if wants_embeddings:
            extra["embeddings"] = embeddings[torch.from_numpy(group)]
        picked.append(_check_picked(selector, pick(scores[group], group, k, rng, params, **extra), group, k))
    kept = np.sort(np.concatenate([p.kept for p in picked]))
    return Selection(kept, sum(p.ties_at_cutoff for p in picked), params)


from pipeline.selectors import d2, dual_beta, easiest, hardest, herding, kcenter, medium, random, stratified  # noqa: E402,F401
