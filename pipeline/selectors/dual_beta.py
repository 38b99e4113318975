"""DUAL's pruning-ratio-adaptive Beta sampling (Cho et al., ICML 2025, "Lightweight Dataset Pruning
without Full Training via Example Difficulty and Prediction Uncertainty"), as the authors' released
code computes it (github.com/behaapyy/dual-pruning, ``beta_sampling`` in exp_cifar/data_subset.py):
k samples drawn without replacement, each with probability proportional to its DUAL score times a
Beta density at its prediction mean, the Beta moving toward easy samples as the pruning ratio grows.

Within a group of n samples with budget k (one class when class-balanced), pruning ratio
r = 1 - k / n, DUAL scores s_i (the selection's scores) and prediction means m_i (the mean
true-class probability over the teacher's first T epochs, m_i = 1 - d_i with d_i the scores of
``mean_scorer``, i.e. of the scorer ``dual_difficulty``):

    mu    = mean of m_i over the 10 highest-scoring samples of the group (all if n < 10)
    beta  = 15 (1 - mu) (1 - r^c_D)
    alpha = 16 - beta
    p_i   = s_i Beta_pdf(m_i; alpha, beta) / sum_j s_j Beta_pdf(m_j; alpha, beta)

(so alpha + beta = 16). At r = 0 the Beta's mean (1 + 15 mu) / 16 is about mu: samples as well
learnt as the hardest are favoured; as r -> 1, beta -> 0 and its mass moves to m = 1, the easy
samples; a larger c_D (default 4, the released code's CIFAR default) delays that move. The k are
drawn with ``rng.choice(indices, k, replace=False, p=p)``: numpy's successive draws, each from the
samples not yet drawn with their p renormalised, the algorithm of the released code's
``np.random.choice``, here from the selection's seeded generator.

What is the released code's and what is this reading: the formulas, the constants 15 and 16, the
10-sample anchor, c_D = 4 and the draw are the code's (its ImageNet helper raises r to 2 + c_D
instead); the paper's section text was not at hand, only the code. Deviations: the code samples
over the whole set with r the configured pruning ratio and k = int((1 - r) N); here r = 1 - k / n
with the pipeline's exact budgets, and the anchor mu is per group (per class by default;
``class_balanced: false`` reproduces the code but for the budget's rounding). Equal scores at the
anchor's boundary count the lowest sample indices (the code's argsort is unstable). A zero score
weighs 0 even where the density is infinite (the code's 0 x inf is NaN). Where the code fails, in
np.random.choice, this refuses in one line: fewer than k samples with a positive weight, a weight
that is not finite (m_i = 1 with beta < 1, or beta = 0 when mu = 1). k = n keeps all and k = 0
none, drawing nothing.

Every kept sample is drawn, none is placed by a cut-off through equal scores: ``ties_at_cutoff`` is
0 and there is no ``ties`` parameter. The subset is one draw from the selection's seed, as
``stratified``'s strata are: not ``draws_at_random``, so selection.random_draws: per_student_seed
does not redraw it per student seed (the released code draws unseeded, afresh in each training run),
and it is never the random baseline. Cost: O(n) for the weights, then numpy's draw, O(n) per round
(few rounds unless the weights are very uneven).
"""
from dataclasses import dataclass
from numbers import Real

import numpy as np
from scipy.stats import beta as beta_distribution

from pipeline.errors import UserError
from pipeline.selectors import SELECTORS, Picked

ANCHORS = 10  # the highest-scoring samples whose prediction means set mu (the released code's mask[-10:])
SCALE = 15  # beta = SCALE (1 - mu) (1 - r^c_D), alpha = SCALE + 1 - beta (the released code's 15 and 16)


@dataclass(frozen=True)
class Params:
    c_d: float = 4.0  # c_D, > 0: the larger, the later in r the Beta moves toward easy samples
    # the configured scorer whose scores are 1 - each sample's prediction mean: dual_difficulty, with dual's
    mean_scorer: str | None = None

    def __post_init__(self):
        c_d = self.c_d
        if isinstance(c_d, bool) or not isinstance(c_d, Real) or not 0 < c_d < float("inf"):
            raise UserError(f"dual_beta: c_d must be a finite number > 0, got {c_d!r}")
        if not isinstance(self.mean_scorer, str) or not self.mean_scorer:
            raise UserError(f"dual_beta: mean_scorer must name the configured scorer of 1 - each sample's "
                            f"prediction mean (dual_difficulty), got {self.mean_scorer!r}")


def beta_parameters(scores: np.ndarray, means: np.ndarray, indices: np.ndarray, prune_ratio: float,
                    c_d: float) -> tuple[float, float]:
    """(alpha, beta) for one group: mu over its ``ANCHORS`` highest scores, equal ones by lowest index."""
    anchors = np.lexsort((indices, -scores))[:ANCHORS]
    b = SCALE * (1.0 - means[anchors].mean()) * (1.0 - prune_ratio ** c_d)
    return SCALE + 1.0 - b, b


def sampling_weights(scores: np.ndarray, means: np.ndarray, indices: np.ndarray, prune_ratio: float,
                     c_d: float) -> np.ndarray:
    """s_i Beta_pdf(m_i; alpha, beta), the p_i of the module docstring before they are normalised (0
    where s_i = 0)."""
    a, b = beta_parameters(scores, means, indices, prune_ratio, c_d)
    with np.errstate(divide="ignore", invalid="ignore"):  # (refused by the caller: beta = 0, or m = 1 with beta < 1)
        # a zero score weighs 0 even where the density is infinite
        return np.where(scores > 0, scores * beta_distribution.pdf(means, a, b), 0.0)


@SELECTORS.register("dual_beta", Params)
def dual_beta(scores, indices, k, rng, params: Params, *, cutoff_scores):
    """``cutoff_scores``: the ``mean_scorer``'s (dual_difficulty's) scores of the same samples."""
    scores, indices = np.asarray(scores, dtype=np.float64), np.asarray(indices)
    difficulty = np.asarray(cutoff_scores, dtype=np.float64)
    if not ((difficulty >= 0) & (difficulty <= 1)).all():  # (NaN fails too)
        raise UserError(f"dual_beta: the scores of mean_scorer {params.mean_scorer!r} must be 1 - a prediction "
                        f"mean, in [0, 1] (dual_difficulty's), got {difficulty.min():g} to {difficulty.max():g}")
    if (scores < 0).any():
        raise UserError(f"dual_beta weights each sample by its score, which must be >= 0 (DUAL's are), "
                        f"got {scores.min():g}")
    n = len(indices)
    if k in (0, n):  # nothing to draw (a class whose budget is 0 leaves the generator as it was)
        return Picked(indices if k else indices[:0])
    means, ratio = 1.0 - difficulty, 1.0 - k / n
    weights = sampling_weights(scores, means, indices, ratio, params.c_d)
    bad = np.flatnonzero(~np.isfinite(weights))
    if len(bad):
        a, b = beta_parameters(scores, means, indices, ratio, params.c_d)
        raise UserError(f"dual_beta: the Beta({a:.4g}, {b:.4g}) density is not finite at the prediction mean "
                        f"{means[bad[0]]:g} of sample {indices[bad[0]]} ({len(bad)} such samples)")
    positive = int((weights > 0).sum())
    if positive < k:
        raise UserError(f"dual_beta: only {positive} of the group's {n} samples have a positive weight "
                        f"(score x Beta density), fewer than its budget {k}")
    return Picked(np.sort(rng.choice(indices, size=k, replace=False, p=weights / weights.sum())))


# the parameter naming the scorer whose table select_subset passes as cutoff_scores
dual_beta.second_scorer = "mean_scorer"
