"""How sure a comparison of settings is: t-intervals of a mean over seeds and of a difference of
two means (paired by seed when both sides ran the same seeds, Welch's otherwise), and each
setting's gain over the random subset and over training on the labels only, with its interval.

All intervals are two-sided at ``level`` (0.95 by default) and use the Student-t quantile computed
here, so the pipeline needs no scipy. A gain is in the unit of its metric (a share in [0, 1] for the
accuracies of ``summary.parquet``), not in points.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.errors import UserError

# A setting of the study: the subset, the distillation setting and the keep fraction (seeds vary within).
GROUP = ["scorer", "selector", "distillation", "keep_fraction"]
BASELINES = ("random", "labels")
RANDOM = "random"


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` > 0 degrees of freedom (any
    float; ``math.inf`` gives the normal quantile), by bisection on the t CDF."""
    if not 0 < p < 1 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        low, high = high, 2 * high
    # Halve until the bracket is two neighbouring floats: full double precision.
    while True:
        middle = (low + high) / 2
        if middle in (low, high):
            return middle
        low, high = (middle, high) if _t_cdf(middle, df) < p else (low, middle)


def _t_cdf(t: float, df: float) -> float:
    """P(T <= t) for t >= 0: 1 - I_x(df/2, 1/2) / 2 with x = df / (df + t^2)."""
    return 1 - 0.5 * _incomplete_beta(df / (df + t * t), df / 2, 0.5)


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b) by its continued fraction (modified
    Lentz), evaluated where it converges fast and mirrored (I_x(a, b) = 1 - I_{1-x}(b, a)) elsewhere."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(1 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 100_000):
        # the even then the odd term of the fraction
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-16:
            break
    return front * fraction


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` (missing ones dropped) and its t-interval; the
    bounds are NaN with fewer than two values."""
    values = _present(values)
    mean = values.mean() if len(values) else math.nan
    half = half_width(values.std(ddof=1), len(values), level) if len(values) >= 2 else math.nan
    return mean, mean - half, mean + half


def half_width(std: float, n: int, level: float = 0.95) -> float:
    """Half the t-interval of a mean of ``n`` >= 2 values with sample standard deviation ``std``."""
    return _two_sided(level, n - 1) * std / math.sqrt(n)


class Difference(NamedTuple):
    """A difference of two means (a - b) with its interval; ``n`` counts the pairs when ``paired``,
    else the smaller of the two samples."""
    mean: float
    low: float
    high: float
    n: int
    paired: bool


def difference_interval(a: pd.Series, b: pd.Series, level: float = 0.95) -> Difference:
    """mean(a) - mean(b) with its t-interval, ``a`` and ``b`` indexed by seed (missing values
    dropped). Paired (the interval of the per-seed differences) when both ran the same two or more
    seeds, since the seed fixes initialisation and order for both; Welch's interval otherwise. The
    bounds are NaN when either side has fewer than two values."""
    a, b = a.dropna(), b.dropna()
    if len(a) >= 2 and set(a.index) == set(b.index):
        mean, low, high = mean_interval(a - b.reindex(a.index), level)
        return Difference(mean, low, high, len(a), True)
    mean = a.mean() - b.mean()
    n = min(len(a), len(b))
    if n < 2:
        return Difference(mean, math.nan, math.nan, n, False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    # Welch-Satterthwaite degrees of freedom; no spread on either side: a zero-width interval
    half = 0.0 if se == 0 else _two_sided(level, se**4 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))) * se
    return Difference(mean, mean - half, mean + half, n, False)


def _two_sided(level: float, df: float) -> float:
    return t_quantile(1 - (1 - level) / 2, df)


def _present(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[~np.isnan(values)]


def random_subset(summary: pd.DataFrame) -> tuple[str, str] | None:
    """The (scorer, selector) of the random subset: one whose scorer or selector is "random"; the
    first in sorted (scorer, selector) order if several (el2n/random before random/random); None if none."""
    pairs = summary.loc[(summary["scorer"] == RANDOM) | (summary["selector"] == RANDOM), ["scorer", "selector"]]
    return min(map(tuple, pairs.drop_duplicates().to_numpy()), default=None)


def labels_only(summary: pd.DataFrame) -> str | None:
    """The labels-only distillation setting (no teacher, no InfoBatch); the first by name if
    several (as ``study.kd_gain``); None if none."""
    settings = summary.drop_duplicates("distillation")
    names = settings.loc[settings["teacher"].isna() & settings["infobatch_ratio"].isna(), "distillation"]
    return min(names, default=None)


def gain_table(summary: pd.DataFrame, baseline: str = "random", metric: str = "final_test_acc",
               level: float = 0.95) -> pd.DataFrame:
    """One row per setting (``GROUP``): its mean ``metric`` over seeds (``mean``), the baseline's
    (``baseline_mean``), the difference (``gain``) with its interval (``low``, ``high``), both sides'
    seed counts (``seeds``, ``baseline_seeds``) and whether the seeds were ``paired``.

    ``baseline="random"``: the random subset (``random_subset``) at the same keep fraction and
    distillation setting; its own rows gain exactly 0.0 with no interval (NaN bounds), as a
    reference row. ``baseline="labels"``: the labels-only setting (``labels_only``) on the same
    subset and keep fraction; its own rows have no gain (NaN). NaN wherever the baseline did not run."""
    if baseline not in BASELINES:
        raise UserError(f"unknown baseline {baseline!r}; allowed: {', '.join(BASELINES)}")
    values = {key: group.set_index("seed")[metric] for key, group in summary.groupby(GROUP)}
    reference = random_subset(summary) if baseline == "random" else labels_only(summary)
    rows = []
    for key, a in values.items():
        base_key = _baseline_key(key, baseline, reference)
        b = values.get(base_key)
        row = {"mean": a.mean(), "baseline_mean": math.nan, "gain": math.nan, "low": math.nan, "high": math.nan,
               "seeds": a.count(), "baseline_seeds": 0, "paired": False}
        if b is not None:
            row.update(baseline_mean=b.mean(), baseline_seeds=b.count())
            if key == base_key:
                row["gain"] = 0.0 if baseline == "random" else math.nan
            else:
                difference = difference_interval(a, b, level)
                row.update(gain=difference.mean, low=difference.low, high=difference.high, paired=difference.paired)
        rows.append(row)
    index = pd.MultiIndex.from_tuples(list(values), names=GROUP)
    return pd.DataFrame(rows, index=index, columns=["mean", "baseline_mean", "gain", "low", "high", "seeds",
                                                   "baseline_seeds", "paired"]).reset_index()


def _baseline_key(key: tuple, baseline: str, reference) -> tuple | None:
    scorer, selector, distillation, f = key
    if reference is None:
        return None
    return (*reference, distillation, f) if baseline == "random" else (scorer, selector, reference, f)


def add_gains(summary: pd.DataFrame, metric: str = "final_test_acc", level: float = 0.95) -> pd.DataFrame:
    """``summary`` with each setting's gain over the random subset (``gain_over_random``, ``_low``,
    ``_high``) and over the labels only (``gain_over_labels``, ...) on every row of the setting;
    see ``gain_table`` for the baselines."""
    gained = summary
    for baseline in BASELINES:
        name = f"gain_over_{baseline}"
        gains = gain_table(summary, baseline, metric, level).rename(
            columns={"gain": name, "low": f"{name}_low", "high": f"{name}_high"})
        columns = [name, f"{name}_low", f"{name}_high"]
        gained = gained.drop(columns=columns, errors="ignore").join(gains.set_index(GROUP)[columns], on=GROUP)
    return gained
