"""The scorers of the teacher's recorded true-class probabilities and prediction changes: dynamic
uncertainty (He et al. 2024), TDDS (Zhang et al. 2024), DUAL (Cho et al. 2025) and its difficulty
term (dual_difficulty), on dynamics tables whose scores are worked out by hand below; and the one
line a table written before those columns were recorded gives."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from tiny import context

from pipeline.dynamics import windows
from pipeline.errors import UserError
from pipeline.io import write_table
from pipeline.scorers import build_scorer
from pipeline.scorers.dual import dual
from pipeline.scorers.dyn_unc import dynamic_uncertainty
from pipeline.scorers.tdds import tdds
from pipeline.stages.scores import load_needs

# True-class probability of the six tiny samples (rows) at epochs 1-4 (columns).
PROBS = np.array([
    [0.2, 0.4, 0.6, 0.8],
    [0.5, 0.5, 0.5, 0.5],
    [0.1, 0.7, 0.1, 0.7],
    [1.0, 0.0, 0.0, 0.0],
    [0.9, 0.9, 0.9, 0.3],
    [0.3, 0.3, 0.3, 0.3],
])
R12 = math.sqrt(0.12)
# Windows of J = 3 epochs: epochs 1-3 and 2-4; the sample standard deviation (ddof 1) of each:
#   0: [.2 .4 .6] -> .2 (mean .4);  [.4 .6 .8] -> .2 (mean .6)
#   1: constant -> 0, 0 (means .5)
#   2: [.1 .7 .1] mean .3, deviations -.2 .4 -.2, squares .24 / 2 -> sqrt(.12);  [.7 .1 .7] mean .5 -> sqrt(.12)
#   3: [1 0 0] mean 1/3, squares 4/9 + 1/9 + 1/9 = 2/3, / 2 -> sqrt(1/3);  [0 0 0] -> 0 (mean 0)
#   4: [.9 .9 .9] -> 0 (mean .9);  [.9 .9 .3] mean .7, squares .04 + .04 + .16 = .24 -> sqrt(.12)
#   5: constant -> 0, 0 (means .3)
# dynamic uncertainty: the mean of the two standard deviations
DYN_UNC = [0.2, 0.0, R12, math.sqrt(1 / 3) / 2, R12 / 2, 0.0]
# DUAL: the mean over the windows of std x (1 - mean)
#   0: (.2 x .6 + .2 x .4) / 2 = .1;  2: (.7 sqrt(.12) + .5 sqrt(.12)) / 2 = .6 sqrt(.12)
#   3: (sqrt(1/3) x 2/3 + 0) / 2 = sqrt(1/3) / 3;  4: (0 + .3 sqrt(.12)) / 2 = .15 sqrt(.12)
DUAL = [0.1, 0.0, 0.6 * R12, math.sqrt(1 / 3) / 3, 0.15 * R12, 0.0]
# Prediction changes d_t at epochs 2-4 (epoch 1 has none).
CHANGES = np.array([
    [0.1, 0.3, 0.3],
    [0.2, 0.2, 0.6],
    [0.4, 0.4, 0.4],
    [0.0, 0.5, 0.0],
    [0.3, 0.1, 0.2],
    [0.0, 0.0, 0.0],
])
# TDDS, T = 4 epochs, J = 3: window 0 = epochs 1-3 (changes d2 d3), window 1 = epochs 2-4 (d3 d4).
# With two changes a, b the deviations from their mean are +-(a - b)/2, so R = |a - b| / sqrt(2).
# Weights beta (1 - beta)^(T - J - k): beta = .5 -> window 0: .25, window 1: .5
#   0: R = .2/r2, 0 -> .05/r2;   1: 0, .4/r2 -> .2/r2;   2: 0
#   3: .5/r2, .5/r2 -> .375/r2;  4: .2/r2, .1/r2 -> (.05 + .05)/r2 = .1/r2;   5: 0
R2 = math.sqrt(2)
TDDS_HALF = [0.05 / R2, 0.2 / R2, 0.0, 0.375 / R2, 0.1 / R2, 0.0]


def dynamics_frame(probs=PROBS, changes=CHANGES, drop=None, columns=None):
    """The teacher's dynamics table of ``probs`` and ``changes`` (epoch 1 NaN), rows shuffled."""
    n, epochs = probs.shape
    rows = [(i, e + 1, True, 0.0, probs[i, e], changes[i, e - 1] if e else np.nan)
            for e in range(epochs) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["sample_index", "epoch", "correct", "margin", "true_prob", "prob_change"])
    frame = frame.astype({"epoch": "int32", "true_prob": "float32", "prob_change": "float32"})
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    if drop is not None:
        frame = frame.drop(index=drop)
    return frame if columns is None else frame[list(columns)]


def test_windows_are_consecutive_epochs():
    assert windows(np.arange(8.0).reshape(2, 4), 3).tolist() == [[[0, 1, 2], [1, 2, 3]], [[4, 5, 6], [5, 6, 7]]]


def test_dynamic_uncertainty_hand_values(data):
    assert np.allclose(dynamic_uncertainty(PROBS, 3), DYN_UNC, atol=1e-12)
    scores = build_scorer("dyn_unc", {"window": 3}).score(context(data, dynamics=dynamics_frame()))
    assert np.allclose(scores, DYN_UNC, atol=1e-6)  # recorded in float32
    # one window of all four epochs: sample 0 [.2 .4 .6 .8]: mean .5, squares .2, / 3 -> sqrt(.2/3)
    scores = build_scorer("dyn_unc", {"window": 4}).score(context(data, dynamics=dynamics_frame()))
    assert scores[0] == pytest.approx(math.sqrt(0.2 / 3), abs=1e-6)
    # the first two epochs only, window 2: sample 0 [.2 .4] -> .2 / sqrt(2); sample 2 [.1 .7] -> .6 / sqrt(2)
    scores = build_scorer("dyn_unc", {"window": 2, "epochs": 2}).score(context(data, dynamics=dynamics_frame()))
    assert np.allclose(scores[[0, 2]], [0.2 / R2, 0.6 / R2], atol=1e-6)


def test_dual_hand_values(data):
    assert np.allclose(dual(PROBS, 3), DUAL, atol=1e-12)
    scores = build_scorer("dual", {"window": 3, "epochs": 4}).score(context(data, dynamics=dynamics_frame()))
    assert np.allclose(scores, DUAL, atol=1e-6)
    # T = 3: only the first window counts: sample 0: .2 x .6 = .12; sample 2: .7 sqrt(.12)
    scores = build_scorer("dual", {"window": 3, "epochs": 3}).score(context(data, dynamics=dynamics_frame()))
    assert np.allclose(scores[[0, 2, 4]], [0.12, 0.7 * R12, 0.0], atol=1e-6)


def test_dual_difficulty_hand_values(data):
    """1 - the mean of the first T epochs' true-class probabilities, DUAL's prediction mean for its
    Beta sampling: T = 4: means .5 .5 .4 .25 .75 .3; T = 2: sample 0 [.2 .4] -> .7, sample 3 [1 0] -> .5."""
    scores = build_scorer("dual_difficulty", {"epochs": 4}).score(context(data, dynamics=dynamics_frame()))
    assert np.allclose(scores, [0.5, 0.5, 0.6, 0.75, 0.25, 0.7], atol=1e-6)  # recorded in float32
    scores = build_scorer("dual_difficulty", {"epochs": 2}).score(context(data, dynamics=dynamics_frame()))
    assert np.allclose(scores[[0, 3]], [0.7, 0.5], atol=1e-6)
    assert build_scorer("dual_difficulty").params.epochs == 30  # as dual's T
    with pytest.raises(UserError, match=r"^dual_difficulty epochs must be an integer >= 1, got 0$"):
        build_scorer("dual_difficulty", {"epochs": 0})


def test_tdds_hand_values(data):
    assert np.allclose(tdds(CHANGES, 3, 0.5), TDDS_HALF, atol=1e-12)
    scores = build_scorer("tdds", {"window": 3, "decay": 0.5}).score(context(data, dynamics=dynamics_frame()))
    assert np.allclose(scores, TDDS_HALF, atol=1e-6)
    # the default decay .9: weights .09 (window 0) and .9 (window 1); sample 1: .9 x .4 / r2
    scores = build_scorer("tdds", {"window": 3}).score(context(data, dynamics=dynamics_frame()))
    assert scores[1] == pytest.approx(0.9 * 0.4 / R2, abs=1e-6)
    assert scores[3] == pytest.approx((0.09 + 0.9) * 0.5 / R2, abs=1e-6)
    # J = T = 4: one window of changes d2 d3 d4, weight .9; sample 1 [.2 .2 .6]: mean 1/3,
    # deviations -2/15 -2/15 4/15, squares 24/225 -> .9 sqrt(24)/15
    scores = build_scorer("tdds", {"window": 4}).score(context(data, dynamics=dynamics_frame()))
    assert scores[1] == pytest.approx(0.9 * math.sqrt(24) / 15, abs=1e-6)
    # the first three epochs only (T = 3, J = 3): window 0 alone, weight .9: sample 3 -> .9 x .5 / r2
    scores = build_scorer("tdds", {"window": 3, "epochs": 3}).score(context(data, dynamics=dynamics_frame()))
    assert scores[3] == pytest.approx(0.9 * 0.5 / R2, abs=1e-6)


@pytest.mark.parametrize("name, params", [("dyn_unc", {"window": 3}), ("dual", {"window": 3, "epochs": 4}),
                                          ("dual_difficulty", {"epochs": 4}), ("tdds", {"window": 3})])
def test_held_out_samples_are_not_scored(data, name, params):
    """The teacher never saw a held-out sample: its rows are absent, the others score as before."""
    frame = dynamics_frame()
    full = build_scorer(name, params).score(context(data, dynamics=frame))
    held = replace(data, held_out=torch.tensor([4]))
    scores = build_scorer(name, params).score(context(held, dynamics=frame[frame["sample_index"] != 4]))
    others = [0, 1, 2, 3, 5]
    assert np.isnan(scores[4]) and np.allclose(scores[others], full[others], atol=1e-12)


@pytest.mark.parametrize("name, column", [("dyn_unc", "true_prob"), ("dual", "true_prob"), ("tdds", "prob_change")])
def test_a_table_from_before_the_columns_is_one_line(data, tmp_path, name, column):
    path = tmp_path / "dynamics.parquet"
    old = dynamics_frame(columns=["sample_index", "epoch", "correct", "margin"])
    write_table(old, path, {"stage": "teacher", "dataset": "tiny", "dataset_fingerprint": data.fingerprint})
    frame = load_needs({"dynamics"}, {"dynamics": path}, data.fingerprint)["dynamics"]
    params = {"window": 2, "epochs": 4} if name == "dual" else {"window": 2}
    with pytest.raises(UserError) as info:
        build_scorer(name, params).score(context(data, dynamics=frame))
    assert str(info.value) == (f"{path} has no column {column}, which {name} reads: it was written before the teacher "
                               f"recorded it; rerun the teacher (snakemake --forcerun teachers)")


@pytest.mark.parametrize("name", ["dyn_unc", "dual", "tdds"])
def test_incomplete_or_short_dynamics_are_one_line(data, name):
    params = {"window": 3, "epochs": 4} if name == "dual" else {"window": 3}
    with pytest.raises(UserError, match=r"lacks it for 1 samples: \d$"):
        build_scorer(name, params).score(context(data, dynamics=dynamics_frame(drop=[7])))
    long = {"window": 3, "epochs": 5}
    with pytest.raises(UserError, match=f"^{name} needs 5 epochs of the teacher's training dynamics, but "
                                        f"the teacher's training dynamics has 4$"):
        build_scorer(name, long).score(context(data, dynamics=dynamics_frame()))


def test_window_params_are_checked():
    with pytest.raises(UserError, match="at least 2 epochs"):
        build_scorer("dyn_unc", {"window": 1})
    with pytest.raises(UserError, match=r"^dual epochs \(5\) must be at least its window \(10\)$"):
        build_scorer("dual", {"epochs": 5})
    with pytest.raises(UserError, match=r"^tdds decay must be in \(0, 1\), got 1.5$"):
        build_scorer("tdds", {"decay": 1.5})


def test_the_scorers_read_the_dynamics_only():
    for name in ("dyn_unc", "dual", "dual_difficulty", "tdds"):
        assert build_scorer(name).needs == {"dynamics"}
