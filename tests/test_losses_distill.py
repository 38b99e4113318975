"""MDSLR logit reshaping, DKD and VID against values worked out by hand, and their training-time
behaviour (warm-up, learned VID parameters, feature hooks)."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.errors import UserError
from pipeline.features import LayerOutputs
from pipeline.losses import build_loss
from pipeline.losses.kd import class_logit_std, reshape_logits
from pipeline.losses.vid import INITIAL_VARIANCE
from pipeline.models import build_model
from tests.test_losses import LN2, LABELS, MESSY_LABELS, MESSY_STUDENT, MESSY_TEACHER, STUDENT, TEACHER, labels, py_kl, py_softmax, t


# ------------------------------------------------------------------ MDSLR reshaping
# Unbiased std across classes: [1, 2, 3] -> 1; [2, 4, 6] -> 2; [0, 0, 3] -> sqrt(3) (mean 1,
# squared deviations 1 + 1 + 4 = 6, / 2). Classes 0: rows 0, 1 -> s[0] = 1.5; class 1: row 2 -> sqrt(3).
RESHAPE_LOGITS = [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 3.0]]
RESHAPE_LABELS = [0, 0, 1]


def test_class_logit_std_by_hand():
    s = class_logit_std(t(RESHAPE_LOGITS), labels(RESHAPE_LABELS), num_classes=2)
    assert s.tolist() == pytest.approx([1.5, math.sqrt(3)])


def test_reshape_logits_by_hand():
    s = torch.tensor([1.5, math.sqrt(3)], dtype=torch.float64)
    out = reshape_logits(t(RESHAPE_LOGITS), labels(RESHAPE_LABELS), s)
    # row / std(row) * s[y]: [1,2,3]/1*1.5, [2,4,6]/2*1.5, [0,0,3]/sqrt3*sqrt3; no centring
    assert out.tolist() == [pytest.approx(r) for r in ([1.5, 3.0, 4.5], [1.5, 3.0, 4.5], [0.0, 0.0, 3.0])]


def test_reshape_keeps_constant_logits():
    out = reshape_logits(t([[2.0, 2.0, 2.0]]), labels([0]), torch.tensor([3.0], dtype=torch.float64))
    assert out.tolist() == [[2.0, 2.0, 2.0]]


def test_class_logit_std_needs_every_class():
    with pytest.raises(UserError, match=r"classes without samples: \[1\]"):
        class_logit_std(t(RESHAPE_LOGITS), labels([0, 0, 2]), num_classes=3)


def test_kd_with_reshape_is_kd_on_reshaped_teacher():
    s = torch.tensor([0.7, 1.9, 0.4], dtype=torch.float64)
    loss = build_loss("kd", alpha=0.9, temperature=4.0, reshape=True)
    assert loss.needs_teacher_class_std
    loss.set_teacher_class_std(s)
    out = loss(t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
    # by hand: std of [2.5, 0.1, -0.7] and [-0.4, 0.9, 1.6], rescaled to s[1] = 1.9 and s[2] = 0.4
    reshaped = []
    for row, y in zip(MESSY_TEACHER, MESSY_LABELS):
        mean = sum(row) / 3
        std = math.sqrt(sum((z - mean) ** 2 for z in row) / 2)
        reshaped.append([z / std * s[y].item() for z in row])
    expected = [py_kl([srow], [trow], 4.0) * 16 * 0.9 for srow, trow in zip(MESSY_STUDENT, reshaped)]
    assert out["kd"].tolist() == pytest.approx(expected)


def test_kd_reshape_without_statistics_is_an_error():
    with pytest.raises(UserError, match="class statistics"):
        build_loss("kd", reshape=True)(t(STUDENT), labels(LABELS), t(TEACHER))


# ------------------------------------------------------------------ DKD
def py_dkd_parts(student, teacher, y, temperature):
    """TCKD and NCKD of one row in plain math (without T^2)."""
    ps, pt = py_softmax(student, temperature), py_softmax(teacher, temperature)
    bs, bt = [ps[y], 1 - ps[y]], [pt[y], 1 - pt[y]]
    tckd = sum(a * math.log(a / b) for a, b in zip(bt, bs))
    hat_s = py_softmax([z for k, z in enumerate(student) if k != y], temperature)
    hat_t = py_softmax([z for k, z in enumerate(teacher) if k != y], temperature)
    nckd = sum(a * math.log(a / b) for a, b in zip(hat_t, hat_s))
    return tckd, nckd


def test_dkd_closed_form():
    # row 0: p_t = (1/2, 1/4, 1/4), p_s = (1/3, 1/3, 1/3), y = 0: b_t = (1/2, 1/2), b_s = (1/3, 2/3),
    #   TCKD = 1/2 ln(3/2) + 1/2 ln(3/4) = 1/2 ln(9/8); non-target (1/2, 1/2) both: NCKD = 0.
    # row 1: p_t uniform, p_s = (1/4, 1/2, 1/4), y = 1: b_t = (1/3, 2/3), b_s = (1/2, 1/2),
    #   TCKD = 1/3 ln(2/3) + 2/3 ln(4/3); NCKD = 0.
    out = build_loss("dkd", tckd_weight=1.0, nckd_weight=8.0, temperature=4.0, warmup_epochs=0)(
        t(STUDENT), labels(LABELS), t(TEACHER))
    assert out["tckd"].tolist() == pytest.approx([16 * 0.5 * math.log(9 / 8), 16 * (math.log(2 / 3) / 3 + 2 * math.log(4 / 3) / 3)])
    assert out["nckd"].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert out["ce"].tolist() == pytest.approx([math.log(3), -math.log(16 / 18)])


def test_dkd_messy_rows_match_plain_math():
    out = build_loss("dkd", tckd_weight=2.0, nckd_weight=8.0, temperature=3.0, warmup_epochs=0)(
        t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
    parts = [py_dkd_parts(s, te, y, 3.0) for s, te, y in zip(MESSY_STUDENT, MESSY_TEACHER, MESSY_LABELS)]
    assert out["tckd"].tolist() == pytest.approx([9 * 2.0 * p[0] for p in parts])
    assert out["nckd"].tolist() == pytest.approx([9 * 8.0 * p[1] for p in parts])


def test_dkd_parts_recompose_kd():
    # Zhao et al.'s identity: KL(p_t || p_s) = TCKD + (1 - p_t[y]) * NCKD
    out = build_loss("dkd", tckd_weight=1.0, nckd_weight=1.0, temperature=2.0, warmup_epochs=0)(
        t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
    for i, (s, te, y) in enumerate(zip(MESSY_STUDENT, MESSY_TEACHER, MESSY_LABELS)):
        p_target = py_softmax(te, 2.0)[y]
        recomposed = (out["tckd"][i] + (1 - p_target) * out["nckd"][i]).item() / 4
        assert recomposed == pytest.approx(py_kl([s], [te], 2.0))


def test_dkd_warmup_ramps_linearly():
    loss = build_loss("dkd", warmup_epochs=20)
    full = build_loss("dkd", warmup_epochs=0)(t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
    for epoch, factor in ((0, 1 / 20), (9, 10 / 20), (19, 1.0), (30, 1.0)):
        loss.start_epoch(epoch, 40)
        out = loss(t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
        assert out["tckd"].tolist() == pytest.approx((factor * full["tckd"]).tolist())
        assert out["ce"].tolist() == pytest.approx(full["ce"].tolist())  # CE is never ramped


@pytest.mark.parametrize("params, message", [
    ({"nckd_weight": -1.0}, "nckd_weight must be >= 0, got -1.0"),
    ({"temperature": 0.0}, "temperature must be > 0, got 0.0"),
])
def test_dkd_bad_parameters(params, message):
    with pytest.raises(UserError, match=message):
        build_loss("dkd", **params)


# ------------------------------------------------------------------ VID
def cnn(width):
    torch.manual_seed(0)
    return build_model("cnn", num_classes=3, in_channels=1, width=width)


def prepared_vid(**params):
    student, teacher = cnn(2), cnn(4)
    loss = build_loss("vid", student_layers=["features.2", "features.6"],
                      teacher_layers=["features.2", "features.2"], **params)
    loss.prepare(student, teacher, torch.zeros(2, 1, 8, 8))
    return loss, student, teacher


def test_vid_regressors_take_their_shapes_from_the_hooked_layers():
    loss, _, _ = prepared_vid()
    shapes = [[tuple(m.weight.shape) for m in r.mean if isinstance(m, torch.nn.Conv2d)] for r in loss.regressors]
    # student features.2 -> 2 channels, features.6 -> 4; teacher features.2 -> 4 channels
    assert shapes == [[(4, 2, 1, 1), (4, 4, 1, 1), (4, 4, 1, 1)], [(4, 4, 1, 1)] * 3]
    variance = torch.nn.functional.softplus(loss.regressors[0].raw_variance) + 1e-5
    assert variance.tolist() == pytest.approx([INITIAL_VARIANCE] * 4)


def test_vid_value_by_hand():
    # With a zero regressor mu = 0, so each element costs 0.5 * (f_t^2 / 5 + ln 5). Student maps
    # are 4x4 and teacher maps 2x2: the student is pooled to 2x2 (values do not matter: mu = 0).
    loss, _, _ = prepared_vid(vid_weight=2.0)
    for regressor in loss.regressors:
        for m in regressor.mean:
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.zeros_(m.weight)
    teacher_map = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1).expand(2, 4, 2, 2)  # sample 0 all 1, sample 1 all 2
    features_s = {"features.2": torch.randn(2, 2, 4, 4), "features.6": torch.randn(2, 4, 4, 4)}
    features_t = {"features.2": teacher_map}
    out = loss(t(MESSY_STUDENT).float(), labels(MESSY_LABELS), t(MESSY_TEACHER).float(), features_s, features_t)
    per_pair = [0.5 * (v**2 / 5 + math.log(5)) for v in (1.0, 2.0)]
    assert out["vid"].tolist() == pytest.approx([2.0 * 2 * p for p in per_pair], rel=1e-5)  # two pairs, weight 2
    assert out["ce"].tolist() == pytest.approx(torch.nn.functional.cross_entropy(
        t(MESSY_STUDENT), labels(MESSY_LABELS), reduction="none").tolist(), rel=1e-6)  # alpha = 0: CE + VID
    assert out["kd"].tolist() == [0.0, 0.0]


def test_vid_unknown_layer_names_the_valid_ones():
    loss = build_loss("vid", student_layers=["layer9"], teacher_layers=["features.2"])
    with pytest.raises(UserError, match=r"SmallCNN has no layer 'layer9'; layers: features, features\.0, features\.1"):
        loss.prepare(cnn(2), cnn(4), torch.zeros(2, 1, 8, 8))


def test_vid_needs_paired_layers():
    with pytest.raises(UserError, match="same non-zero length"):
        build_loss("vid", student_layers=["features.2"], teacher_layers=[])


def test_layer_outputs_hooks_come_off():
    model = cnn(2)
    with LayerOutputs(model, ["features.6"]) as taps:
        model.eval()(torch.zeros(1, 1, 8, 8))
        assert taps.outputs["features.6"].shape == (1, 4, 4, 4)
    assert all(not m._forward_hooks for m in model.modules())


def test_fit_trains_vid_regressors_and_ramps_dkd(data):
    from pipeline.train import TrainConfig, fit
    from tests.tiny import CPU

    cfg = TrainConfig(epochs=2, batch_size=3, lr=0.1)
    vid = build_loss("vid", student_layers=["features.6"], teacher_layers=["features.6"])
    history = fit(cnn(2), data, torch.arange(6), cfg, seed=0, device=CPU, loss=vid, teacher=cnn(4), log=lambda line: None)
    first = vid.regressors[0].mean[0].weight.detach().clone()
    assert first.shape == (8, 4, 1, 1)  # teacher features.6: 8 channels; student: 4
    assert {"train_ce", "train_kd", "train_vid"} <= set(history.columns) and (history["train_vid"] > 0).all()
    # the regressor is initialised from the seed and trained: the same seed gives the same start
    again = build_loss("vid", student_layers=["features.6"], teacher_layers=["features.6"])
    fit(cnn(2), data, torch.arange(6), TrainConfig(epochs=1, batch_size=3, lr=0.0, momentum=0.0, weight_decay=0.0, nesterov=False),
        seed=0, device=CPU, loss=again, teacher=cnn(4), log=lambda line: None)
    assert not torch.equal(first, again.regressors[0].mean[0].weight)  # lr 0 kept the initial weights; training moved vid's

    dkd = build_loss("dkd", warmup_epochs=4)
    history = fit(cnn(2), data, torch.arange(6), cfg, seed=0, device=CPU, loss=dkd, teacher=cnn(4), log=lambda line: None)
    assert dkd.ramp == 2 / 4 and list(history.columns[:1]) == ["epoch"]
