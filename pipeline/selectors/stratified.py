"""Coverage-centric coreset selection (CCS, Zheng et al., ICLR 2023): drop the hardest samples,
then sample evenly across the score range so that the subset covers easy and hard regions alike.

Within the group of n samples (one class when class-balanced):

1. Hard cutoff: drop the floor(beta * n) hardest samples (highest scores, or with ``cutoff_scorer``
   the highest scores of that other scorer, as CCS's code cuts by AUM; equal scores ordered
   as ``ties`` says, as ``hardest`` orders them; beta read as the decimal written, so 0.29 * 100
   is 29). If fewer than k samples remain, that is a UserError. ``ties_at_cutoff`` counts the tied
   samples this cutoff splits (the strata below are sampled at random by design, so the ties
   they split are not counted); with beta = 0 there is no cutoff, no tie order is drawn, and
   ``ties`` changes nothing.
2. Split the remaining scores' range [min, max] into ``strata`` bins of equal width, bin j holding
   the scores in [min + j * w, min + (j + 1) * w); the max score belongs to the last bin. If all
   remaining scores are equal there is one bin.
3. Budget (CCS's ``bin_allocate``): visit the non-empty strata from the smallest to the largest
   (equal sizes in ascending score order); each takes min(its size, floor(remaining budget /
   remaining strata)), the remaining strata counting itself.
4. In ascending score order, each stratum draws its share uniformly at random without replacement
   with ``rng.choice`` from its sample indices in ascending order.

Leftover budget after step 3: none can remain, so nothing is redistributed. If every stratum is
taken whole, the pass takes all remaining samples, which are >= k. Otherwise let stratum i be the
first to take floor(B / r) < its size, with B = r * a + q (0 <= q < r): the next share is a, or
a + 1 exactly when q = r - 1, and stays a or a + 1 from then on, while every later stratum has at
least a + 1 samples (strata are visited by size). So every later stratum takes its floor share and
the last one, with r = 1, takes all that is left. This is the reference's own behaviour: its later
(larger) strata absorb the floor remainders. The reference loops over all 50 bins, empty ones
included, but those sort first and take 0, which is the same as skipping them.

Deviations from the reference code, where it is ambiguous or off: the max score is placed in the
last bin exactly (the reference stretches the range by max * 1.0001, which shrinks it when max < 0),
equal-sized strata are visited in ascending score order (the reference's ``torch.argsort`` is not
stable), and the cutoff and stratification run per group (the reference cuts over the whole set).
"""
import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral, Real

import numpy as np

from pipeline.errors import UserError
from pipeline.selectors import SELECTORS, OrderParams, Picked, order_by_score, split_ties


def stratum_of(scores: np.ndarray, strata: int) -> np.ndarray:
    """Bin number in [0, strata) of each score: equal-width bins over [min, max], max in the last."""
    lo, hi = scores.min(), scores.max()
    if hi == lo:
        return np.zeros(len(scores), dtype=np.int64)
    bins = np.floor((scores - lo) / (hi - lo) * strata).astype(np.int64)
    return np.clip(bins, 0, strata - 1)


def allocate(sizes: np.ndarray, budget: int) -> np.ndarray:
    """CCS's per-stratum budgets: smallest stratum first, each takes min(size, floor(remaining
    budget / remaining non-empty strata)); the result sums to ``min(budget, sizes.sum())``."""
    shares = np.zeros(len(sizes), dtype=np.int64)
    order = [j for j in np.argsort(sizes, kind="stable") if sizes[j] > 0]
    for visited, j in enumerate(order):
        shares[j] = min(int(sizes[j]), budget // (len(order) - visited))
        budget -= shares[j]
    return shares


@dataclass(frozen=True)
class Params(OrderParams):
    beta: float = 0.0  # share of the hardest samples of a group dropped first (CCS's hard cutoff), in [0, 1)
    strata: int = 50  # S: equal-width strata of the remaining score range (CCS: 50)
    # a configured scorer whose scores decide the hard cutoff (CCS cuts by AUM); None: the selection's own
    cutoff_scorer: str | None = None

    def __post_init__(self):
        super().__post_init__()
        beta, strata = self.beta, self.strata
        if isinstance(beta, bool) or not isinstance(beta, Real) or not 0 <= beta < 1:
            raise UserError(f"stratified: beta (hard cutoff share) must be a number in [0, 1), got {beta!r}")
        if isinstance(strata, bool) or not isinstance(strata, Integral) or strata < 1:
            raise UserError(f"stratified: strata must be an integer >= 1, got {strata!r}")


@SELECTORS.register("stratified", Params)
def stratified(scores, indices, k, rng, params: Params = Params(), cutoff_scores=None):
    """``cutoff_scores``: the ``cutoff_scorer``'s scores of the same samples."""
    beta, strata = params.beta, params.strata
    scores, indices = np.asarray(scores, dtype=np.float64), np.asarray(indices)
    cutoff_scores = scores if cutoff_scores is None else np.asarray(cutoff_scores, dtype=np.float64)
    n = len(indices)
    cut = math.floor(Fraction(str(beta)) * n)
    if n - cut < k:
        raise UserError(
            f"stratified: the hard cutoff beta = {beta} drops {cut} of n = {n} samples, "
            f"which leaves too few ({n - cut}) for the budget k = {k}"
        )
    hard = order_by_score(cutoff_scores, np.arange(n), True, params.ties, rng)[:cut] if cut else np.arange(0)
    ties = split_ties(cutoff_scores, np.isin(np.arange(n), hard))
    keep = np.setdiff1d(np.arange(n), hard)  # positions in the group, ascending
    scores, indices = scores[keep], indices[keep]
    if k == 0:
        return Picked(indices[:0], ties)
    bins = stratum_of(scores, int(strata))
    shares = allocate(np.bincount(bins, minlength=int(strata)), k)
    assert shares.sum() == k, (shares.sum(), k)  # see "Leftover budget" above
    picked = [rng.choice(np.sort(indices[bins == j]), size=shares[j], replace=False)
              for j in np.flatnonzero(shares)]
    return Picked(np.sort(np.concatenate(picked)), ties)


# the parameter naming the scorer whose table select_subset passes as cutoff_scores
stratified.second_scorer = "cutoff_scorer"
