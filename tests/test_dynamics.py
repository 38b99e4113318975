"""The per-sample training dynamics record: margins, true-class probabilities, prediction changes
and the long table forgetting, AUM, dynamic uncertainty, TDDS and DUAL read."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from tiny import CPU

from pipeline.dynamics import Dynamics, margins
from pipeline.scorers.forgetting import forgetting_counts


def test_margins_hand_values():
    logits = torch.tensor([[3.0, 1.0, 2.0], [1.0, 4.0, 2.0], [2.0, 2.0, 0.0], [-1.0, -3.0, -2.0]])
    labels = torch.tensor([0, 0, 1, 2])
    # row 0: label is the max: 3 - max(1, 2) = 1
    # row 1: label not the max: 1 - max(4, 2) = -3
    # row 2: tie with another class: 2 - max(2, 0) = 0
    # row 3: negative logits: -2 - max(-1, -3) = -1
    assert margins(logits, labels).tolist() == [1.0, -3.0, 0.0, -1.0]


def test_dynamics_long_table():
    labels = torch.tensor([0, 1, 2])
    dyn = Dynamics(num_samples=3, epochs=3, device=CPU)  # epoch 2 never recorded
    # epoch 0, shuffled batches [2, 0] then [1]
    dyn.update(0, torch.tensor([[1.0, 0.0, 3.0], [0.5, 2.0, 1.0]]), labels[[2, 0]], torch.tensor([2, 0]))
    dyn.update(0, torch.tensor([[1.0, 1.5, -1.0]]), labels[[1]], torch.tensor([1]))
    # epoch 1, batches [1, 2] then [0]
    dyn.update(1, torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.25]]), labels[[1, 2]], torch.tensor([1, 2]))
    dyn.update(1, torch.tensor([[4.0, 1.0, 3.0]]), labels[[0]], torch.tensor([0]))
    frame = dyn.to_frame()  # epochs numbered from 1, as in the per-epoch metrics
    assert list(frame.columns) == ["sample_index", "epoch", "correct", "margin", "true_prob", "prob_change"]
    assert frame["true_prob"].dtype == np.float32 and frame["prob_change"].dtype == np.float32
    # (epoch, sample): logits, label -> correct (argmax == label), margin z_y - max_{k!=y} z_k
    #   (0, 0): [0.5, 2, 1], y=0 -> False, 0.5 - 2 = -1.5
    #   (0, 1): [1, 1.5, -1], y=1 -> True, 1.5 - 1 = 0.5
    #   (0, 2): [1, 0, 3], y=2 -> True, 3 - 1 = 2
    #   (1, 0): [4, 1, 3], y=0 -> True, 4 - 3 = 1
    #   (1, 1): [2, 0, 0], y=1 -> False, 0 - 2 = -2
    #   (1, 2): [0, 0, 0.25], y=2 -> True, 0.25 - 0 = 0.25
    expected = pd.DataFrame(
        {
            "sample_index": [0, 1, 2, 0, 1, 2],
            "epoch": np.array([1, 1, 1, 2, 2, 2], dtype="int32"),
            "correct": [False, True, True, True, False, True],
            "margin": np.array([-1.5, 0.5, 2.0, 1.0, -2.0, 0.25], dtype="float32"),
        }
    )
    pd.testing.assert_frame_equal(frame[expected.columns], expected, check_dtype=False)
    assert frame["epoch"].dtype == np.int32
    assert frame["correct"].dtype == bool
    # the Forgetting scorer's view of it: sample 0 [F, T] -> 0, 1 [T, F] -> 1, 2 [T, T] -> 0
    pivot = frame.pivot(index="sample_index", columns="epoch", values="correct").sort_index()
    assert forgetting_counts(pivot.to_numpy(dtype=bool)).tolist() == [0, 1, 0]


def test_true_prob_and_prob_change_hand_values():
    """p_y from the same logits as the margin; the change sum_c |p_c log(p_c / p'_c)| from the
    sample's softmax in the previous epoch, NaN at epoch 1 and where the previous epoch skipped it."""
    ln3 = math.log(3.0)
    dyn = Dynamics(num_samples=2, epochs=3, device=CPU)
    labels = torch.tensor([0, 1])
    dyn.update(0, torch.tensor([[0.0, 0.0], [ln3, 0.0]]), labels, torch.tensor([0, 1]))  # p = [.5 .5], [.75 .25]
    dyn.update(1, torch.tensor([[ln3, 0.0]]), labels[[0]], torch.tensor([0]))  # sample 0: [.75 .25]; 1 skipped
    resumed = Dynamics(num_samples=2, epochs=3, device=CPU)  # the record survives a resume
    resumed.load_state_dict(dyn.state_dict())
    resumed.update(2, torch.tensor([[0.0, 0.0], [0.0, ln3]]), labels, torch.tensor([0, 1]))  # [.5 .5], [.25 .75]
    frame = resumed.to_frame().set_index(["epoch", "sample_index"])
    #   (1, 0): p_y .5;  (1, 1): p_y .25;  (2, 0): p_y .75;  (3, 0): .5;  (3, 1): .75
    assert frame["true_prob"].to_dict() == pytest.approx({(1, 0): 0.5, (1, 1): 0.25, (2, 0): 0.75, (3, 0): 0.5,
                                                          (3, 1): 0.75})
    # (2, 0): [.5 .5] -> [.75 .25]: .75 ln(.75/.5) + .25 |ln(.25/.5)| = .75 ln 1.5 + .25 ln 2
    # (3, 0): [.75 .25] -> [.5 .5]: .5 |ln(.5/.75)| + .5 ln(.5/.25) = .5 ln 1.5 + .5 ln 2
    # (1, *): no previous epoch; (3, 1): last presented at epoch 1, not 2
    change = frame["prob_change"]
    assert change[(2, 0)] == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(2), rel=1e-5)
    assert change[(3, 0)] == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(2), rel=1e-5)
    assert change[[(1, 0), (1, 1), (3, 1)]].isna().all()
    assert frame.loc[(2, 0), "margin"] == pytest.approx(ln3)  # from the same logits
