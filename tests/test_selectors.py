"""Subset budgets, the selectors and the subset stage, against hand-derived subsets, plus
property tests of the budget and selection invariants."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.subset
from pipeline.errors import UserError
from pipeline.io import read_table, write_table
from pipeline.selectors import SELECTORS, order_by_score, select_subset
from pipeline.selectors.budget import class_budgets, total_budget


def rng(seed=0):
    return np.random.default_rng(seed)


def labels_with_counts(counts):
    return np.repeat(np.arange(len(counts)), counts)


# ------------------------------------------------------------------ budgets


def test_total_budget_rounds_half_up():
    assert total_budget(5, 0.5) == 3  # 2.5 -> 3 (Python's round() would give 2)
    assert total_budget(10, 0.25) == 3  # 2.5 -> 3
    assert total_budget(4, 0.125) == 1  # 0.5 -> 1
    assert total_budget(7, 0.5) == 4  # 3.5 -> 4
    assert total_budget(10, 0.24) == 2  # 2.4 -> 2
    assert total_budget(10, 0.26) == 3  # 2.6 -> 3
    assert total_budget(10, 1) == 10 and total_budget(10, 1.0) == 10  # f = 1 keeps all


def test_total_budget_exact_where_floats_break():
    # 0.7 * 45 = 31.5 exactly -> 32; in floats 0.7 * 45 = 31.499999999999996 -> 31
    assert 0.7 * 45 < 31.5
    assert total_budget(45, 0.7) == 32
    # 0.58 * 25 = 14.5 -> 15; floats give 14.499999999999998
    assert total_budget(25, 0.58) == 15
    # 0.29 * 100 = 29 exactly; floats give 28.999999999999996
    assert total_budget(100, 0.29) == 29
    # 0.1 * 30 = 3 and 0.7 * 10 = 7 exactly
    assert total_budget(30, 0.1) == 3
    assert total_budget(10, 0.7) == 7


def test_class_budgets_largest_remainder_ties_to_lower_class():
    # counts [5, 3, 2], f = 0.5: shares 2.5, 1.5, 1.0 -> floors [2, 1, 1] (sum 4);
    # total round-half-up(5) = 5 -> 1 extra; remainders [.5, .5, 0], tie -> lower class 0
    assert class_budgets(labels_with_counts([5, 3, 2]), 0.5) == {0: 3, 1: 1, 2: 1}


def test_class_budgets_largest_remainder_first():
    # counts [4, 5, 7], f = 0.3: shares 1.2, 1.5, 2.1 -> floors [1, 1, 2] (sum 4);
    # total = round(4.8) = 5 -> 1 extra; largest remainder is class 1 (.5) -> [1, 2, 2]
    assert class_budgets(labels_with_counts([4, 5, 7]), 0.3) == {0: 1, 1: 2, 2: 2}
    # counts [3, 3, 3, 3], f = 0.5: shares 1.5 each -> floors 1 (sum 4); total round(6) = 6
    # -> 2 extras, all remainders tie -> the two lowest classes 0 and 1
    assert class_budgets(labels_with_counts([3, 3, 3, 3]), 0.5) == {0: 2, 1: 2, 2: 1, 3: 1}


def test_class_budgets_exact_arithmetic():
    # f = 0.1, n_c = 30 -> exactly 3 (no remainder to hand out)
    assert class_budgets(labels_with_counts([30]), 0.1) == {0: 3}
    # f = 0.7, n = 10 -> exactly 7
    assert class_budgets(labels_with_counts([10]), 0.7) == {0: 7}
    # f = 0.29, n_c = 100 -> exactly 29 (float 0.29 * 100 = 28.999999999999996)
    assert class_budgets(labels_with_counts([100]), 0.29) == {0: 29}
    # f = 0.7, counts [45, 45]: shares 31.5, 31.5 -> floors [31, 31], total round(63) = 63
    # -> 1 extra, tie -> class 0 -> [32, 31]
    assert class_budgets(labels_with_counts([45, 45]), 0.7) == {0: 32, 1: 31}
    # f = 0.1, counts [30, 5]: shares 3 (exact, remainder 0) and 0.5; total round(3.5) = 4
    # -> the extra goes to class 1, not to class 0 (whose float remainder would be 4e-16)
    assert class_budgets(labels_with_counts([30, 5]), 0.1) == {0: 3, 1: 1}


def test_class_budgets_keep_all_and_sparse_labels():
    assert class_budgets(labels_with_counts([5, 3, 2]), 1) == {0: 5, 1: 3, 2: 2}
    assert class_budgets(labels_with_counts([5, 3, 2]), 1.0) == {0: 5, 1: 3, 2: 2}
    # labels need not be 0..C-1 nor sorted: classes 7 (2 samples) and 2 (4 samples), f = 0.5
    # -> shares 2 (class 2) and 1 (class 7), no remainders
    assert class_budgets(np.array([7, 2, 2, 7, 2, 2]), 0.5) == {2: 2, 7: 1}


# ------------------------------------------------------------------ selectors on a fixture

SCORES = np.array([0.9, 0.1, 0.5, 0.5, 0.3, 0.8])
LABELS = np.array([0, 0, 0, 1, 1, 1])


def test_order_by_score_ties_by_index():
    scores = np.array([1.0, 2.0, 2.0, 1.0, 2.0])
    idx = np.arange(5)
    # descending: the 2.0s in index order, then the 1.0s in index order
    assert order_by_score(scores, idx, True).tolist() == [1, 2, 4, 0, 3]
    assert order_by_score(scores, idx, False).tolist() == [0, 3, 1, 2, 4]


def test_hardest_balanced():
    # f = 2/3 (float 0.666...6): class shares 3f just below 2 -> floors [1, 1], total
    # round(6f ~ 4) = 4 -> 2 extras -> budgets [2, 2].
    # class 0 (idx 0,1,2; scores .9,.1,.5) top 2 -> {0, 2}; class 1 (idx 3,4,5; .5,.3,.8) -> {5, 3}
    kept = select_subset("hardest", SCORES, LABELS, 2 / 3, rng())
    assert kept.tolist() == [0, 2, 3, 5]


def test_easiest_balanced():
    # budgets [2, 2] as above; class 0 lowest two: .1 (1), .5 (2); class 1: .3 (4), .5 (3)
    kept = select_subset("easiest", SCORES, LABELS, 2 / 3, rng())
    assert kept.tolist() == [1, 2, 3, 4]


def test_balanced_half_uses_class_budgets():
    # f = 0.5: shares 1.5, 1.5 -> floors [1, 1]; total round(3) = 3; tie -> class 0 -> [2, 1]
    # hardest: class 0 {0, 2}, class 1 {5}; easiest: class 0 {1, 2}, class 1 {4}
    assert select_subset("hardest", SCORES, LABELS, 0.5, rng()).tolist() == [0, 2, 5]
    assert select_subset("easiest", SCORES, LABELS, 0.5, rng()).tolist() == [1, 2, 4]


def test_unbalanced():
    # k = round(0.5 * 6) = 3 over the whole set.
    # hardest: .9 (0), .8 (5), then the tie .5 at 2 and 3 -> lower index 2
    assert select_subset("hardest", SCORES, LABELS, 0.5, rng(), class_balanced=False).tolist() == [0, 2, 5]
    # easiest: .1 (1), .3 (4), then the tie .5 -> 2
    assert select_subset("easiest", SCORES, LABELS, 0.5, rng(), class_balanced=False).tolist() == [1, 2, 4]
    # k = round(4/6 * 6) = 4: hardest .9, .8, .5, .5 -> {0, 5, 2, 3} (class 1 gets 2, class 0 gets 2)
    assert select_subset("hardest", SCORES, LABELS, 2 / 3, rng(), class_balanced=False).tolist() == [0, 2, 3, 5]
    # k = round(1/6*6) = 1 -> hardest is 0 alone, easiest is 1 alone
    assert select_subset("hardest", SCORES, LABELS, 1 / 6, rng(), class_balanced=False).tolist() == [0]
    assert select_subset("easiest", SCORES, LABELS, 1 / 6, rng(), class_balanced=False).tolist() == [1]


def test_ties_break_by_lower_index():
    scores = np.array([1.0, 2.0, 2.0, 1.0, 2.0])
    labels = np.zeros(5, dtype=int)
    # k = round(0.4 * 5) = 2: hardest = the first two 2.0s (1, 2); easiest = the two 1.0s (0, 3)
    assert select_subset("hardest", scores, labels, 0.4, rng()).tolist() == [1, 2]
    assert select_subset("easiest", scores, labels, 0.4, rng()).tolist() == [0, 3]
    # k = 3: hardest = all three 2.0s; easiest = 1.0s then the lowest-index 2.0 (1)
    assert select_subset("hardest", scores, labels, 0.6, rng()).tolist() == [1, 2, 4]
    assert select_subset("easiest", scores, labels, 0.6, rng()).tolist() == [0, 1, 3]
    # all equal: k = 2 of 5 -> indices 0, 1 for both orders
    flat = np.full(5, 0.5)
    assert select_subset("hardest", flat, labels, 0.4, rng()).tolist() == [0, 1]
    assert select_subset("easiest", flat, labels, 0.4, rng()).tolist() == [0, 1]


def test_ties_inside_classes():
    # class 0 = idx 0, 2, 4 (scores 3, 3, 3), class 1 = idx 1, 3, 5 (scores 1, 2, 2); f = 0.333...3
    # (just below 1/3): shares 3f just below 1 -> floors [0, 0]; total round(6f ~ 2) = 2 -> 2 extras
    # -> budgets [1, 1]. hardest: class 0 tie -> 0; class 1 tie at 2 -> 3.
    # easiest: class 0 -> 0; class 1 -> 1 (score 1)
    scores = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 2.0])
    labels = np.array([0, 1, 0, 1, 0, 1])
    assert select_subset("hardest", scores, labels, 0.3333333333333333, rng()).tolist() == [0, 3]
    assert select_subset("easiest", scores, labels, 0.3333333333333333, rng()).tolist() == [0, 1]


def test_keep_all():
    for name in ("hardest", "easiest", "random"):
        assert select_subset(name, SCORES, LABELS, 1.0, rng()).tolist() == list(range(6))
        assert select_subset(name, SCORES, LABELS, 1, rng(), class_balanced=False).tolist() == list(range(6))


def test_random_selector_counts_seeds():
    labels = labels_with_counts([40, 35, 25])
    scores = np.zeros(100)
    # f = 0.3: shares 12, 10.5, 7.5 -> floors [12, 10, 7] (sum 29); total round(30) = 30
    # -> 1 extra; remainders [0, .5, .5], tie -> class 1 -> [12, 11, 7]
    a = select_subset("random", scores, labels, 0.3, rng(1))
    b = select_subset("random", scores, labels, 0.3, rng(1))
    c = select_subset("random", scores, labels, 0.3, rng(2))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    for kept in (a, c):
        assert len(kept) == 30 and len(set(kept.tolist())) == 30
        assert kept.min() >= 0 and kept.max() < 100 and (np.diff(kept) > 0).all()
        assert np.bincount(labels[kept], minlength=3).tolist() == [12, 11, 7]
    # random ignores the scores
    d = select_subset("random", np.arange(100.0), labels, 0.3, rng(1))
    assert d.tolist() == a.tolist()
    # unbalanced: round(0.3 * 100) = 30 anywhere
    e = select_subset("random", scores, labels, 0.3, rng(1), class_balanced=False)
    assert len(e) == 30 and len(set(e.tolist())) == 30


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("f", [0, 0.0, 1.5, -0.2, float("nan")])
def test_bad_keep_fraction(f):
    with pytest.raises(UserError, match=r"keep fraction.*" + str(f)):
        select_subset("hardest", SCORES, LABELS, f, rng())


def test_keep_fraction_that_keeps_none():
    # f = 0.1 of 4 samples: round-half-up(0.4) = 0 -> error naming the value and the smallest f (0.5 / 4)
    with pytest.raises(UserError, match=r"0\.1 of 4 samples keeps none.*f >= 0\.12"):
        select_subset("hardest", np.zeros(4), np.zeros(4, dtype=int), 0.1, rng())
    # f = 0.1 of 5 samples: round-half-up(0.5) = 1 -> the single hardest (ties -> index 0)
    assert select_subset("hardest", np.zeros(5), np.zeros(5, dtype=int), 0.1, rng()).tolist() == [0]


def test_nonfinite_scores_named():
    scores = SCORES.copy()
    scores[[1, 4]] = [np.nan, np.inf]
    with pytest.raises(UserError, match=r"2 scores.*\[1, 4\]"):
        select_subset("hardest", scores, LABELS, 0.5, rng())
    scores = SCORES.copy()
    scores[5] = -np.inf
    with pytest.raises(UserError, match=r"\[5\]"):
        select_subset("easiest", scores, LABELS, 0.5, rng())


def test_unknown_selector_lists_known():
    with pytest.raises(UserError) as info:
        select_subset("hardests", SCORES, LABELS, 0.5, rng())
    message = str(info.value)
    assert "'hardests'" in message
    assert {"easiest", "hardest", "random"} <= set(SELECTORS.names())
    assert "known: " + ", ".join(SELECTORS.names()) in message


# ------------------------------------------------------------------ properties


@st.composite
def problems(draw):
    n = draw(st.integers(1, 30))
    labels = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    score = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
    scores = draw(st.lists(score, min_size=n, max_size=n))
    k = draw(st.integers(1, 1000))
    return np.array(scores), np.array(labels), k


FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(problems(), st.sampled_from(["hardest", "easiest", "random"]), st.booleans(), st.integers(0, 2**32 - 1))
def test_selection_properties(problem, selector, balanced, seed):
    scores, labels, k = problem
    f = k / 1000
    exact = Fraction(k, 1000)
    assert Fraction(str(f)) == exact  # budget.py reads the decimal the user wrote
    n = len(scores)
    expected_total = math.floor(exact * n + Fraction(1, 2))  # round half up
    assert total_budget(n, f) == expected_total
    if expected_total == 0:  # a keep fraction that keeps nothing is a user error
        with pytest.raises(UserError, match="keeps none"):
            select_subset(selector, scores, labels, f, np.random.default_rng(seed), class_balanced=balanced)
        return

    kept = select_subset(selector, scores, labels, f, np.random.default_rng(seed), class_balanced=balanced)
    again = select_subset(selector, scores, labels, f, np.random.default_rng(seed), class_balanced=balanced)
    assert kept.tolist() == again.tolist()
    assert len(kept) == expected_total
    assert len(np.unique(kept)) == len(kept)
    assert kept.dtype.kind == "i" and (len(kept) == 0 or (kept.min() >= 0 and kept.max() < n))
    assert (np.diff(kept) > 0).all()

    if balanced:
        budgets = class_budgets(labels, f)
        assert sum(budgets.values()) == expected_total
        classes = sorted(budgets)
        assert classes == sorted(set(labels.tolist()))
        rems = {}
        for c in classes:
            n_c = int((labels == c).sum())
            base = math.floor(exact * n_c)
            assert budgets[c] in (base, base + 1) and budgets[c] <= n_c
            assert int((labels[kept] == c).sum()) == budgets[c]
            rems[c] = exact * n_c - base
        # largest remainders first, ties to the lower class
        up = [c for c in classes if budgets[c] == math.floor(exact * (labels == c).sum()) + 1]
        down = [c for c in classes if c not in up]
        for a in up:
            assert rems[a] > 0
            for b in down:
                assert rems[a] > rems[b] or (rems[a] == rems[b] and a < b)
        groups = [np.flatnonzero(labels == c) for c in classes]
    else:
        groups = [np.arange(n)]

    if selector in ("hardest", "easiest"):
        sign = 1 if selector == "hardest" else -1
        kept_set = set(kept.tolist())
        for group in groups:
            ins = [i for i in group if i in kept_set]
            outs = [j for j in group if j not in kept_set]
            for i in ins:
                for j in outs:
                    si, sj = sign * scores[i], sign * scores[j]
                    assert si > sj or (si == sj and i < j)


@FAST
@given(problems(), st.sampled_from(["hardest", "easiest", "random"]), st.booleans())
def test_keep_all_property(problem, selector, balanced):
    scores, labels, _ = problem
    kept = select_subset(selector, scores, labels, 1.0, np.random.default_rng(0), class_balanced=balanced)
    assert kept.tolist() == list(range(len(scores)))


# ------------------------------------------------------------------ subset stage

META = {"scorer": "el2n", "scores_hash": "0123456789ab", "dataset": "tiny", "dataset_fingerprint": "feedbeefcafe0001"}


@pytest.fixture
def score_file(tmp_path):
    path = tmp_path / "scores.parquet"
    table = pd.DataFrame({"sample_index": np.arange(6), "label": LABELS, "score": SCORES})
    write_table(table, path, META)
    return path


def run_subset(score_file, out, **spec):
    spec = {"selector": "hardest", "keep_fraction": 0.5, "seed": 3, "class_balanced": True, **spec}
    pipeline.subset.main(["--spec", json.dumps(spec), "--scores", str(score_file), "--output", str(out)])
    return read_table(out)


def test_subset_stage_hardest(score_file, tmp_path):
    frame, meta = run_subset(score_file, tmp_path / "a.parquet")
    # f = 0.5 balanced -> budgets [2, 1] (see test_balanced_half_uses_class_budgets):
    # class 0 {0, 2}, class 1 {5}
    assert frame["sample_index"].tolist() == [0, 2, 5]
    assert frame["label"].tolist() == [0, 0, 1]
    assert meta["selector"] == "hardest"
    assert meta["keep_fraction"] == 0.5
    assert meta["seed"] == 3
    assert meta["class_balanced"] is True
    assert meta["scores_hash"] == META["scores_hash"]
    assert meta["dataset_fingerprint"] == META["dataset_fingerprint"]
    assert meta["dataset"] == "tiny"
    assert meta["scorer"] == "el2n"
    assert meta["stage"] == "subsets"


def test_subset_stage_unbalanced_easiest(score_file, tmp_path):
    frame, meta = run_subset(score_file, tmp_path / "a.parquet", selector="easiest", class_balanced=False)
    # k = 3 overall: .1 (1), .3 (4), tie .5 -> 2
    assert frame["sample_index"].tolist() == [1, 2, 4]
    assert frame["label"].tolist() == [0, 0, 1]
    assert meta["class_balanced"] is False


def test_subset_stage_is_deterministic(score_file, tmp_path):
    for selector in ("hardest", "random"):
        a, meta_a = run_subset(score_file, tmp_path / f"{selector}1.parquet", selector=selector, seed=11)
        b, meta_b = run_subset(score_file, tmp_path / f"{selector}2.parquet", selector=selector, seed=11)
        pd.testing.assert_frame_equal(a, b)
        assert meta_a == meta_b
        assert len(a) == 3 and np.bincount(a["label"], minlength=2).tolist() == [2, 1]


@pytest.mark.parametrize("f", [0, 1.5])
def test_subset_stage_bad_keep_fraction(score_file, tmp_path, capsys, f):
    out = tmp_path / "bad.parquet"
    with pytest.raises(SystemExit) as info:
        run_subset(score_file, out, keep_fraction=f)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert str(f) in lines[0]
    assert not out.exists()


def test_subset_stage_rejects_non_canonical_order(tmp_path, capsys):
    path = tmp_path / "scores.parquet"
    table = pd.DataFrame({"sample_index": [1, 0, 2], "label": [0, 0, 1], "score": [0.1, 0.2, 0.3]})
    write_table(table, path, META)
    with pytest.raises(SystemExit) as info:
        run_subset(path, tmp_path / "out.parquet")
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error:")
