"""Scorers and the training-dynamics record, against hand-derived values on tiny fixtures."""
from __future__ import annotations

from dataclasses import replace

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from pipeline.checkpoints import save_model, save_train_logits
from pipeline.errors import UserError
from pipeline.io import write_table
from pipeline.models import build_model
from pipeline.scorers import SCORERS, build_scorer
from pipeline.scorers.el2n import el2n
from pipeline.scorers.forgetting import forgetting_counts
from pipeline.seeding import seeded_init
from pipeline.dynamics import Dynamics, margins
from tiny import CPU, MEAN, STD, TRAIN_LABELS, context

LN2 = math.log(2.0)


# ------------------------------------------------------------------ el2n


def test_el2n_hand_values():
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, LN2, 0.0], [2.0, -1.0, 0.5]])
    labels = torch.tensor([0, 1, 2])
    out = el2n(logits, labels)
    assert out.dtype == torch.float64
    # row 0: p = (1/3, 1/3, 1/3), p - e_0 = (-2/3, 1/3, 1/3) -> sqrt(4/9 + 1/9 + 1/9) = sqrt(6)/3
    assert out[0].item() == pytest.approx(math.sqrt(6) / 3, abs=1e-7)
    # row 1: p = (1/4, 1/2, 1/4), p - e_1 = (1/4, -1/2, 1/4) -> sqrt(1/16 + 1/4 + 1/16) = sqrt(6)/4
    assert out[1].item() == pytest.approx(math.sqrt(6) / 4, abs=1e-7)
    # row 2: p = exp(z)/sum, label 2 -> sqrt(p0^2 + p1^2 + (p2 - 1)^2)
    e = [math.exp(2.0), math.exp(-1.0), math.exp(0.5)]
    p = [v / sum(e) for v in e]
    assert out[2].item() == pytest.approx(math.sqrt(p[0] ** 2 + p[1] ** 2 + (p[2] - 1) ** 2), abs=1e-7)


# ------------------------------------------------------------------ forgetting events

CORRECT = np.array(
    [
        [1, 0, 1, 0],  # learned, forgotten at 2nd and 4th presentations -> 2
        [0, 1, 1, 1],  # learned once, never forgotten -> 0
        [1, 1, 1, 1],  # always right -> 0
        [0, 0, 0, 0],  # never learned -> 4 presentations ("max") or 0 ("zero")
        [0, 1, 0, 0],  # one 1 -> 0 transition -> 1
        [1, 0, 0, 1],  # one 1 -> 0 transition (0 -> 0 and 0 -> 1 are not events) -> 1
    ],
    dtype=bool,
)
EXPECTED_MAX = [2, 0, 0, 4, 1, 1]
EXPECTED_ZERO = [2, 0, 0, 0, 1, 1]


def test_forgetting_counts():
    assert forgetting_counts(CORRECT).tolist() == EXPECTED_MAX
    assert forgetting_counts(CORRECT, "max").tolist() == EXPECTED_MAX
    assert forgetting_counts(CORRECT, "zero").tolist() == EXPECTED_ZERO
    assert forgetting_counts(CORRECT).dtype == np.float64
    # one presentation: no transitions; never learned -> 1 presentation
    assert forgetting_counts(np.array([[True], [False]])).tolist() == [0, 1]


# ------------------------------------------------------------------ margins and dynamics


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
    assert list(frame.columns) == ["sample_index", "epoch", "correct", "margin"]
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
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame["epoch"].dtype == np.int32
    assert frame["correct"].dtype == bool
    # the Forgetting scorer's view of it: sample 0 [F, T] -> 0, 1 [T, F] -> 1, 2 [T, T] -> 0
    pivot = frame.pivot(index="sample_index", columns="epoch", values="correct").sort_index()
    assert forgetting_counts(pivot.to_numpy(dtype=bool)).tolist() == [0, 1, 0]


# ------------------------------------------------------------------ forgetting scorer


def write_dynamics(path, fingerprint, correct=CORRECT, drop=None):
    n, epochs = correct.shape
    rows = [(i, e, bool(correct[i, e]), 0.0) for e in range(epochs) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["sample_index", "epoch", "correct", "margin"])
    frame["epoch"] = frame["epoch"].astype("int32")
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows in any order
    if drop is not None:
        frame = frame.drop(index=drop)
    write_table(frame, path, {"stage": "teacher-dynamics", "dataset": "tiny", "dataset_fingerprint": fingerprint})
    return path


def test_forgetting_scorer(data, tmp_path):
    path = write_dynamics(tmp_path / "dyn.parquet", data.fingerprint)
    scores = build_scorer("forgetting").score(context(data, dynamics_path=path))
    assert scores.tolist() == EXPECTED_MAX  # per row, see CORRECT
    scores = build_scorer("forgetting", {"never_learned": "zero"}).score(context(data, dynamics_path=path))
    assert scores.tolist() == EXPECTED_ZERO


def test_forgetting_scorer_rejects_other_data(data, tmp_path):
    path = write_dynamics(tmp_path / "dyn.parquet", "0000000000000000")
    with pytest.raises(UserError, match="0000000000000000"):
        build_scorer("forgetting").score(context(data, dynamics_path=path))


def test_forgetting_scorer_needs_dynamics(data, tmp_path):
    with pytest.raises(UserError, match="dynamics"):
        build_scorer("forgetting").score(context(data))
    path = write_dynamics(tmp_path / "dyn.parquet", data.fingerprint, drop=[3])  # one presentation missing
    with pytest.raises(UserError, match="every sample"):
        build_scorer("forgetting").score(context(data, dynamics_path=path))


def test_forgetting_bad_never_learned():
    with pytest.raises(UserError, match="sometimes"):
        build_scorer("forgetting", {"never_learned": "sometimes"})


# ------------------------------------------------------------------ random scorer


def test_random_scorer(data):
    scorer = build_scorer("random")
    a = scorer.score(context(data, seed=5))
    b = scorer.score(context(data, seed=5))
    c = scorer.score(context(data, seed=6))
    assert a.shape == (6,) and a.dtype == np.float64
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    for s in (a, c):
        assert ((s >= 0) & (s < 1)).all()


# ------------------------------------------------------------------ teacher_ce


def make_teacher(data):
    with seeded_init(7, "test-teacher"):
        model = build_model("cnn", data.num_classes, data.in_channels, width=2)
    g = torch.Generator().manual_seed(3)
    for module in model.modules():  # non-trivial running statistics, so eval vs train mode matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
    return model


def test_teacher_ce_scorer(data, tmp_path):
    model = make_teacher(data)
    path = tmp_path / "teacher.pt"
    save_train_logits(path, model, data, 4, CPU, {})
    scores = build_scorer("teacher_ce").score(context(data, teacher_logits_path=path))

    # Independently: normalise the raw uint8 images, eval-mode forward, per-sample CE.
    x = (data.train.images.float() / 255 - MEAN[0]) / STD[0]
    model.eval()
    with torch.no_grad():
        logits = model(x).double()
    expected = F.cross_entropy(logits, torch.tensor(TRAIN_LABELS), reduction="none").numpy()
    assert scores.shape == (6,)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    # and CE = logsumexp(z) - z_y by hand for sample 0 (label 0)
    z = logits[0].tolist()
    assert scores[0] == pytest.approx(math.log(sum(math.exp(v) for v in z)) - z[0], abs=1e-5)
    # the comparison is sensitive to the mode: train-mode BatchNorm gives different values
    model.train()
    with torch.no_grad():
        train_mode = F.cross_entropy(model(x).double(), torch.tensor(TRAIN_LABELS), reduction="none").numpy()
    assert not np.allclose(scores, train_mode, atol=1e-3)


def test_teacher_ce_rejects_other_data(data, tmp_path):
    path = tmp_path / "teacher.pt"
    save_train_logits(path, make_teacher(data), data, 4, CPU, {})
    other = build_scorer("teacher_ce")
    with pytest.raises(UserError, match=data.fingerprint):
        other.score(context(replace(data, name="other"), teacher_logits_path=path))
    with pytest.raises(UserError, match="teacher"):
        build_scorer("teacher_ce").score(context(data))


# ------------------------------------------------------------------ el2n scorer, full path

def test_el2n_scorer_averages_the_proxies(data, tmp_path):
    spec = {"model": "cnn", "model_args": {"width": 2}, "num_classes": 3, "in_channels": 1,
            "dataset_fingerprint": data.fingerprint, "test_acc": 0.5}
    paths, per_proxy = [], []
    for seed in (1, 2):
        model = make_teacher(data) if seed == 1 else build_model("cnn", 3, 1, width=2)
        paths.append(tmp_path / f"proxy{seed}.pt")
        save_model(paths[-1], model, spec)
        x = (data.train.images.float() / 255 - MEAN[0]) / STD[0]
        with torch.no_grad():
            per_proxy.append(el2n(model.eval()(x), torch.tensor(TRAIN_LABELS)).numpy())
    scores = build_scorer("el2n").score(context(data, proxy_paths=paths))
    np.testing.assert_allclose(scores, (per_proxy[0] + per_proxy[1]) / 2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(per_proxy[0], per_proxy[1])
    # ||p - e_y||_2 lies in [0, sqrt(2)]
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= math.sqrt(2)).all()
    with pytest.raises(UserError, match="proxy models"):
        build_scorer("el2n").score(context(data))


def test_unknown_scorer_parameter():
    with pytest.raises(UserError) as info:
        build_scorer("forgetting", {"rounds": 3})
    message = str(info.value)
    assert "'rounds'" in message
    assert "allowed: never_learned" in message


def test_unknown_scorer_lists_known():
    with pytest.raises(UserError) as info:
        build_scorer("el2m")
    assert "known: " + ", ".join(SCORERS.names()) in str(info.value)
    assert {"el2n", "forgetting", "random", "teacher_ce"} <= set(SCORERS.names())



class _FitsBelow(SCORERS.get("random")):
    """The random scorer, out of GPU memory at batches above ``fits``; records the batches tried."""

    def __init__(self, fits):
        super().__init__("random")
        self.fits, self.tried = fits, []

    def score(self, ctx):
        self.tried.append(ctx.batch_size)
        if ctx.batch_size > self.fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return super().score(ctx)


def test_scoring_halves_the_batch_until_it_fits(data):
    from pipeline.stages.scores import score_at_largest_batch

    scorer = _FitsBelow(8)
    scores, batch = score_at_largest_batch(scorer, replace(context(data), batch_size=50))
    assert scorer.tried == [50, 25, 12, 6] and batch == 6
    np.testing.assert_array_equal(scores, build_scorer("random").score(context(data)))
    never = _FitsBelow(0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        score_at_largest_batch(never, replace(context(data), batch_size=4))
    assert never.tried == [4, 2, 1]
