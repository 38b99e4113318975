"""Subset budgets, the selectors and the subset stage, against hand-derived subsets, plus
property tests of the budget and selection invariants."""
from __future__ import annotations

import json
import math
from fractions import Fraction
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.selectors
import pipeline.stages.subsets
from pipeline.errors import UserError
from pipeline.io import read_meta, read_table, scores_hash, write_table
from pipeline.params import NoParams
from pipeline.seeding import numpy_generator
from pipeline.selectors import (SELECTORS, OrderParams, Picked, needs_embeddings, order_by_score, select_subset,
                                split_ties)
from pipeline.selectors import d2 as d2_module
from pipeline.selectors import stratified as stratified_module
from pipeline.selectors import dual_beta as dual_beta_module
from pipeline.selectors.budget import class_budgets, total_budget
from pipeline.selectors.dual_beta import beta_parameters, sampling_weights
from pipeline.selectors.geometry import nearest_neighbors, pair_distances, row_mean, squared_distances
from pipeline.selectors.medium import median_window
from pipeline.selectors.stratified import allocate, stratum_of


def rng(seed=0):
    return np.random.default_rng(seed)


INDEX = {"ties": "index"}  # equal scores by ascending sample index (the order before ``ties``)
# dual_beta needs scores >= 0 and its mean scorer's prediction means: its own tests at the end
GENERIC = [name for name in SELECTORS.names() if name != "dual_beta"]


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
    assert order_by_score(scores, idx, True, "index").tolist() == [1, 2, 4, 0, 3]
    assert order_by_score(scores, idx, False, "index").tolist() == [0, 3, 1, 2, 4]


def test_order_by_score_random_ties_follow_the_seeded_permutation():
    scores = np.array([1.0, 2.0, 2.0, 1.0, 2.0])
    idx = np.arange(5)
    # default_rng(0).permutation(5) = [2, 4, 3, 0, 1]: ties ordered by these values, so the 2.0s
    # (idx 1, 2, 4 -> 4, 3, 1) come as 4, 2, 1 and the 1.0s (idx 0, 3 -> 2, 0) as 3, 0
    assert rng(0).permutation(5).tolist() == [2, 4, 3, 0, 1]
    assert order_by_score(scores, idx, True, "random", rng(0)).tolist() == [4, 2, 1, 3, 0]
    assert order_by_score(scores, idx, False, "random", rng(0)).tolist() == [3, 0, 4, 2, 1]
    # distinct scores: no permutation is drawn, the generator is left as it was
    gen = rng(0)
    assert order_by_score(np.array([3.0, 1.0, 2.0]), np.arange(3), True, "random", gen).tolist() == [0, 2, 1]
    assert gen.permutation(5).tolist() == [2, 4, 3, 0, 1]


def test_split_ties_counts_the_tied_samples_a_cut_splits():
    scores = np.array([0, 0, 0, 0, 1, 1.0])
    # keep both 1s and one 0: the four 0s straddle the cut
    assert split_ties(scores, np.array([1, 0, 0, 0, 1, 1], dtype=bool)) == 4
    # a cut between distinct values splits no tie
    assert split_ties(scores, np.array([0, 0, 0, 0, 1, 1], dtype=bool)) == 0
    # two tied values split (a window): 0s and 1s both on both sides -> all 6
    assert split_ties(scores, np.array([1, 0, 0, 0, 1, 0], dtype=bool)) == 6
    assert split_ties(scores, np.zeros(6, dtype=bool)) == 0 and split_ties(scores, np.ones(6, dtype=bool)) == 0


# scores [0, 0, 0, 0, 1, 1] in one class, keep 3 of 6 (f = 0.5) by hardest: both 1s and one 0
TIED = np.array([0, 0, 0, 0, 1, 1.0])


def test_hardest_ties_by_index_keeps_the_lowest_index():
    selection = select_subset("hardest", TIED, np.zeros(6, dtype=int), 0.5, rng(), params=INDEX)
    assert selection.kept.tolist() == [0, 4, 5]
    assert selection.ties_at_cutoff == 4  # the four 0s: one kept, three dropped
    assert selection.params == OrderParams(ties="index")


@pytest.mark.parametrize("seed, chosen", [(0, 1), (1, 1), (2, 2), (3, 3)])
def test_hardest_random_ties_keep_the_seeded_choice(seed, chosen):
    # ties: random (the default) orders the group by rng.permutation(6) among equal scores, so the
    # kept 0 is the one of idx 0..3 with the smallest permutation value: default_rng(0) gives
    # [3, 2, 5, 4, 0, 1] -> values 3, 2, 5, 4 at idx 0..3 -> idx 1; default_rng(1) [4, 0, 2, 1, ..]
    # -> idx 1; default_rng(2) [3, 5, 2, 4, ..] -> idx 2; default_rng(3) [2, 5, 4, 1, ..] -> idx 3
    values = rng(seed).permutation(6)[:4]
    assert int(np.argmin(values)) == chosen
    for labels, balanced in ((np.zeros(6, dtype=int), True), (np.arange(6) % 2, False)):
        selection = select_subset("hardest", TIED, labels, 0.5, rng(seed), class_balanced=balanced)
        assert selection.kept.tolist() == sorted([chosen, 4, 5])
        assert selection.ties_at_cutoff == 4
        assert selection.params == OrderParams(ties="random")
    # the same seed always gives the same subset
    assert select_subset("hardest", TIED, np.zeros(6, dtype=int), 0.5, rng(seed)).kept.tolist() == sorted([chosen, 4, 5])


def test_ties_at_cutoff_per_class_summed():
    # class 0 = idx 0..3 (scores 0, 0, 1, 1), class 1 = idx 4..7 (scores 5, 5, 5, 2); f = 0.5 ->
    # budgets [2, 2]. hardest: class 0 keeps both 1s (cut between distinct values: 0 ties);
    # class 1 keeps two of the three 5s (3 tied samples straddle the cut) -> 0 + 3
    scores = np.array([0, 0, 1, 1, 5, 5, 5, 2.0])
    labels = np.repeat([0, 1], 4)
    selection = select_subset("hardest", scores, labels, 0.5, rng(), params=INDEX)
    assert selection.kept.tolist() == [2, 3, 4, 5] and selection.ties_at_cutoff == 3
    # easiest: class 0 keeps the two 0s (0 ties); class 1 keeps the 2 and one 5 (3 ties) -> 3
    selection = select_subset("easiest", scores, labels, 0.5, rng(), params=INDEX)
    assert selection.kept.tolist() == [0, 1, 4, 7] and selection.ties_at_cutoff == 3
    # unbalanced, k = 4 of 8: hardest keeps the three 5s and the 2: no tie split
    assert select_subset("hardest", scores, labels, 0.5, rng(), class_balanced=False).ties_at_cutoff == 0
    # random has no cut-off by score
    assert select_subset("random", scores, labels, 0.5, rng()).ties_at_cutoff == 0


def test_random_ties_spread_over_the_index_range():
    # forgetting-like scores: 1000 samples, 900 of them tied at 0, the 100 others at 1..5; keep 15 %
    # (150): hardest keeps the 100 nonzero ones and 50 of the 900 zeros
    scores = np.zeros(1000)
    scores[np.arange(5, 1000, 10)] = np.arange(100) % 5 + 1
    labels = np.zeros(1000, dtype=int)
    by_index = select_subset("hardest", scores, labels, 0.15, rng(), params=INDEX)
    zeros = by_index.kept[scores[by_index.kept] == 0]
    assert len(zeros) == 50 and zeros.max() < 60  # the 50 lowest-index zeros: 0..4, 6..14, ..
    assert by_index.ties_at_cutoff == 900
    shuffled = select_subset("hardest", scores, labels, 0.15, rng(7))
    zeros = shuffled.kept[scores[shuffled.kept] == 0]
    assert len(zeros) == 50 and zeros.max() > 500 and shuffled.ties_at_cutoff == 900
    assert set(shuffled.kept[scores[shuffled.kept] > 0].tolist()) == set(np.flatnonzero(scores).tolist())


def test_hardest_balanced():
    # f = 2/3 (float 0.666...6): class shares 3f just below 2 -> floors [1, 1], total
    # round(6f ~ 4) = 4 -> 2 extras -> budgets [2, 2].
    # class 0 (idx 0,1,2; scores .9,.1,.5) top 2 -> {0, 2}; class 1 (idx 3,4,5; .5,.3,.8) -> {5, 3}
    kept = select_subset("hardest", SCORES, LABELS, 2 / 3, rng()).kept
    assert kept.tolist() == [0, 2, 3, 5]


def test_easiest_balanced():
    # budgets [2, 2] as above; class 0 lowest two: .1 (1), .5 (2); class 1: .3 (4), .5 (3)
    kept = select_subset("easiest", SCORES, LABELS, 2 / 3, rng()).kept
    assert kept.tolist() == [1, 2, 3, 4]


def test_balanced_half_uses_class_budgets():
    # f = 0.5: shares 1.5, 1.5 -> floors [1, 1]; total round(3) = 3; tie -> class 0 -> [2, 1]
    # hardest: class 0 {0, 2}, class 1 {5}; easiest: class 0 {1, 2}, class 1 {4}
    assert select_subset("hardest", SCORES, LABELS, 0.5, rng()).kept.tolist() == [0, 2, 5]
    assert select_subset("easiest", SCORES, LABELS, 0.5, rng()).kept.tolist() == [1, 2, 4]


def test_unbalanced():
    # k = round(0.5 * 6) = 3 over the whole set.
    # hardest: .9 (0), .8 (5), then the tie .5 at 2 and 3 -> lower index 2 with ties: index
    assert select_subset("hardest", SCORES, LABELS, 0.5, rng(), False, INDEX).kept.tolist() == [0, 2, 5]
    # easiest: .1 (1), .3 (4), then the tie .5 -> 2
    assert select_subset("easiest", SCORES, LABELS, 0.5, rng(), False, INDEX).kept.tolist() == [1, 2, 4]
    # ties: random, default_rng(0).permutation(6) = [3, 2, 5, 4, 0, 1]: idx 2 (5) vs idx 3 (4) -> 3
    assert select_subset("hardest", SCORES, LABELS, 0.5, rng(), False).kept.tolist() == [0, 3, 5]
    assert select_subset("easiest", SCORES, LABELS, 0.5, rng(), False).kept.tolist() == [1, 3, 4]
    assert select_subset("easiest", SCORES, LABELS, 0.5, rng(), False).ties_at_cutoff == 2
    # k = round(4/6 * 6) = 4: hardest .9, .8, .5, .5 -> {0, 5, 2, 3} (class 1 gets 2, class 0 gets 2)
    assert select_subset("hardest", SCORES, LABELS, 2 / 3, rng(), class_balanced=False).kept.tolist() == [0, 2, 3, 5]
    # k = round(1/6*6) = 1 -> hardest is 0 alone, easiest is 1 alone
    assert select_subset("hardest", SCORES, LABELS, 1 / 6, rng(), class_balanced=False).kept.tolist() == [0]
    assert select_subset("easiest", SCORES, LABELS, 1 / 6, rng(), class_balanced=False).kept.tolist() == [1]


def test_ties_break_by_lower_index():
    scores = np.array([1.0, 2.0, 2.0, 1.0, 2.0])
    labels = np.zeros(5, dtype=int)
    # k = round(0.4 * 5) = 2: hardest = the first two 2.0s (1, 2); easiest = the two 1.0s (0, 3)
    assert select_subset("hardest", scores, labels, 0.4, rng(), params=INDEX).kept.tolist() == [1, 2]
    assert select_subset("easiest", scores, labels, 0.4, rng(), params=INDEX).kept.tolist() == [0, 3]
    # k = 3: hardest = all three 2.0s; easiest = 1.0s then the lowest-index 2.0 (1)
    assert select_subset("hardest", scores, labels, 0.6, rng(), params=INDEX).kept.tolist() == [1, 2, 4]
    assert select_subset("easiest", scores, labels, 0.6, rng(), params=INDEX).kept.tolist() == [0, 1, 3]
    # all equal: k = 2 of 5 -> indices 0, 1 for both orders, all 5 tied at the cut
    flat = np.full(5, 0.5)
    assert select_subset("hardest", flat, labels, 0.4, rng(), params=INDEX).kept.tolist() == [0, 1]
    assert select_subset("easiest", flat, labels, 0.4, rng(), params=INDEX).kept.tolist() == [0, 1]
    assert select_subset("easiest", flat, labels, 0.4, rng(), params=INDEX).ties_at_cutoff == 5
    # ties: random, default_rng(0).permutation(5) = [2, 4, 3, 0, 1] (see above): the 2 and 1 lowest
    # values sit at idx 3, 4 -> both orders keep {3, 4} of the all-equal scores
    assert select_subset("hardest", flat, labels, 0.4, rng()).kept.tolist() == [3, 4]
    assert select_subset("easiest", flat, labels, 0.4, rng()).kept.tolist() == [3, 4]


def test_ties_inside_classes():
    # class 0 = idx 0, 2, 4 (scores 3, 3, 3), class 1 = idx 1, 3, 5 (scores 1, 2, 2); f = 0.333...3
    # (just below 1/3): shares 3f just below 1 -> floors [0, 0]; total round(6f ~ 2) = 2 -> 2 extras
    # -> budgets [1, 1]. hardest: class 0 tie -> 0; class 1 tie at 2 -> 3.
    # easiest: class 0 -> 0; class 1 -> 1 (score 1)
    scores = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 2.0])
    labels = np.array([0, 1, 0, 1, 0, 1])
    assert select_subset("hardest", scores, labels, 0.3333333333333333, rng(), params=INDEX).kept.tolist() == [0, 3]
    assert select_subset("easiest", scores, labels, 0.3333333333333333, rng(), params=INDEX).kept.tolist() == [0, 1]


def test_keep_all():
    for name in GENERIC:
        extra = geometry(name, SCORES, LABELS)
        assert select_subset(name, SCORES, LABELS, 1.0, rng(), **extra).kept.tolist() == list(range(6))
        assert select_subset(name, SCORES, LABELS, 1, rng(), class_balanced=False, **extra).kept.tolist() == list(range(6))


def test_random_selector_counts_seeds():
    labels = labels_with_counts([40, 35, 25])
    scores = np.zeros(100)
    # f = 0.3: shares 12, 10.5, 7.5 -> floors [12, 10, 7] (sum 29); total round(30) = 30
    # -> 1 extra; remainders [0, .5, .5], tie -> class 1 -> [12, 11, 7]
    a = select_subset("random", scores, labels, 0.3, rng(1)).kept
    b = select_subset("random", scores, labels, 0.3, rng(1)).kept
    c = select_subset("random", scores, labels, 0.3, rng(2)).kept
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    for kept in (a, c):
        assert len(kept) == 30 and len(set(kept.tolist())) == 30
        assert kept.min() >= 0 and kept.max() < 100 and (np.diff(kept) > 0).all()
        assert np.bincount(labels[kept], minlength=3).tolist() == [12, 11, 7]
    # random ignores the scores
    d = select_subset("random", np.arange(100.0), labels, 0.3, rng(1)).kept
    assert d.tolist() == a.tolist()
    # unbalanced: round(0.3 * 100) = 30 anywhere
    e = select_subset("random", scores, labels, 0.3, rng(1), class_balanced=False).kept
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
    # f = 0.1 of 5 samples: round-half-up(0.5) = 1 -> the single hardest (ties: index -> index 0)
    assert select_subset("hardest", np.zeros(5), np.zeros(5, dtype=int), 0.1, rng(), params=INDEX).kept.tolist() == [0]


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


def geometry(selector, scores, labels):
    """The embeddings a selector that picks by them is given: here each sample's (score, label)."""
    if not needs_embeddings(selector):
        return {}
    return {"embeddings": torch.tensor(np.stack([scores, labels], 1), dtype=torch.float32)}


FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


ORDERING = ("d2", "easiest", "hardest", "medium", "stratified")  # the selectors with a ties parameter


@FAST
@given(problems(), st.sampled_from(GENERIC), st.booleans(), st.integers(0, 2**32 - 1),
       st.sampled_from(["index", "random"]))
def test_selection_properties(problem, selector, balanced, seed, ties):
    scores, labels, k = problem
    params = {"ties": ties} if selector in ORDERING else None
    f = k / 1000
    exact = Fraction(k, 1000)
    assert Fraction(str(f)) == exact  # budget.py reads the decimal the user wrote
    n = len(scores)
    expected_total = math.floor(exact * n + Fraction(1, 2))  # round half up
    assert total_budget(n, f) == expected_total
    if expected_total == 0:  # a keep fraction that keeps nothing is a user error
        with pytest.raises(UserError, match="keeps none"):
            select_subset(selector, scores, labels, f, np.random.default_rng(seed), balanced, params,
                          **geometry(selector, scores, labels))
        return

    extra = geometry(selector, scores, labels)
    selection = select_subset(selector, scores, labels, f, np.random.default_rng(seed), balanced, params, **extra)
    kept = selection.kept
    again = select_subset(selector, scores, labels, f, np.random.default_rng(seed), balanced, params, **extra)
    assert kept.tolist() == again.kept.tolist() and selection.ties_at_cutoff == again.ties_at_cutoff
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
                    assert si > sj or (si == sj and (ties == "random" or i < j))
    if selector in ("hardest", "easiest", "medium"):
        # each group keeps its window of the order by score: by index exactly; with random ties,
        # the same scores (only equal scores change places). The ties the window's ends split are
        # the samples whose score value is on both sides, the same in both modes.
        expected_ties = 0
        for group in groups:
            ordered = order_by_score(scores[group], group, selector == "hardest", "index")
            kept_here = kept[np.isin(kept, group)]
            start, stop = median_window(len(group), len(kept_here)) if selector == "medium" else (0, len(kept_here))
            window = ordered[start:stop]
            if ties == "index":
                assert np.sort(window).tolist() == kept_here.tolist()
            assert np.sort(scores[window]).tolist() == np.sort(scores[kept_here]).tolist()
            inside = set(scores[window].tolist())
            outside = set(scores[np.setdiff1d(group, window)].tolist())
            expected_ties += sum(1 for i in group if scores[i] in inside and scores[i] in outside)
        assert selection.ties_at_cutoff == expected_ties
    if selector in ("random", "herding", "kcenter"):  # no cut-off by score
        assert selection.ties_at_cutoff == 0


@FAST
@given(problems(), st.sampled_from(GENERIC), st.booleans())
def test_keep_all_property(problem, selector, balanced):
    scores, labels, _ = problem
    selection = select_subset(selector, scores, labels, 1.0, np.random.default_rng(0), class_balanced=balanced,
                              **geometry(selector, scores, labels))
    assert selection.kept.tolist() == list(range(len(scores)))
    assert selection.ties_at_cutoff == 0  # nothing dropped, no cut-off


# ------------------------------------------------------------------ selector parameters and guards


def test_every_selector_is_registered_with_its_parameters():
    assert {"easiest", "hardest", "medium", "random", "stratified"} <= set(SELECTORS.names())
    assert SELECTORS.params_type("stratified") is stratified_module.Params
    assert issubclass(stratified_module.Params, OrderParams)
    assert SELECTORS.params("stratified", {"beta": 0.1}, "x") == stratified_module.Params(ties="random", beta=0.1, strata=50)
    assert SELECTORS.params("stratified") == stratified_module.Params(ties="random", beta=0.0, strata=50)
    for name in ("easiest", "hardest", "medium"):  # the ordering selectors: one parameter, ties
        assert SELECTORS.params_type(name) is OrderParams
        assert SELECTORS.params(name, {}, "x") == OrderParams(ties="random")
        assert SELECTORS.params(name, {"ties": "index"}, "x") == OrderParams(ties="index")
    assert SELECTORS.params_type("random") is NoParams
    assert SELECTORS.params("random", {}, "x") == NoParams()


@pytest.mark.parametrize("selector", ["d2", "easiest", "hardest", "medium", "stratified"])
@pytest.mark.parametrize("ties", ["Random", "lowest", "", None, 0, True, ["index"]])
def test_bad_ties_is_one_line(selector, ties):
    with pytest.raises(UserError) as info:
        SELECTORS.params(selector, {"ties": ties}, f"selection.selectors.{selector}")
    assert str(info.value) == f"selector ties must be one of random, index, got {ties!r}"
    with pytest.raises(UserError, match=r"^unknown parameter 'ties' for selector 'random'; allowed: none$"):
        SELECTORS.params("random", {"ties": "index"})


def test_unknown_parameter_in_config_is_one_line():
    with pytest.raises(UserError) as info:
        SELECTORS.params("stratified", {"betta": 0.1}, "selection.selectors.stratified")
    assert str(info.value) == ("config error in selection.selectors.stratified: unknown parameter 'betta' for "
                               "selector 'stratified'; allowed: ties, beta, strata, cutoff_scorer")
    with pytest.raises(UserError, match=r"^unknown selector 'hardst'; known: d2, dual_beta, easiest, hardest, herding, kcenter, medium, random, stratified$"):
        SELECTORS.params("hardst", {}, "selection.selectors.hardst")
    with pytest.raises(UserError, match=r"^selector 'stratified' params must be a mapping of names to values, got \[0\.1\]$"):
        SELECTORS.params("stratified", [0.1])


def test_unknown_parameter_names_the_allowed_ones():
    with pytest.raises(UserError, match=r"unknown parameter 'betta' for selector 'stratified'; allowed: ties, beta, strata, cutoff_scorer"):
        select_subset("stratified", SCORES, LABELS, 0.5, rng(), params={"betta": 0.1})
    with pytest.raises(UserError, match=r"unknown parameter 'beta' for selector 'hardest'; allowed: ties$"):
        select_subset("hardest", SCORES, LABELS, 0.5, rng(), params={"beta": 0.1})
    with pytest.raises(UserError, match=r"'rounds', 'x'.*allowed: ties, beta, strata, cutoff_scorer"):
        select_subset("stratified", SCORES, LABELS, 0.5, rng(), params={"x": 1, "beta": 0.0, "rounds": 2})
    # no parameters, None or {} are all the defaults
    for params in (None, {}):
        assert select_subset("hardest", SCORES, LABELS, 0.5, rng(), params=params).kept.tolist() == [0, 2, 5]


def test_budget_larger_than_group_is_a_user_error(monkeypatch):
    # budget.py never asks for more than a class holds; the guard catches a future bug there
    monkeypatch.setattr(pipeline.selectors, "class_budgets", lambda labels, f: {0: 4, 1: 1})
    with pytest.raises(UserError, match=r"selector 'hardest' asked for 4 samples of class 0, which has only 3"):
        select_subset("hardest", SCORES, LABELS, 0.5, rng())
    monkeypatch.setattr(pipeline.selectors, "total_budget", lambda n, f: 7)
    with pytest.raises(UserError, match=r"selector 'easiest' asked for 7 samples of the 6 samples"):
        select_subset("easiest", SCORES, LABELS, 0.5, rng(), class_balanced=False)


@pytest.mark.parametrize("broken, what", [
    (lambda scores, indices, k, rng, params: Picked(indices[: k + 1]), "returned 3 indices for a budget of 2"),
    (lambda scores, indices, k, rng, params: Picked(indices[: k - 1]), "returned 1 indices for a budget of 2"),
    (lambda scores, indices, k, rng, params: Picked(np.repeat(indices[:1], k)), "returned duplicate indices"),
    (lambda scores, indices, k, rng, params: Picked(indices[:k] + 100), "returned indices outside its group"),
    (lambda scores, indices, k, rng, params: Picked(indices[:k], -1), "returned ties_at_cutoff -1"),
    (lambda scores, indices, k, rng, params: Picked(indices[:k], 4), "returned ties_at_cutoff 4"),
])
def test_selector_returning_a_wrong_subset_is_a_bug(monkeypatch, broken, what):
    monkeypatch.setitem(SELECTORS._entries, "broken", broken)
    with pytest.raises(ValueError, match="internal error: selector 'broken' " + what) as info:
        select_subset("broken", SCORES, LABELS, 0.5, rng())  # budgets [2, 1]
    assert not isinstance(info.value, UserError)  # a bug keeps its traceback


def test_selector_returning_no_picked_is_a_bug(monkeypatch):
    monkeypatch.setitem(SELECTORS._entries, "broken", lambda scores, indices, k, rng, params: indices[:k])
    with pytest.raises(TypeError, match="internal error: selector 'broken' returned a ndarray, not a Picked"):
        select_subset("broken", SCORES, LABELS, 0.5, rng())


# ------------------------------------------------------------------ medium (MDSLR)


def medium(scores, k, ties="index"):
    scores = np.asarray(scores, dtype=float)
    picked = SELECTORS.get("medium")(scores, np.arange(len(scores)), k, rng(), OrderParams(ties=ties))
    return np.sort(picked.kept).tolist()


def test_median_window_formula():
    # [floor(n/2) - (k - floor(k/2)), floor(n/2) + floor(k/2))
    assert median_window(7, 3) == (1, 4)  # 3 - (3 - 1) = 1, 3 + 1 = 4
    assert median_window(7, 1) == (2, 3)  # 3 - (1 - 0) = 2, 3 + 0 = 3: one below the median (3)
    assert median_window(7, 2) == (2, 4)  # 3 - (2 - 1) = 2, 3 + 1 = 4
    assert median_window(7, 6) == (0, 6)  # 3 - (6 - 3) = 0, 3 + 3 = 6
    assert median_window(6, 2) == (2, 4)  # 3 - (2 - 1) = 2, 3 + 1 = 4: the two middle positions
    assert median_window(6, 3) == (1, 4)  # 3 - (3 - 1) = 1, 3 + 1 = 4
    assert median_window(6, 6) == (0, 6)  # 3 - (6 - 3) = 0, 3 + 3 = 6: k = n even needs no clamp
    # k = n odd is the only case out of range: 3 - (7 - 3) = -1, 3 + 3 = 6 -> shifted to [0, 7)
    assert median_window(7, 7) == (0, 7)
    assert median_window(1, 1) == (0, 1)  # 0 - (1 - 0) = -1 -> [0, 1)
    for n in range(1, 40):
        for k in range(n + 1):
            start, stop = n // 2 - (k - k // 2), n // 2 + k // 2
            assert stop - start == k and stop <= n
            assert (start >= 0) == (k < n or n % 2 == 0)
            assert median_window(n, k) == ((start, stop) if start >= 0 else (0, n))


def test_medium_hand_examples():
    # scores 0..6 at indices 0..6: ascending order = indices; window (1, 4) -> indices 1, 2, 3
    assert medium(range(7), 3) == [1, 2, 3]
    # shuffled: ascending order is idx 1 (0), 3 (1), 5 (2), 6 (3), 4 (4), 2 (5), 0 (6);
    # k = 3 -> positions 1, 2, 3 -> idx 3, 5, 6; k = 1 -> position 2 -> idx 5
    shuffled = [6, 0, 5, 1, 4, 2, 3]
    assert medium(shuffled, 3) == [3, 5, 6]
    assert medium(shuffled, 1) == [5]
    # k = 6 -> positions 0..5, dropping the single hardest (idx 0, score 6)
    assert medium(shuffled, 6) == [1, 2, 3, 4, 5, 6]
    # k = n keeps all, odd n (clamped) and even n
    assert medium(shuffled, 7) == list(range(7))
    assert medium([0.3, 0.1, 0.2, 0.6, 0.5, 0.4], 6) == list(range(6))
    # even n = 6: ascending idx 1 (.1), 2 (.2), 0 (.3), 5 (.4), 4 (.5), 3 (.6);
    # k = 2 -> positions 2, 3 -> idx 0, 5; k = 4 -> window (1, 5) -> idx 2, 0, 5, 4
    assert medium([0.3, 0.1, 0.2, 0.6, 0.5, 0.4], 2) == [0, 5]
    assert medium([0.3, 0.1, 0.2, 0.6, 0.5, 0.4], 4) == [0, 2, 4, 5]


def test_medium_ties_by_index():
    # ascending with ties by index: idx 3 (0), 0 (1), 1 (1), 2 (1), 4 (2); n = 5, floor(n/2) = 2
    scores = [1, 1, 1, 0, 2]
    assert medium(scores, 1) == [0]  # window (2 - 1, 2 + 0) = (1, 2) -> idx 0
    assert medium(scores, 2) == [0, 1]  # (2 - 1, 2 + 1) = (1, 3) -> idx 0, 1
    assert medium(scores, 3) == [0, 1, 3]  # (2 - 2, 2 + 1) = (0, 3) -> idx 3, 0, 1
    assert medium(np.full(5, 0.5), 3) == [0, 1, 2]  # all equal: positions = indices


def test_medium_random_ties_and_ties_at_both_ends():
    # ties: random, default_rng(0).permutation(5) = [2, 4, 3, 0, 1]: the 1s at idx 0, 1, 2 get
    # 2, 4, 3 -> ascending order idx 3 (0), 0, 2, 1 (the 1s), 4 (2)
    scores = [1, 1, 1, 0, 2]
    assert medium(scores, 1, "random") == [0]  # position 1 -> idx 0
    assert medium(scores, 2, "random") == [0, 2]  # positions 1, 2
    assert medium(scores, 3, "random") == [0, 2, 3]  # positions 0..2
    # ties_at_cutoff: k = 1 keeps one 1 and drops two (3 tied samples split); k = 3 keeps 0 and two
    # 1s (again the three 1s split); k = 4 keeps the 0 and the three 1s (no value on both sides)
    for k, ties in ((1, 3), (2, 3), (3, 3), (4, 0)):
        picked = SELECTORS.get("medium")(np.array(scores, float), np.arange(5), k, rng(), OrderParams("index"))
        assert picked.ties_at_cutoff == ties
    # the window's two ends both cut one tie: [0, 0, 1, 1, 2, 2], k = 2 keeps positions 2, 3 (the
    # two 1s: no split); k = 4 keeps positions 1..4: one 0, both 1s, one 2 -> the 0s and 2s split (4)
    flat_ends = np.array([0, 0, 1, 1, 2, 2.0])
    assert SELECTORS.get("medium")(flat_ends, np.arange(6), 2, rng(), OrderParams("index")).ties_at_cutoff == 0
    assert SELECTORS.get("medium")(flat_ends, np.arange(6), 4, rng(), OrderParams("index")).ties_at_cutoff == 4


def test_medium_per_class():
    # class 0 = idx 0, 2, 4, 6, 8 (scores 5, 1, 4, 2, 3); class 1 = idx 1, 3, 5, 7 (.4, .1, .3, .2)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0])
    scores = np.array([5, 0.4, 1, 0.1, 4, 0.3, 2, 0.2, 3])
    # f = 0.5: shares 2.5, 2 -> floors [2, 2]; total round(4.5) = 5 -> extra to class 0 -> [3, 2].
    # class 0 ascending idx 2, 6, 8, 4, 0; n = 5, k = 3: (2 - 2, 2 + 1) = (0, 3) -> idx 2, 6, 8.
    # class 1 ascending idx 3, 7, 5, 1; n = 4, k = 2: (2 - 1, 2 + 1) = (1, 3) -> idx 7, 5.
    assert select_subset("medium", scores, labels, 0.5, rng()).kept.tolist() == [2, 5, 6, 7, 8]
    # unbalanced, k = 5 of 9: ascending idx 3, 7, 5, 1, 2, 6, 8, 4, 0; (4 - 3, 4 + 2) = (1, 6)
    # -> idx 7, 5, 1, 2, 6
    assert select_subset("medium", scores, labels, 0.5, rng(), class_balanced=False).kept.tolist() == [1, 2, 5, 6, 7]


# ------------------------------------------------------------------ stratified (CCS)


def stratified_picked(scores, k, seed=0, **params):
    scores = np.asarray(scores, dtype=float)
    params = SELECTORS.params("stratified", {"ties": "index", **params})
    return SELECTORS.get("stratified")(scores, np.arange(len(scores)), k, rng(seed), params)


def stratified(scores, k, seed=0, **params):
    return np.sort(stratified_picked(scores, k, seed, **params).kept).tolist()


def test_stratum_of_equal_width_max_in_last():
    # [0, 4] in 4 bins of width 1: [0, 1), [1, 2), [2, 3), [3, 4]; the max 4 joins bin 3
    assert stratum_of(np.array([0, 0.99, 1, 2.5, 3, 4]), 4).tolist() == [0, 0, 1, 2, 3, 3]
    # negative scores: [-4, 0] in 2 bins of width 2
    assert stratum_of(np.array([-4.0, -2.1, -2.0, 0.0]), 2).tolist() == [0, 0, 1, 1]
    assert stratum_of(np.full(3, 7.0), 50).tolist() == [0, 0, 0]  # all equal: one bin
    assert stratum_of(np.array([1.0, 5.0, 9.0]), 1).tolist() == [0, 0, 0]


def test_allocate_smallest_stratum_first():
    # sizes [2, 1, 5, 6], budget 7: visit bins 1, 0, 2, 3.
    # bin 1: min(1, 7 // 4 = 1) = 1; bin 0: min(2, 6 // 3 = 2) = 2; bin 2: min(5, 4 // 2 = 2) = 2;
    # bin 3: min(6, 2 // 1) = 2
    assert allocate(np.array([2, 1, 5, 6]), 7).tolist() == [2, 1, 2, 2]
    # budget 8: 1 (8 // 4 = 2), 2 (7 // 3 = 2), 2 (5 // 2 = 2), then the largest absorbs 3 // 1 = 3
    assert allocate(np.array([2, 1, 5, 6]), 8).tolist() == [2, 1, 2, 3]
    # empty strata take nothing and do not count; equal sizes in bin order: bin 1 takes 5 // 2 = 2,
    # bin 3 takes the remaining 3
    assert allocate(np.array([0, 3, 0, 3]), 5).tolist() == [0, 2, 0, 3]
    # budget >= all: every stratum whole
    assert allocate(np.array([0, 3, 1]), 4).tolist() == [0, 3, 1]


# [0, 4] in 4 strata of width 1: bin 0 = idx 0, 1; bin 1 = idx 2; bin 2 = idx 3..7; bin 3 = idx 8..13
STRATA_SCORES = np.array([0.0, 0.5, 1.2, 2.1, 2.2, 2.3, 2.4, 2.5, 3.0, 3.2, 3.4, 3.6, 3.8, 4.0])
BINS = [[0, 1], [2], [3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13]]


@pytest.mark.parametrize("k, shares", [(7, [2, 1, 2, 2]), (8, [2, 1, 2, 3]), (14, [2, 1, 5, 6])])
def test_stratified_hand_allocation(k, shares):
    # shares from test_allocate_smallest_stratum_first: bins 0 and 1 are smaller than their share
    # and taken whole; the floor remainder at k = 8 goes to the largest stratum
    for seed in range(5):
        kept = set(stratified(STRATA_SCORES, k, seed, strata=4))
        assert len(kept) == k
        assert [len(kept & set(b)) for b in BINS] == shares
    assert stratified(STRATA_SCORES, 14, strata=4) == list(range(14))


def test_stratified_same_seed_same_subset():
    scores = rng(5).normal(size=300)
    a, b = stratified(scores, 60, seed=3), stratified(scores, 60, seed=3)
    assert a == b and len(set(a)) == 60
    assert stratified(scores, 60, seed=4) != a
    params = {"beta": 0.1, "strata": 7}
    labels = np.arange(300) % 3
    x = select_subset("stratified", scores, labels, 0.2, rng(9), params=params).kept
    y = select_subset("stratified", scores, labels, 0.2, rng(9), params=params).kept
    assert x.tolist() == y.tolist()
    assert np.bincount(labels[x]).tolist() == [20, 20, 20]


def test_stratified_cutoff_drops_exactly_the_hardest():
    # beta = 0.3 of 10: floor(3) = 3 hardest (idx 7, 8, 9) dropped; k = 7 keeps the rest
    assert stratified(np.arange(10.0), 7, beta=0.3) == list(range(7))
    # ties by index: scores 5, 5, 5, 1, 2 with beta = 0.4 -> floor(2) drops idx 0, 1 (not 2)
    assert stratified([5, 5, 5, 1, 2], 3, beta=0.4) == [2, 3, 4]
    assert stratified_picked([5, 5, 5, 1, 2], 3, beta=0.4).ties_at_cutoff == 3  # the three 5s
    # ties: random, default_rng(0).permutation(5) = [2, 4, 3, 0, 1]: the 5s get 2, 4, 3 -> cut idx 0, 2
    assert stratified([5, 5, 5, 1, 2], 3, beta=0.4, ties="random") == [1, 3, 4]
    # no cutoff (beta = 0): no tie order drawn, so ties changes nothing and nothing is counted
    for seed in range(3):
        assert stratified(STRATA_SCORES, 7, seed, strata=4, ties="random") == stratified(STRATA_SCORES, 7, seed, strata=4)
        assert stratified_picked(np.zeros(6), 3, seed, ties="random").ties_at_cutoff == 0
    # beta read as written: 0.29 * 100 = 29 exactly (floats give 28.999999999999996 -> 28)
    assert stratified(np.arange(100.0), 71, beta=0.29) == list(range(71))
    # a smaller budget never picks a cut sample: beta = 0.5 of 20 drops idx 10..19
    for seed in range(5):
        assert max(stratified(np.arange(20.0), 4, seed, beta=0.5, strata=3)) < 10
    # beta = 0.15 of 6: floor(0.9) = 0 -> nothing dropped
    assert stratified(np.arange(6.0), 6, beta=0.15) == list(range(6))


def test_stratified_per_class_cutoff():
    # class 0 = idx 0..5 (scores 0, 0, 1, 1, 2, 2), class 1 = idx 6..11 (10, 20, .., 60).
    # f = 0.5 -> budgets [3, 3]; beta = 0.5 drops floor(3) per class: class 0 drops idx 4, 5 (2s)
    # and 2 (first 1), leaving 0, 1, 3; class 1 drops 11, 10, 9, leaving 6, 7, 8: all kept
    scores = np.array([0, 0, 1, 1, 2, 2, 10, 20, 30, 40, 50, 60], dtype=float)
    labels = np.repeat([0, 1], 6)
    selection = select_subset("stratified", scores, labels, 0.5, rng(), params={"beta": 0.5, "strata": 3, "ties": "index"})
    assert selection.kept.tolist() == [0, 1, 3, 6, 7, 8]
    assert selection.ties_at_cutoff == 2  # the two 1s of class 0 straddle the cutoff
    # ties: random: class 0 draws default_rng(0).permutation(6) = [3, 2, 5, 4, 0, 1]; the 1s at
    # idx 2, 3 get 5, 4 -> idx 3 is cut first, leaving 0, 1, 2
    selection = select_subset("stratified", scores, labels, 0.5, rng(), params={"beta": 0.5, "strata": 3})
    assert selection.kept.tolist() == [0, 1, 2, 6, 7, 8] and selection.ties_at_cutoff == 2
    # beta = 0: 3 strata per class of 2 samples each (class 0: {0,1}, {2,3}, {4,5}; class 1:
    # [10, 60] width 50/3: {6,7}, {8,9}, {10,11}) -> 3 // 3 = 1 from every pair
    for seed in range(5):
        kept = set(select_subset("stratified", scores, labels, 0.5, rng(seed), params={"strata": 3}).kept.tolist())
        assert [len(kept & {i, i + 1}) for i in range(0, 12, 2)] == [1] * 6


def test_stratified_too_few_after_cutoff():
    # beta = 0.3 of 10 drops 3, leaving 7 < k = 8
    with pytest.raises(UserError, match=r"beta = 0\.3 drops 3 of n = 10 samples.*too few \(7\).*k = 8"):
        select_subset("stratified", np.arange(10.0), np.zeros(10, dtype=int), 0.8, rng(), params={"beta": 0.3})
    # f = 1 with any cutoff that drops something
    with pytest.raises(UserError, match="too few"):
        select_subset("stratified", np.arange(10.0), np.zeros(10, dtype=int), 1.0, rng(), params={"beta": 0.1})


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, float("nan"), "0.1", True, None])
def test_stratified_bad_beta(beta):
    with pytest.raises(UserError, match=r"beta .*\[0, 1\), got"):
        select_subset("stratified", SCORES, LABELS, 0.5, rng(), params={"beta": beta})


@pytest.mark.parametrize("strata", [0, -3, 2.5, 50.0, "50", True])
def test_stratified_bad_strata(strata):
    with pytest.raises(UserError, match=r"strata must be an integer >= 1, got"):
        select_subset("stratified", SCORES, LABELS, 0.5, rng(), params={"strata": strata})


@FAST
@given(problems(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]), st.integers(1, 60), st.booleans(), st.integers(0, 2**32 - 1),
       st.sampled_from(["index", "random"]))
def test_stratified_properties(problem, beta, strata, balanced, seed, ties):
    scores, labels, k = problem
    f = k / 1000
    if total_budget(len(scores), f) == 0:
        return
    if balanced:
        groups = [(np.flatnonzero(labels == c), k_c) for c, k_c in class_budgets(labels, f).items()]
    else:
        groups = [(np.arange(len(scores)), total_budget(len(scores), f))]
    cuts = [math.floor(Fraction(str(beta)) * len(g)) for g, _ in groups]
    params = {"beta": beta, "strata": strata, "ties": ties}
    if any(len(g) - cut < k_g for (g, k_g), cut in zip(groups, cuts)):
        with pytest.raises(UserError, match="too few"):
            select_subset("stratified", scores, labels, f, np.random.default_rng(seed), balanced, params)
        return
    selection = select_subset("stratified", scores, labels, f, np.random.default_rng(seed), balanced, params)
    kept = selection.kept
    expected_ties = 0
    for (group, k_g), cut in zip(groups, cuts):
        # the cut by index; with random ties another choice among the scores equal to the last cut
        # one, but the same scores: the pool's scores (so its strata) are the same in both modes
        hard = order_by_score(scores[group], group, True, "index")
        mine = kept[np.isin(kept, group)]
        assert len(mine) == k_g
        pool = np.sort(hard[cut:])
        if ties == "index":
            assert not np.isin(mine, hard[:cut]).any()
        values, counts = np.unique(scores[pool], return_counts=True)
        mine_values, mine_counts = np.unique(scores[mine], return_counts=True)
        assert all(v in values and counts[np.searchsorted(values, v)] >= c for v, c in zip(mine_values, mine_counts))
        cut_values, pool_values = set(scores[hard[:cut]].tolist()), set(scores[pool].tolist())
        expected_ties += sum(1 for i in group if scores[i] in cut_values and scores[i] in pool_values)
        # water-filling: no stratum gets more than one sample over a stratum that was not taken whole
        bins = stratum_of(scores[pool], strata)
        bin_of = dict(zip(scores[pool].tolist(), bins.tolist()))
        sizes = np.bincount(bins, minlength=strata)
        shares = np.bincount([bin_of[v] for v in scores[mine].tolist()], minlength=strata)
        assert (shares <= sizes).all()
        for j in np.flatnonzero(shares < sizes):
            assert shares.max() <= shares[j] + 1
    assert selection.ties_at_cutoff == expected_ties


# ------------------------------------------------------------------ subset stage

DATA = {"dataset": "tiny"}
META = {"scorer": "el2n", "dataset": "tiny", "dataset_fingerprint": "feedbeefcafe0001", "spec": {"data": DATA}}


def write_scores(table, path, meta=META):
    write_table(table, path, {**meta, "scores_hash": scores_hash(table)})


@pytest.fixture
def score_file(tmp_path):
    path = tmp_path / "scores.parquet"
    table = pd.DataFrame({"sample_index": np.arange(6), "label": LABELS, "score": SCORES})
    write_scores(table, path)
    return path


def run_subset(score_file, out, **spec):
    spec = {"scorer": "el2n", "data": DATA, "selector": "hardest", "keep_fraction": 0.5, "seed": 3, "class_balanced": True,
            **spec}
    pipeline.stages.subsets.main(["--spec", json.dumps(spec), "--scores", str(score_file), "--output", str(out)])
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
    assert meta["scores_hash"] == read_meta(score_file)["scores_hash"]
    assert meta["dataset_fingerprint"] == META["dataset_fingerprint"]
    assert meta["dataset"] == "tiny"
    assert meta["scorer"] == "el2n"
    assert meta["stage"] == "subsets"
    assert meta["ties_at_cutoff"] == 0  # no equal scores inside a class
    assert meta["selector_params_used"] == {"ties": "random"}
    assert meta["embeddings"] is None  # (a selector that picks by embeddings records which)


def test_subset_stage_unbalanced_easiest(score_file, tmp_path):
    frame, meta = run_subset(score_file, tmp_path / "a.parquet", selector="easiest", class_balanced=False,
                             params={"ties": "index"})
    # k = 3 overall: .1 (1), .3 (4), tie .5 -> 2
    assert frame["sample_index"].tolist() == [1, 2, 4]
    assert frame["label"].tolist() == [0, 0, 1]
    assert meta["class_balanced"] is False
    assert meta["ties_at_cutoff"] == 2  # the two .5s (idx 2 kept, 3 dropped)
    assert meta["selector_params"] == {"ties": "index"} and meta["selector_params_used"] == {"ties": "index"}


def test_subset_stage_random_ties_from_the_selection_seed(score_file, tmp_path):
    # the stage's generator is numpy_generator(seed, "select", selector); for seed 3 and easiest its
    # permutation(6) is [2, 5, 4, 3, 1, 0]: the tied .5s at idx 2 and 3 get 4 and 3 -> idx 3 is kept
    assert numpy_generator(3, "select", "easiest").permutation(6).tolist() == [2, 5, 4, 3, 1, 0]
    frame, meta = run_subset(score_file, tmp_path / "a.parquet", selector="easiest", class_balanced=False)
    assert frame["sample_index"].tolist() == [1, 3, 4]
    assert meta["ties_at_cutoff"] == 2
    # parameters as written in the spec (none), and as used (the default ties: random)
    assert meta["selector_params"] == {} and meta["selector_params_used"] == {"ties": "random"}


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
    write_scores(table, path)
    with pytest.raises(SystemExit) as info:
        run_subset(path, tmp_path / "out.parquet")
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error:")


@pytest.mark.parametrize("spec, found", [({"scorer": "forgetting"}, "scorer 'el2n', not this job's 'forgetting'"),
                                         ({"data": {"dataset": "cifar10"}},
                                          "data {'dataset': 'tiny'}, not this job's {'dataset': 'cifar10'}")])
def test_subset_stage_refuses_the_scores_of_another_scorer_or_data(score_file, tmp_path, capsys, spec, found):
    """A score table put where another scorer's, or another experiment's, belongs stops the job in
    one line naming it, instead of selecting from the wrong samples."""
    out = tmp_path / "subset.parquet"
    with pytest.raises(SystemExit) as info:
        run_subset(score_file, out, **spec)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: {score_file} holds scores with {found}; delete it (or run "
                                               f"snakemake --forcerun scores) so that it is scored again")
    assert not out.exists()


def test_subset_stage_refuses_scores_changed_after_they_were_written(score_file, tmp_path, capsys):
    table, meta = read_table(score_file)
    write_table(table.assign(score=table["score"][::-1].to_numpy()), score_file, meta)  # the same record, other scores
    with pytest.raises(SystemExit):
        run_subset(score_file, tmp_path / "subset.parquet")
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {score_file} was changed after it was written: its scores hash to ")
    assert f"its record says {meta['scores_hash']}; delete it and run the workflow again" in error


def test_stratified_cuts_by_another_scorer_when_asked():
    """CCS's code cuts the hardest by AUM and stratifies by the selection's scores: with beta 0.2 of
    6 samples (floor(1.2) = 1) the one cut is the highest cutoff score (sample 0), not the highest score (sample 5);
    k = 5 then keeps all that remain."""
    scores, labels = np.arange(6.0), np.zeros(6, dtype=int)
    cutoff = np.array([5.0, 0, 0, 0, 0, 0])
    rng = np.random.default_rng(0)
    by_cutoff = select_subset("stratified", scores, labels, 5 / 6, rng, False, {"beta": 0.2, "cutoff_scorer": "aum"},
                              cutoff_scores=cutoff)
    assert by_cutoff.kept.tolist() == [1, 2, 3, 4, 5]
    own = select_subset("stratified", scores, labels, 5 / 6, np.random.default_rng(0), False, {"beta": 0.2})
    assert own.kept.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(UserError, match="a second scorer.s scores are given exactly when its cutoff_scorer names one"):
        select_subset("stratified", scores, labels, 0.5, rng, False, {"beta": 0.1, "cutoff_scorer": "aum"})  # no scores
    with pytest.raises(UserError, match="selector 'hardest' reads no second scorer's scores, but some were given"):
        select_subset("hardest", scores, labels, 0.5, rng, False, {}, cutoff_scores=cutoff)


# ------------------------------------------------------------------ herding and kcenter (embeddings)

LINE = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])  # five 1-D points, one class
ZEROS = np.zeros(5)


def geometric(selector, points, labels, f, generator=None, balanced=True):
    return select_subset(selector, np.zeros(len(points)), labels, f, generator or rng(), balanced, embeddings=points)


@pytest.mark.parametrize("f, kept", [(0.2, [3]), (0.4, [2, 3]), (0.6, [1, 2, 3]), (1.0, [0, 1, 2, 3, 4])])
def test_herding_by_hand_on_a_line(f, kept):
    """Mean 16 / 5 = 3.2. Step 1 keeps the point nearest 3.2: 3. Step 2 the point nearest
    2 x 3.2 - 3 = 3.4 among the rest: 2 (1.4 away; 10 is 6.6). Step 3 nearest 3 x 3.2 - 5 = 4.6:
    1 (3.6; 10 is 5.4)."""
    assert geometric("herding", LINE, np.zeros(5, int), f).kept.tolist() == kept


def test_herding_by_hand_in_the_plane_ties_to_the_lowest_index():
    """A square's corners and its centre, mean (1, 1): the centre (4) first; then the target
    2 (1, 1) - (1, 1) = (1, 1) is equally far from the four corners: the lowest index, 0; then
    3 (1, 1) - (1, 1) = (2, 2): corner 3; then 4 (1, 1) - (3, 3) = (1, 1): corners 1 and 2 tie: 1."""
    square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    labels = np.zeros(5, int)
    assert geometric("herding", square, labels, 0.6).kept.tolist() == [0, 3, 4]
    assert geometric("herding", square, labels, 0.8).kept.tolist() == [0, 1, 3, 4]


def test_herding_per_class_and_over_the_whole_set():
    """Class 0 at 0, 1, 5 (mean 2) and class 1 at 10, 11, 12 (mean 11); f = 0.5: budgets 2 and 1
    (equal remainders: the lower class gets the extra one). Class 0 keeps 1 (nearest 2), then
    the point nearest 2 x 2 - 1 = 3: 5; class 1 keeps 11. Over the whole set (mean 6.5): 5, then
    nearest 13 - 5 = 8: 10, then nearest 19.5 - 15 = 4.5: 1 (3.5; 0 is 4.5 away)."""
    points = torch.tensor([[0.0], [1.0], [5.0], [10.0], [11.0], [12.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert geometric("herding", points, labels, 0.5).kept.tolist() == [1, 2, 4]
    assert geometric("herding", points, labels, 0.5, balanced=False).kept.tolist() == [1, 2, 3]


class FixedStart:
    """A generator whose one draw, kcenter's first centre, is position ``start`` of the group."""

    def __init__(self, start):
        self.start = start

    def integers(self, n):
        assert 0 <= self.start < n
        return self.start


@pytest.mark.parametrize("f, kept", [(0.2, [2]), (0.4, [2, 4]), (0.6, [0, 2, 4]), (0.8, [0, 1, 2, 4])])
def test_kcenter_by_hand_on_a_line(f, kept):
    """First centre 2 (drawn); the farthest from it is 10; then each point's distance to its
    nearest centre is 0: 2, 1: 1, 3: 1, so 0; then 1 and 3 are both 1 away: the lower index, 1."""
    assert geometric("kcenter", LINE, np.zeros(5, int), f, FixedStart(2)).kept.tolist() == kept


def test_kcenter_starts_from_the_seeded_draw():
    """k = 1 keeps exactly the first centre: the generator's integers(n), so the same seed keeps
    the same sample and the selection's generator decides it."""
    for seed in range(5):
        start = int(np.random.default_rng(seed).integers(5))
        assert geometric("kcenter", LINE, np.zeros(5, int), 0.2, rng(seed)).kept.tolist() == [start]
    # from 10 (seed 0 draws position 4), the farthest is 0, then 3 (3 from 0, 7 from 10)
    assert int(np.random.default_rng(0).integers(5)) == 4
    assert geometric("kcenter", LINE, np.zeros(5, int), 0.6, rng(0)).kept.tolist() == [0, 3, 4]


def test_a_class_whose_budget_is_zero_keeps_none_and_draws_nothing():
    """f = 0.1 of classes of 1 and 10 samples: round(1.1) = 1, all of it to class 1 (class 0's
    share is 0.1). kcenter's one draw is class 1's, the generator's first: nothing was drawn for
    class 0. Herding keeps the point nearest 5.5 (the mean of 1..10): 5 and 6 tie, the lower index."""
    points = torch.arange(11.0).reshape(11, 1)
    labels = np.array([0] + [1] * 10)
    first = int(np.random.default_rng(0).integers(10))
    assert geometric("kcenter", points, labels, 0.1, rng(0)).kept.tolist() == [1 + first]
    assert geometric("herding", points, labels, 0.1).kept.tolist() == [5]


def test_embeddings_go_exactly_to_the_selectors_that_pick_by_them():
    for selector in ("herding", "kcenter"):
        assert needs_embeddings(selector)
        with pytest.raises(UserError, match=f"^selector '{selector}' selects by the scoring teacher's embeddings, "
                                            "but none were given$"):
            select_subset(selector, ZEROS, np.zeros(5, int), 0.4, rng())
    assert not any(needs_embeddings(s) for s in ("easiest", "hardest", "medium", "random", "stratified"))
    with pytest.raises(UserError, match="^selector 'hardest': embeddings are given exactly to the selectors that pick"):
        select_subset("hardest", ZEROS, np.zeros(5, int), 0.4, rng(), embeddings=LINE)


def test_distances_in_blocks_are_the_distances():
    """Blocks of 2 rows over 5 float16 points, the last block short: the same squared distances,
    in float32, and the mean summed in float64."""
    points = torch.tensor([[0.5, 1.0], [2.0, -1.0], [3.0, 3.0], [-4.0, 0.25], [1.0, 1.0]], dtype=torch.float16)
    center = torch.tensor([1.0, 2.0], dtype=torch.float64)
    distances = squared_distances(points, center, chunk_rows=2)
    assert distances.dtype == torch.float32
    assert distances.tolist() == [1.25, 10.0, 5.0, 28.0625, 1.0]
    assert row_mean(points, chunk_rows=2).tolist() == [0.5, 0.85]


# ------------------------------------------------------------------ d2 (scores and embeddings)

# LINE with neighbors = 1: kNN(0) = 1, kNN(1) = 0 (0 and 2 are both 1 away: the lower index),
# kNN(2) = 1 (1 and 3 tie), kNN(3) = 2, kNN(10) = 3: undirected, the path 0 - 1 - 2 - 3 - 4
PATH = {"neighbors": 1, "gamma_forward": 0.0, "gamma_reverse": 0.0, "ties": "index"}  # unit weights
ONE_TO_FIVE = np.arange(1.0, 6.0)


def d2_select(scores, points, labels, f, params, generator=None, balanced=True):
    return select_subset("d2", scores, labels, f, generator or rng(), balanced, params, embeddings=points)


def test_d2_graph_and_forward_message_passing_by_hand():
    graph = d2_module.knn_graph(LINE, 1)
    assert graph.start.tolist() == [0, 1, 3, 5, 7, 8]
    assert graph.neighbor.tolist() == [1, 0, 2, 1, 3, 2, 4, 3] and graph.distance.tolist() == [1, 1, 1, 1, 1, 1, 7, 7]
    # unit weights: each score plus its neighbours'
    assert d2_module.forward(ONE_TO_FIVE, graph, 0.0).tolist() == [3.0, 6.0, 9.0, 12.0, 9.0]
    e = math.exp(-1)
    expected = [1 + 2 * e, 2 + 4 * e, 3 + 6 * e, 4 + 3 * e + 5 * math.exp(-7), 5 + 4 * math.exp(-7)]
    assert d2_module.forward(ONE_TO_FIVE, graph, 1.0) == pytest.approx(expected, rel=1e-12, abs=0)
    # neighbors = 2: kNN 0: 1, 2; 1: 0, 2 (tie at 1); 2: 1, 3 (tie at 1); 3: 2, 1; 10: 3, 2, so
    # N(2) = 0, 1, 3, 4 and N(4) = 2, 3 at 8 and 7
    graph = d2_module.knn_graph(LINE, 2)
    assert np.split(graph.neighbor, graph.start[1:-1])[2].tolist() == [0, 1, 3, 4]
    assert graph.distance[graph.start[4]:].tolist() == [8.0, 7.0]


@pytest.mark.parametrize("f, kept", [(0.2, [3]), (0.4, [1, 3]), (0.6, [0, 1, 3]), (0.8, [0, 1, 3, 4]),
                                     (1.0, [0, 1, 2, 3, 4])])
def test_d2_by_hand_on_a_line(f, kept):
    """Values after forward passing 3, 6, 9, 12, 9 (above). Keep 3 (12): 2 and 4 lose 12, to -3
    and -3. Keep 1 (6): 0 loses 6 (-3), 2 too (-9). Then 0 and 4 tie at -3: the lower index, 0;
    then 4. hardest would keep 3 and 4 first: d2 skips 3's neighbour."""
    assert d2_select(ONE_TO_FIVE, LINE, np.zeros(5, int), f, PATH).kept.tolist() == kept
    assert select_subset("hardest", ONE_TO_FIVE, np.zeros(5, int), 0.4, rng()).kept.tolist() == [3, 4]


def test_d2_ties_at_the_cut():
    """f = 0.6 cuts between 0 and 4, both at -3: 0 kept at -3 and 4 left out, 2 tied samples; f = 0.4
    cuts between 1 (kept at 6) and values 3, -3, -3: none tied."""
    labels = np.zeros(5, int)
    assert d2_select(ONE_TO_FIVE, LINE, labels, 0.6, PATH).ties_at_cutoff == 2
    assert d2_select(ONE_TO_FIVE, LINE, labels, 0.4, PATH).ties_at_cutoff == 0


def test_d2_random_ties_draw_one_permutation_only_when_the_values_tie():
    """Values 3, 6, 9, 12, 9 tie (2 and 4): one permutation of the group is drawn and orders the
    tie of 0 and 4 at -3 met at the third keep. Scores 1, 2, 3, 4, 6 give 3, 6, 9, 13, 10: no
    equal values, no draw (the generator is left as it was); the tie of 0 and 4 at -3 met at the
    third keep goes to the lower index, as with ties: index."""
    labels, params = np.zeros(5, int), {**PATH, "ties": "random"}
    thirds = set()
    for seed in range(6):
        rank = np.random.default_rng(seed).permutation(5)
        third = 0 if rank[0] < rank[4] else 4
        selection = d2_select(ONE_TO_FIVE, LINE, labels, 0.6, params, rng(seed))
        assert selection.kept.tolist() == sorted([1, 3, third]) and selection.ties_at_cutoff == 2
        thirds.add(third)
    assert thirds == {0, 4}
    scores, generator = np.array([1.0, 2, 3, 4, 6]), rng(7)
    assert d2_select(scores, LINE, labels, 0.6, params, generator).kept.tolist() == [0, 1, 3]
    assert generator.integers(2**30) == rng(7).integers(2**30)
    assert d2_select(scores, LINE, labels, 0.6, PATH).kept.tolist() == [0, 1, 3]


def test_d2_weighted_reverse_messages():
    """gamma_reverse = ln 2: a neighbour at distance 1 loses half the kept value. LINE's path,
    scores 0, 0, 8, 0, 1, unit forward weights: values 0, 8, 8, 9, 1. Keep 3 (9): 2 to 8 - 4.5 =
    3.5, 4 to 1 - 9 / 2^7. Keep 1 (8): 0 to -4, 2 to 3.5 - 4 = -0.5. Then 4 (0.93)."""
    params = {**PATH, "gamma_reverse": math.log(2)}
    kept = [d2_select(np.array([0.0, 0, 8, 0, 1]), LINE, np.zeros(5, int), f, params).kept.tolist()
            for f in (0.4, 0.6, 0.8)]
    assert kept == [[1, 3], [1, 3, 4], [1, 2, 3, 4]]


def test_d2_sample_puts_lowered_and_raised_values_back_in_order():
    """The path 0 - 1 - 2, unit weights; kept in the order kept. Values 5, 4, 3.5: keeping 0 lowers
    1 to -1, below 2. Values -1, -2, -1.5: keeping 0 (-1) raises 1 by 1, to -1, above 2. Values
    -1, -2, -1 with ranks 2, 0, 1: 2 before 0 (lower rank); it raises 1 to -1, which ties 0 and
    goes first (rank 0); with ranks by index, 0, then 1 (raised to -1) before 2."""
    path = d2_module.Graph(np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1]), np.ones(4))
    by_index = np.arange(3)
    assert d2_module.sample(np.array([5.0, 4, 3.5]), path, 0.0, 2, by_index)[0].tolist() == [0, 2]
    assert d2_module.sample(np.array([-1.0, -2, -1.5]), path, 0.0, 2, by_index)[0].tolist() == [0, 1]
    assert d2_module.sample(np.array([-1.0, -2, -1]), path, 0.0, 2, np.array([2, 0, 1]))[0].tolist() == [2, 1]
    assert d2_module.sample(np.array([-1.0, -2, -1]), path, 0.0, 2, by_index)[0].tolist() == [0, 1]


def test_d2_shifts_negative_scores_to_zero():
    """Scores with a negative one are shifted so that the lowest is 0: -2 .. 2 picks as 0 .. 4.
    Non-negative scores are used as given: all 0 (a class nobody forgot), no value moves: 0, then
    1 (the lowest indices); all 10: values 20, 30, 30, 30, 20, keep 1 (30), which lowers 0 and 2
    to -10 and 0: then 3 (30). All -1 is shifted to all 0."""
    labels = np.zeros(5, int)
    for f in (0.4, 0.6, 0.8):
        shifted = d2_select(np.arange(5.0), LINE, labels, f, PATH).kept.tolist()
        assert d2_select(np.arange(5.0) - 2, LINE, labels, f, PATH).kept.tolist() == shifted
    assert d2_select(np.zeros(5), LINE, labels, 0.4, PATH).kept.tolist() == [0, 1]
    assert d2_select(np.full(5, 10.0), LINE, labels, 0.4, PATH).kept.tolist() == [1, 3]
    assert d2_select(np.full(5, -1.0), LINE, labels, 0.4, PATH).kept.tolist() == [0, 1]


def test_d2_per_class_and_over_the_whole_set():
    """Class 0 is LINE with scores 1 .. 5 (samples 0-4), class 1 samples 5, 6, 7 at 20, 21, 23 with
    scores 1, 1, 2 (the path 5 - 6 - 7: values 2, 4, 3). f = 0.5: budgets 3 and 1 (equal remainders,
    the lower class gets the extra one): class 0 keeps 0, 1, 3 (above), class 1 keeps 6. Over the
    whole set (k = 4, the same graph: 10's nearest is 3, not 20): 3, 1, then 6 (4), whose
    neighbours drop to -2 and -1, then 7 (-1; 0 and 4 are at -3, 5 at -2)."""
    points = torch.cat([LINE, torch.tensor([[20.0], [21.0], [23.0]])])
    scores, labels = np.array([1.0, 2, 3, 4, 5, 1, 1, 2]), np.array([0] * 5 + [1] * 3)
    assert d2_select(scores, points, labels, 0.5, PATH).kept.tolist() == [0, 1, 3, 6]
    assert d2_select(scores, points, labels, 0.5, PATH, balanced=False).kept.tolist() == [1, 3, 6, 7]


def test_d2_small_group_is_the_complete_graph():
    """Default neighbors = 5 on a group of 3: each sample links to the other two. Points 0, 1, 3,
    scores 1, 1, 1, gamma_forward 0: values 3, 3, 3; keep 0 (index); 1 and 2 each lose 3 e^(-0.1 d):
    1 (d = 1) drops more than 2 (d = 3): keep 2."""
    points = torch.tensor([[0.0], [1.0], [3.0]])
    params = {"gamma_forward": 0, "ties": "index"}
    assert d2_select(np.ones(3), points, np.zeros(3, int), 2 / 3, params).kept.tolist() == [0, 2]


def test_d2_is_registered_with_its_parameters():
    assert SELECTORS.params_type("d2") is d2_module.Params and issubclass(d2_module.Params, OrderParams)
    assert SELECTORS.params("d2") == d2_module.Params(ties="random", neighbors=5, gamma_forward=1.0, gamma_reverse=0.1)
    assert SELECTORS.params("d2", {"neighbors": 10, "gamma_reverse": 1}).gamma_reverse == 1
    assert needs_embeddings("d2")


@pytest.mark.parametrize("name, value, allowed", [
    ("neighbors", 0, "an integer >= 1"), ("neighbors", 2.5, "an integer >= 1"), ("neighbors", True, "an integer >= 1"),
    ("neighbors", "5", "an integer >= 1"), ("gamma_forward", -0.1, "a finite number >= 0"),
    ("gamma_reverse", float("inf"), "a finite number >= 0"), ("gamma_reverse", float("nan"), "a finite number >= 0"),
    ("gamma_forward", "1", "a finite number >= 0"), ("gamma_reverse", False, "a finite number >= 0")])
def test_d2_bad_parameter_is_one_line(name, value, allowed):
    with pytest.raises(UserError) as info:
        SELECTORS.params("d2", {name: value}, "selection.selectors.d2")
    assert str(info.value) == f"d2: {name} must be {allowed}, got {value!r}"


def brute_force_neighbors(points, k):
    """Every distance in float64, each row's k smallest others, equal distances by index."""
    distances = torch.cdist(points.double(), points.double()).fill_diagonal_(float("inf")).numpy()
    positions = np.broadcast_to(np.arange(len(points)), distances.shape)
    return np.lexsort((positions, distances), axis=1)[:, :k]


def test_nearest_neighbors_in_tiles_are_the_brute_force_ones():
    """Tiles of 64 of 300 float16 points (the last short), and of 5 of a 6 x 6 integer grid plus two
    copies of its rows 7 and 20 (many equal distances: the lowest index; a copy is at distance 0,
    its original not its own neighbour)."""
    points = torch.randn(300, 7, generator=torch.Generator().manual_seed(0)).half()
    assert (nearest_neighbors(points, 5, chunk_rows=64).numpy() == brute_force_neighbors(points, 5)).all()
    grid = torch.tensor([[x, y] for x in range(6) for y in range(6)], dtype=torch.float32)
    grid = torch.cat([grid, grid[[7, 20]]])
    for k in (1, 4, 37):
        assert (nearest_neighbors(grid, k, chunk_rows=5).numpy() == brute_force_neighbors(grid, k)).all(), k
    assert nearest_neighbors(grid, 1)[[7, 36]].tolist() == [[36], [7]]
    with pytest.raises(ValueError, match="internal error"):
        nearest_neighbors(grid, 38)
    first, second = torch.tensor([0, 3, 36]), torch.tensor([35, 2, 7])
    assert pair_distances(grid, first, second, chunk_rows=2).tolist() == pytest.approx([50 ** 0.5, 1.0, 0.0])


def test_subset_stage_gives_herding_the_embeddings_of_the_scored_samples(tmp_path, capsys):
    """Scores of samples 1, 2, 4, 5 only (0 and 3 held out): the stage takes those rows of the
    embeddings (0 at 100 and 3 at -100 would otherwise pull the mean): class 0 is samples 1, 2 at
    1 and 3 (mean 2, equally near: 1 first), class 1 is 4, 5 at 7 and 9 (4 first)."""
    from pipeline.stages.embeddings import save_embeddings

    scores = tmp_path / "scores.parquet"
    write_scores(pd.DataFrame({"sample_index": [1, 2, 4, 5], "label": [0, 0, 1, 1], "score": [0.1, 0.2, 0.3, 0.4]}),
                 scores)
    embeddings = tmp_path / "embeddings.pt"
    save_embeddings(embeddings, torch.tensor([[100.0], [1.0], [3.0], [-100.0], [7.0], [9.0]]),
                    {"dataset_fingerprint": META["dataset_fingerprint"]})
    spec = {"scorer": "el2n", "data": DATA, "selector": "herding", "keep_fraction": 0.5, "seed": 3,
            "class_balanced": True, "params": {}}
    out = tmp_path / "subset.parquet"
    pipeline.stages.subsets.main(["--spec", json.dumps(spec), "--scores", str(scores), "--embeddings", str(embeddings),
                                  "--device", "cpu", "--output", str(out)])
    frame, meta = read_table(out)
    assert frame["sample_index"].tolist() == [1, 4] and meta["ties_at_cutoff"] == 0
    recorded = torch.load(embeddings, weights_only=True)["content_hash"]
    assert meta["embeddings"] == {"teacher": None, "content_hash": recorded, "device": "cpu"}
    other = tmp_path / "other.pt"
    save_embeddings(other, torch.zeros(6, 1), {"dataset_fingerprint": "another00000000"})
    with pytest.raises(SystemExit):
        pipeline.stages.subsets.main(["--spec", json.dumps(spec), "--scores", str(scores), "--embeddings", str(other),
                                      "--output", str(tmp_path / "no.parquet")])
    assert capsys.readouterr().err.strip() == (
        f"error: {other} was made from data with fingerprint another00000000, but this run's data has "
        f"{META['dataset_fingerprint']}; it is another run's file: delete it and run the workflow again, which remakes it")


# ------------------------------------------------------------------ dual_beta (DUAL's Beta sampling)

DUAL_BETA = {"mean_scorer": "dual_difficulty"}
HAND_SCORES, HAND_MEANS = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.3, 0.5, 0.7, 0.9])  # mu = .6


def dual_beta(scores, means, labels, f, generator=None, balanced=True, **params):
    """dual_beta with prediction means ``means`` (its mean scorer's scores are 1 - the means)."""
    return select_subset("dual_beta", np.asarray(scores, dtype=float), np.asarray(labels), f, generator or rng(),
                         balanced, {**DUAL_BETA, **params}, cutoff_scores=1 - np.asarray(means, dtype=float))


def hand_draw(scores, means, indices, k, generator, c_d=4.0):
    """DUAL's draw written out: mu over the 10 highest scores (equal ones: lowest index first), the
    Beta kernel m^(alpha - 1) (1 - m)^(beta - 1) (its normalisation cancels), numpy's choice."""
    mu = means[np.argsort(-scores, kind="stable")[:10]].mean()
    b = 15 * (1 - mu) * (1 - (1 - k / len(indices)) ** c_d)
    weights = scores * means ** (15 - b) * (1 - means) ** (b - 1)
    return np.sort(generator.choice(indices, size=k, replace=False, p=weights / weights.sum()))


def test_dual_beta_parameters_by_hand():
    """Four samples, all anchors (fewer than 10), prediction means .3 .5 .7 .9: mu = .6, so
    beta = 15 x .4 x (1 - r^c_D) = 6 (1 - r^c_D) and alpha = 16 - beta. As r grows beta falls and
    the Beta's mass moves toward m = 1, the easy samples."""
    parameters = partial(beta_parameters, HAND_SCORES, HAND_MEANS, np.arange(4))
    assert parameters(0.0, 4.0) == pytest.approx((10, 6), rel=1e-12)  # r = 0: c_D plays no part
    assert parameters(0.5, 1.0) == pytest.approx((13, 3), rel=1e-12)  # 6 x .5
    assert parameters(0.5, 4.0) == pytest.approx((10.375, 5.625), rel=1e-12)  # 6 x 15/16
    assert parameters(0.9, 4.0) == pytest.approx((16 - 6 * 0.3439, 6 * 0.3439), rel=1e-12)  # 1 - .9^4 = .3439
    easiest = [sampling_weights(HAND_SCORES, HAND_MEANS, np.arange(4), r, 4.0) for r in (0.0, 0.5, 0.9, 0.99)]
    shares = [w[3] / w.sum() for w in easiest]
    assert shares == sorted(shares) and shares[0] < 0.5 < shares[-1]


def test_dual_beta_probabilities_by_hand():
    """r = .5, c_D = 1: Beta(13, 3), density 1365 m^12 (1 - m)^2 (1 / B(13, 3) = 15! / (12! 2!)).
    With m = j / 10 the weights s m^12 (1 - m)^2 are proportional to s j^12 (10 - j)^2:
    1 x 3^12 x 49, 2 x 5^12 x 25, 3 x 7^12 x 9, 4 x 9^12 x 1."""
    weights = sampling_weights(HAND_SCORES, HAND_MEANS, np.arange(4), 0.5, 1.0)
    assert weights[3] == pytest.approx(4 * 1365 * 0.9**12 * 0.1**2, rel=1e-9)
    assert weights[0] == pytest.approx(1 * 1365 * 0.3**12 * 0.7**2, rel=1e-9)
    by_hand = np.array([26040609, 12207031250, 373714754427, 1129718145924]) / 1515665972210
    assert (weights / weights.sum()).tolist() == pytest.approx(by_hand.tolist(), rel=1e-9)
    # r = 0: Beta(10, 6): s m^9 (1 - m)^5 -> 1 x 3^9 x 7^5, 2 x 5^9 x 5^5, 3 x 7^9 x 3^5, 4 x 9^9 x 1
    weights = sampling_weights(HAND_SCORES, HAND_MEANS, np.arange(4), 0.0, 4.0)
    kernel = np.array([3**9 * 7**5, 2 * 5**9 * 5**5, 3 * 7**9 * 3**5, 4 * 9**9], dtype=float)
    assert (weights / weights.sum()).tolist() == pytest.approx((kernel / kernel.sum()).tolist(), rel=1e-9)


def test_dual_beta_anchor_is_the_ten_highest_scores_equal_ones_by_lowest_index():
    """Twelve samples; scores 1, 2, 2, 3 ... 11: the ten highest are samples 3-11 and, of the two
    2s, sample 1 (the lower index). Means: sample 0 .9, 1 .8, 2 .2, the rest .5: mu = (9 x .5 + .8)
    / 10 = .53 (sample 2 instead would give .47); r = 0: beta = 15 x .47 = 7.05, alpha = 8.95."""
    scores = np.array([1.0, 2, 2, *range(3, 12)])
    means = np.array([0.9, 0.8, 0.2, *[0.5] * 9])
    assert beta_parameters(scores, means, np.arange(12), 0.0, 4.0) == pytest.approx((8.95, 7.05), rel=1e-12)


def test_dual_beta_draws_as_numpy_by_hand():
    """Twenty samples, one group, f = .3: k = 6, r = .7; the kept samples are numpy's choice with
    the hand weights from the same seeded generator."""
    g = rng(7)
    scores, means = np.round(g.uniform(0.05, 1, 20), 2), np.round(g.uniform(0.05, 0.95, 20), 2)
    labels = np.zeros(20, int)
    for seed, known in ((0, [2, 5, 8, 9, 14, 16]), (1, [2, 5, 8, 10, 14, 18])):
        kept = dual_beta(scores, means, labels, 0.3, rng(seed), balanced=False).kept
        assert kept.tolist() == hand_draw(scores, means, np.arange(20), 6, rng(seed)).tolist() == known
    # c_D is used: c_D = 1 gives r^1 = .7, not .7^4
    kept = dual_beta(scores, means, labels, 0.3, rng(0), balanced=False, c_d=1).kept
    assert kept.tolist() == hand_draw(scores, means, np.arange(20), 6, rng(0), c_d=1).tolist()


def test_dual_beta_exact_budgets_per_class_and_global_same_seed_same_subset():
    """Classes of 40, 35 and 25 at f = .3: budgets 12, 11, 7 (see test_random_selector_counts_seeds),
    each class drawn with its own r = 1 - k_c / n_c and mu, in class order from the one generator."""
    labels = labels_with_counts([40, 35, 25])
    g = rng(3)
    scores, means = g.uniform(0.01, 1, 100), g.uniform(0.05, 0.95, 100)
    a = dual_beta(scores, means, labels, 0.3, rng(1)).kept
    assert np.bincount(labels[a], minlength=3).tolist() == [12, 11, 7]
    generator = rng(1)
    by_hand = [hand_draw(scores[labels == c], means[labels == c], np.flatnonzero(labels == c), k, generator)
               for c, k in enumerate([12, 11, 7])]
    assert a.tolist() == np.concatenate(by_hand).tolist()
    assert dual_beta(scores, means, labels, 0.3, rng(1)).kept.tolist() == a.tolist()
    assert dual_beta(scores, means, labels, 0.3, rng(2)).kept.tolist() != a.tolist()
    whole = dual_beta(scores, means, labels, 0.3, rng(1), balanced=False)
    assert len(whole.kept) == 30 and whole.ties_at_cutoff == 0
    assert whole.kept.tolist() == hand_draw(scores, means, np.arange(100), 30, rng(1)).tolist()


def test_dual_beta_class_with_zero_budget_draws_nothing_and_keep_all_draws_nothing():
    """f = .1 of classes of 1 and 10: class 0's budget is 0, so class 1's draw is the generator's first."""
    labels = np.array([0] + [1] * 10)
    scores, means = np.linspace(0.1, 1, 11), np.linspace(0.1, 0.9, 11)
    kept = dual_beta(scores, means, labels, 0.1, rng(0)).kept
    assert kept.tolist() == hand_draw(scores[1:], means[1:], np.arange(1, 11), 1, rng(0)).tolist()
    generator = rng(0)
    # k = n keeps every sample, zero weights included, and draws nothing
    assert dual_beta(np.zeros(11), means, labels, 1.0, generator).kept.tolist() == list(range(11))
    assert generator.random() == rng(0).random()


def test_dual_beta_zero_score_weighs_nothing_even_where_the_density_is_infinite():
    """Means .95 x 3 and 1: mu = .9625 over all four, r = .75, c_D = 1: beta = 15 x .0375 x .25 < 1, so
    the density is infinite at m = 1; sample 3's score 0 weighs 0 there (the code's 0 x inf is NaN)."""
    means = np.array([0.95, 0.95, 0.95, 1.0])
    weights = sampling_weights(np.array([1.0, 1, 1, 0]), means, np.arange(4), 0.75, 1.0)
    assert weights[3] == 0 and np.isfinite(weights).all()
    assert 3 not in dual_beta([1.0, 1, 1, 0], means, np.zeros(4, int), 0.5, c_d=1).kept.tolist()


@FAST
@given(st.data(), st.booleans(), st.integers(0, 2**32 - 1))
def test_dual_beta_properties(data, balanced, seed):
    """Positive scores and means inside (0, 1): every weight is positive and finite, so every budget
    is met exactly, by distinct samples of the group, the same for the same seed."""
    n = data.draw(st.integers(1, 30))
    labels = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    scores = np.array(data.draw(st.lists(st.floats(1e-3, 10), min_size=n, max_size=n)))
    means = np.array(data.draw(st.lists(st.floats(0.01, 0.99), min_size=n, max_size=n)))
    f = data.draw(st.integers(1, 1000)) / 1000
    if total_budget(n, f) == 0:
        return
    selection = dual_beta(scores, means, labels, f, np.random.default_rng(seed), balanced)
    again = dual_beta(scores, means, labels, f, np.random.default_rng(seed), balanced)
    assert selection.kept.tolist() == again.kept.tolist() and selection.ties_at_cutoff == 0
    assert len(np.unique(selection.kept)) == len(selection.kept) == total_budget(n, f)
    if balanced:
        for c, k in class_budgets(labels, f).items():
            assert int((labels[selection.kept] == c).sum()) == k


def test_dual_beta_moves_toward_easy_samples_as_the_pruning_ratio_grows():
    """2,000 samples, means and scores uniform: the kept samples' mean prediction mean grows with r
    (f = .5, .2, .05: about .53, .70, .89 with this seed)."""
    g = rng(0)
    means, scores = g.uniform(0.02, 0.98, 2000), g.uniform(0.01, 1, 2000)
    kept = [means[dual_beta(scores, means, np.zeros(2000, int), f, rng(1)).kept].mean() for f in (0.5, 0.2, 0.05)]
    assert kept == sorted(kept) and kept[0] < 0.6 and kept[-1] > 0.85


def test_dual_beta_is_not_a_random_baseline_draw():
    assert not pipeline.selectors.draws_at_random("dual_beta") and not needs_embeddings("dual_beta")
    assert SELECTORS.params("dual_beta", DUAL_BETA) == dual_beta_module.Params(c_d=4.0, mean_scorer="dual_difficulty")


@pytest.mark.parametrize("params, message", [
    ({}, "dual_beta: mean_scorer must name the configured scorer of 1 - each sample's prediction mean "
         r"\(dual_difficulty\), got None"),
    ({"mean_scorer": ""}, "dual_beta: mean_scorer must name .* got ''"),
    ({**DUAL_BETA, "c_d": 0}, "dual_beta: c_d must be a finite number > 0, got 0"),
    ({**DUAL_BETA, "c_d": -1.5}, "dual_beta: c_d must be a finite number > 0, got -1.5"),
    ({**DUAL_BETA, "c_d": float("inf")}, "dual_beta: c_d must be a finite number > 0, got inf"),
    ({**DUAL_BETA, "c_d": float("nan")}, "dual_beta: c_d must be a finite number > 0, got nan"),
    ({**DUAL_BETA, "c_d": True}, "dual_beta: c_d must be a finite number > 0, got True"),
    ({**DUAL_BETA, "c_d": [4]}, r"dual_beta: c_d must be a finite number > 0, got \[4\]"),
    ({**DUAL_BETA, "cd": 4}, "unknown parameter 'cd' for selector 'dual_beta'; allowed: c_d, mean_scorer"),
])
def test_dual_beta_bad_parameters_are_one_line(params, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        SELECTORS.params("dual_beta", params)


@pytest.mark.parametrize("scores, means, f, message", [
    ([1, 1, -0.5, 1], [0.5] * 4, 0.5, r"dual_beta weights each sample by its score, which must be >= 0 \(DUAL's are\), "
                                      "got -0.5"),
    ([1] * 4, [0.5, 0.5, 1.5, 0.5], 0.5, r"dual_beta: the scores of mean_scorer 'dual_difficulty' must be 1 - a "
                                         r"prediction mean, in \[0, 1\] \(dual_difficulty's\), got -0.5 to 0.5"),
    ([1, 0, 0, 0], [0.5] * 4, 0.5, "dual_beta: only 1 of the group's 4 samples have a positive weight "
                                   r"\(score x Beta density\), fewer than its budget 2"),
    # mu = .9625, r = .75, c_D = 4: beta = .5625 x (1 - .75^4) = .3845 < 1: infinite at m = 1
    ([1] * 4, [0.95, 0.95, 0.95, 1.0], 0.25, r"dual_beta: the Beta\(15.62, 0.3845\) density is not finite at the "
                                             r"prediction mean 1 of sample 3 \(1 such samples\)"),
])
def test_dual_beta_refuses_what_it_cannot_draw_from_in_one_line(scores, means, f, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        dual_beta(scores, means, np.zeros(4, int), f, balanced=False)


def test_subset_stage_gives_dual_beta_the_prediction_means(tmp_path):
    """The subsets job reads dual_difficulty's table as its mean scorer's: it keeps what
    select_subset draws from the two with the job's seeded generator, and records no ties."""
    g = rng(5)
    labels = np.repeat([0, 1], 10)
    scores, difficulty = np.round(g.uniform(0.05, 1, 20), 3), np.round(g.uniform(0.05, 0.95, 20), 3)
    paths = {name: tmp_path / f"{name}.parquet" for name in ("dual", "dual_difficulty")}
    for name, values in (("dual", scores), ("dual_difficulty", difficulty)):
        write_scores(pd.DataFrame({"sample_index": np.arange(20), "label": labels, "score": values}), paths[name],
                     {**META, "scorer": name})
    spec = {"scorer": "dual", "data": DATA, "selector": "dual_beta", "keep_fraction": 0.3, "seed": 3,
            "class_balanced": True, "params": DUAL_BETA}
    out = tmp_path / "subset.parquet"
    pipeline.stages.subsets.main(["--spec", json.dumps(spec), "--scores", str(paths["dual"]),
                                  "--cutoff-scores", str(paths["dual_difficulty"]), "--output", str(out)])
    frame, meta = read_table(out)
    expected = select_subset("dual_beta", scores, labels, 0.3, numpy_generator(3, "select", "dual_beta"), True,
                             DUAL_BETA, cutoff_scores=difficulty)
    assert frame["sample_index"].tolist() == expected.kept.tolist() and len(expected.kept) == 6
    assert meta["ties_at_cutoff"] == 0 and meta["selector_params_used"] == {"c_d": 4.0, **DUAL_BETA}
