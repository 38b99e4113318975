"""Intervals and gains on hand-made numbers: the Student-t quantile against closed forms and
tables, the t-interval of a mean, paired and Welch intervals of a difference, and each setting's
gain over the random subset and over the labels only, and the figures drawn from them."""
import math

import numpy as np
import pandas as pd
import pytest

from pipeline import plots
from pipeline.comparisons import (
    add_gains,
    difference_interval,
    gain_table,
    labels_only,
    mean_interval,
    random_subset,
    t_quantile,
)
from pipeline.errors import UserError
from pipeline.plots import excludes_0, gain_label

HALF_3 = 4.30265273 * 0.02 / math.sqrt(3)  # t(0.975, 2) * sd 0.02 / sqrt(3 seeds) = 0.0496828


def test_t_quantile_matches_closed_forms_and_tables():
    for p in (0.6, 0.9, 0.975, 0.999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-12)  # Cauchy
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-12)
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, abs=1e-7)
    assert t_quantile(0.975, 2) == pytest.approx(4.30265273, abs=1e-8)
    assert t_quantile(0.975, 4) == pytest.approx(2.77644511, abs=1e-8)
    assert t_quantile(0.95, 10) == pytest.approx(1.81246112, abs=1e-8)
    assert t_quantile(0.995, 5) == pytest.approx(4.03214298, abs=1e-8)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.025, 4) == -t_quantile(0.975, 4)


def test_t_quantile_of_a_fractional_df_inverts_the_integrated_density():
    # Welch's df is fractional: integrate the t density with df = 9.5 from 0 to the quantile -> 0.475
    df, q = 9.5, t_quantile(0.975, 9.5)
    t = np.linspace(0, q, 200_001)
    density = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) \
        * (1 + t**2 / df) ** (-(df + 1) / 2)
    assert np.trapezoid(density, t) == pytest.approx(0.475, abs=1e-9)
    with pytest.raises(ValueError, match="df > 0"):
        t_quantile(0.975, 0)


def test_mean_interval_is_the_t_interval_and_needs_two_values():
    mean, low, high = mean_interval([0.02, 0.04, 0.06])
    # mean 0.04, sd 0.02, half-width 0.0496828
    assert (mean, low, high) == pytest.approx((0.04, 0.04 - HALF_3, 0.04 + HALF_3))
    assert mean_interval([0.02, np.nan, 0.04, 0.06]) == pytest.approx((0.04, 0.04 - HALF_3, 0.04 + HALF_3))
    mean, low, high = mean_interval([0.5])
    assert mean == 0.5 and math.isnan(low) and math.isnan(high)


def test_difference_is_paired_by_seed_when_both_ran_the_same_seeds():
    a = pd.Series([0.72, 0.75, 0.78], index=[0, 1, 2])
    b = pd.Series([0.72, 0.70, 0.71], index=[2, 0, 1])  # matched by seed, not by position
    difference = difference_interval(a, b)
    # per-seed differences 0.72 - 0.70, 0.75 - 0.71, 0.78 - 0.72 = 0.02, 0.04, 0.06
    assert difference[:3] == pytest.approx((0.04, 0.04 - HALF_3, 0.04 + HALF_3))
    assert difference.n == 3 and difference.paired


def test_difference_is_welch_when_the_seeds_differ():
    # equal sizes and spreads: df = (2v)^2 / (2 v^2 / 2) = 4; se = sqrt(2 * 0.02^2 / 3) = 0.0163299
    a = pd.Series([0.70, 0.72, 0.74], index=[0, 1, 2])
    b = pd.Series([0.60, 0.62, 0.64], index=[3, 4, 5])
    difference = difference_interval(a, b)
    half = 2.77644511 * 0.0163299
    assert difference[:3] == pytest.approx((0.10, 0.10 - half, 0.10 + half), abs=1e-6)
    assert difference.n == 3 and not difference.paired
    # unequal sizes (seeds 0, 1, 2 against 0, 1): va = 0.0004 / 3 = 1 / 7500, vb = 0.0008 / 2 = 3 / 7500,
    # se = sqrt(4 / 7500) = 0.0230940, df = (4 / 7500)^2 / ((1 / 7500)^2 / 2 + (3 / 7500)^2 / 1) = 16 / 9.5
    difference = difference_interval(a, pd.Series([0.60, 0.64], index=[0, 1]))
    half = t_quantile(0.975, 16 / 9.5) * 0.0230940
    assert difference[:3] == pytest.approx((0.10, 0.10 - half, 0.10 + half), abs=1e-6)
    assert difference.n == 2 and not difference.paired


def test_difference_has_no_interval_with_one_value_on_a_side():
    difference = difference_interval(pd.Series([0.7, 0.8], index=[0, 1]), pd.Series([0.6], index=[0]))
    assert difference.mean == pytest.approx(0.15) and math.isnan(difference.low) and math.isnan(difference.high)
    assert difference.n == 1 and not difference.paired
    one = difference_interval(pd.Series([0.7], index=[0]), pd.Series([0.6], index=[0]))
    assert one.mean == pytest.approx(0.1) and math.isnan(one.low) and not one.paired


def runs(rows) -> pd.DataFrame:
    columns = ["scorer", "selector", "distillation", "teacher", "infobatch_ratio", "keep_fraction", "seed",
               "final_test_acc"]
    return pd.DataFrame(rows, columns=columns)


def summary() -> pd.DataFrame:
    """Random and el2n/hardest subsets, labels only and KD, at f = 0.1 over seeds 0, 1, 2, and one
    KD run of el2n/hardest at f = 0.5, where neither baseline ran."""
    accuracies = {("random", "random", "labels"): [0.70, 0.70, 0.70], ("random", "random", "kd"): [0.72, 0.74, 0.76],
                  ("el2n", "hardest", "labels"): [0.72, 0.74, 0.76], ("el2n", "hardest", "kd"): [0.80, 0.80, 0.80]}
    rows = [(scorer, selector, setting, "t" if setting == "kd" else None, np.nan, 0.1, seed, acc)
            for (scorer, selector, setting), values in accuracies.items() for seed, acc in enumerate(values)]
    return runs(rows + [("el2n", "hardest", "kd", "t", np.nan, 0.5, 0, 0.85)])


def test_gains_over_the_random_subset_pair_seeds_at_the_same_keep_fraction_and_setting():
    table = gain_table(summary(), "random").set_index(["scorer", "selector", "distillation", "keep_fraction"])
    # el2n labels - random labels: 0.02, 0.04, 0.06; el2n kd - random kd: 0.08, 0.06, 0.04 -> 0.06 ± 0.0496828
    el2n_labels, el2n_kd = table.loc[("el2n", "hardest", "labels", 0.1)], table.loc[("el2n", "hardest", "kd", 0.1)]
    assert el2n_labels[["mean", "baseline_mean", "gain", "low", "high"]].tolist() == pytest.approx(
        [0.74, 0.70, 0.04, 0.04 - HALF_3, 0.04 + HALF_3])
    assert el2n_kd[["gain", "low", "high"]].tolist() == pytest.approx([0.06, 0.06 - HALF_3, 0.06 + HALF_3])
    assert el2n_kd["seeds"] == el2n_kd["baseline_seeds"] == 3 and el2n_kd["paired"]
    # the random subset is the reference: gain 0 exactly, no interval
    own = table.loc[("random", "random", "kd", 0.1)]
    assert own["gain"] == 0.0 and np.isnan(own["low"]) and np.isnan(own["high"])
    # no random subset at f = 0.5
    alone = table.loc[("el2n", "hardest", "kd", 0.5)]
    assert np.isnan(alone[["baseline_mean", "gain", "low", "high"]].to_numpy(float)).all()
    assert alone["baseline_seeds"] == 0


def test_gains_over_the_labels_only_on_the_same_subset():
    table = gain_table(summary(), "labels").set_index(["scorer", "selector", "distillation", "keep_fraction"])
    # el2n kd - el2n labels: 0.08, 0.06, 0.04; random kd - random labels: 0.02, 0.04, 0.06
    assert table.loc[("el2n", "hardest", "kd", 0.1), ["gain", "low", "high"]].tolist() == pytest.approx(
        [0.06, 0.06 - HALF_3, 0.06 + HALF_3])
    assert table.loc[("random", "random", "kd", 0.1), ["gain", "low", "high"]].tolist() == pytest.approx(
        [0.04, 0.04 - HALF_3, 0.04 + HALF_3])
    # the labels-only rows themselves, and f = 0.5 without labels only, have no gain
    assert table.loc[("el2n", "hardest", "labels", 0.1), "baseline_mean"] == pytest.approx(0.74)
    for key in [("el2n", "hardest", "labels", 0.1), ("random", "random", "labels", 0.1),
                ("el2n", "hardest", "kd", 0.5)]:
        assert np.isnan(table.loc[key, ["gain", "low", "high"]].to_numpy(float)).all()


def test_add_gains_puts_each_settings_gains_on_all_its_rows():
    runs_ = summary()
    gained = add_gains(runs_)
    assert gained.columns.tolist() == [*runs_.columns, "gain_over_random", "gain_over_random_low",
                                       "gain_over_random_high", "gain_over_labels", "gain_over_labels_low",
                                       "gain_over_labels_high"]
    assert gained.index.equals(runs_.index) and gained[runs_.columns].equals(runs_)
    el2n_kd = gained[(gained["scorer"] == "el2n") & (gained["distillation"] == "kd") & (gained["keep_fraction"] == 0.1)]
    assert el2n_kd["gain_over_random"].tolist() == pytest.approx([0.06] * 3)
    assert el2n_kd["gain_over_labels_high"].tolist() == pytest.approx([0.06 + HALF_3] * 3)
    assert gained.loc[gained["scorer"] == "random", "gain_over_random"].tolist() == [0.0] * 6
    # adding again replaces the columns rather than duplicating them
    assert add_gains(gained).columns.tolist() == gained.columns.tolist()


def test_the_baselines_are_the_first_in_sorted_order():
    both = runs([("random", "random", "labels_b", None, np.nan, 0.1, 0, 0.5),
                 ("el2n", "random", "labels_a", None, np.nan, 0.1, 0, 0.5),
                 ("el2n", "hardest", "labels_ib", None, 0.5, 0.1, 0, 0.5),
                 ("el2n", "hardest", "kd", "t", np.nan, 0.1, 0, 0.5)])
    assert random_subset(both) == ("el2n", "random")
    assert labels_only(both) == "labels_a"  # labels_ib trains with InfoBatch, kd with a teacher
    assert random_subset(both.iloc[2:]) is None and labels_only(both.iloc[3:]) is None
    with pytest.raises(UserError, match="unknown baseline 'teacher'; allowed: random, labels"):
        gain_table(both, "teacher")


def test_a_gain_cell_says_the_gain_and_its_interval_in_points():
    assert gain_label(1.234, -0.31, 2.66) == "+1.2\n[-0.3, +2.7]"
    assert gain_label(0.0, np.nan, np.nan) == "+0.0"  # the random subset itself, or one seed
    assert excludes_0(0.5, 2.0) and excludes_0(-3.0, -0.1)
    assert not excludes_0(-0.3, 2.7) and not excludes_0(np.nan, np.nan)


def test_the_comparison_figures_are_written_or_say_why_they_are_empty(tmp_path):
    gained = add_gains(summary())
    plots.gain_over_random(gained, "gain", str(tmp_path / "gain.png"))
    plots.gain_over_random(gained[gained["scorer"] != "random"], "gain", str(tmp_path / "no_random.png"))
    timed = gained.assign(pipeline_seconds=[10.0, 20.0, np.nan] * 4 + [100.0], infobatch_ratio=[np.nan] * 12 + [0.5])
    plots.accuracy_vs_cost(timed, "cost", str(tmp_path / "cost.png"))
    plots.accuracy_vs_cost(gained, "cost", str(tmp_path / "no_times.png"))
    for name in ["gain", "no_random", "cost", "no_times"]:
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
