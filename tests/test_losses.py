"""The losses against values derived by hand (plain Python math): plain CE, Hinton KD, MDSLR logit
reshaping, DKD and VID, their training-time behaviour (warm-up, learned VID parameters, feature
hooks), and the registry with each loss's Params."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.errors import UserError
from pipeline.features import LayerOutputs
from pipeline.losses import LOSSES, build_loss
from pipeline.losses.ce import CrossEntropy
from pipeline.losses.dkd import DecoupledKD
from pipeline.losses.kd import HintonKD, class_logit_std, reshape_logits
from pipeline.losses.vid import INITIAL_VARIANCE, VID
from pipeline.models import build_model
from pipeline.params import NoParams
from pipeline.teacher_outputs import OnlineTeacher
from tiny import CPU

LN2 = math.log(2.0)

# Closed-form fixture: rows whose softmaxes are simple fractions.
#   student row 0 = [0, 0, 0]        -> p_s(T=1) = p_s(T=4) = (1/3, 1/3, 1/3)
#   student row 1 = [0, 4 ln 2, 0]   -> T=1: exp = (1, 16, 1), p_s = (1/18, 16/18, 1/18)
#                                       T=4: logits/4 = (0, ln 2, 0), p_s = (1/4, 1/2, 1/4)
#   teacher row 0 = [4 ln 2, 0, 0]   -> T=4: (ln 2, 0, 0), p_t = (1/2, 1/4, 1/4)
#   teacher row 1 = [0, 0, 0]        -> p_t = (1/3, 1/3, 1/3)
STUDENT = [[0.0, 0.0, 0.0], [0.0, 4 * LN2, 0.0]]
TEACHER = [[4 * LN2, 0.0, 0.0], [0.0, 0.0, 0.0]]
LABELS = [0, 1]

# A messy fixture checked against the plain-math reference below.
MESSY_STUDENT = [[1.0, 2.0, 0.5], [0.3, -1.2, 2.7]]
MESSY_TEACHER = [[2.5, 0.1, -0.7], [-0.4, 0.9, 1.6]]
MESSY_LABELS = [1, 2]


def t(rows, requires_grad=False):
    return torch.tensor(rows, dtype=torch.float64, requires_grad=requires_grad)


def labels(values):
    return torch.tensor(values, dtype=torch.int64)


def py_softmax(row, temperature=1.0):
    exps = [math.exp(z / temperature) for z in row]
    total = sum(exps)
    return [e / total for e in exps]


def py_ce(rows, ys):
    """mean_i -log softmax(z_i)[y_i], written out with math.exp/log."""
    return sum(-math.log(py_softmax(row)[y]) for row, y in zip(rows, ys)) / len(rows)


def py_kl(student_rows, teacher_rows, temperature):
    """mean_i sum_k p_t log(p_t / p_s) at temperature T."""
    total = 0.0
    for s, te in zip(student_rows, teacher_rows):
        ps, pt = py_softmax(s, temperature), py_softmax(te, temperature)
        total += sum(a * math.log(a / b) for a, b in zip(pt, ps))
    return total / len(student_rows)


# ------------------------------------------------------------------ ce


def test_ce_closed_form():
    out = build_loss("ce")(t(STUDENT), labels(LABELS))
    assert set(out) == {"ce"}
    # row 0: -log(1/3) = log 3; row 1: -log(16/18) = log(9/8); mean of the two
    expected = (math.log(3) + math.log(9 / 8)) / 2  # = 0.6082...
    assert out["ce"].mean().item() == pytest.approx(expected, abs=1e-12)


def test_ce_is_minus_log_softmax_at_label():
    out = build_loss("ce")(t(MESSY_STUDENT), labels(MESSY_LABELS))
    # row 0: log(e^1 + e^2 + e^0.5) - 2; row 1: log(e^0.3 + e^-1.2 + e^2.7) - 2.7; mean
    expected = (
        (math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5)) - 2.0)
        + (math.log(math.exp(0.3) + math.exp(-1.2) + math.exp(2.7)) - 2.7)
    ) / 2
    assert expected == pytest.approx(py_ce(MESSY_STUDENT, MESSY_LABELS), abs=1e-12)
    assert out["ce"].mean().item() == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------ kd


def test_kd_closed_form_alpha_09_t4():
    out = build_loss("kd", alpha=0.9, temperature=4.0)(t(STUDENT), labels(LABELS), t(TEACHER))
    assert set(out) == {"ce", "kd"}
    # ce term: (1 - 0.9) * mean CE = 0.1 * (log 3 + log(9/8)) / 2
    assert out["ce"].mean().item() == pytest.approx(0.1 * (math.log(3) + math.log(9 / 8)) / 2, abs=1e-9)
    # KL row 0: p_t = (1/2, 1/4, 1/4), p_s = (1/3, 1/3, 1/3):
    #   1/2 log(3/2) + 2 * 1/4 log(3/4) = 1/2 log(9/8)
    # KL row 1: p_t = (1/3, 1/3, 1/3), p_s = (1/4, 1/2, 1/4):
    #   1/3 (log(4/3) + log(2/3) + log(4/3)) = 1/3 log(32/27)
    # kd term: 0.9 * T^2 * mean = 0.9 * 16 * (1/2 log(9/8) + 1/3 log(32/27)) / 2
    kl_mean = (0.5 * math.log(9 / 8) + math.log(32 / 27) / 3) / 2
    assert kl_mean == pytest.approx(py_kl(STUDENT, TEACHER, 4.0), abs=1e-12)
    assert out["kd"].mean().item() == pytest.approx(0.9 * 16 * kl_mean, abs=1e-6)


def test_kd_messy_fixture_against_plain_math():
    out = build_loss("kd", alpha=0.9, temperature=4.0)(t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
    # ce = 0.1 * CE; kd = 0.9 * 4^2 * mean_i sum_k p_t log(p_t/p_s), p at T = 4
    assert out["ce"].mean().item() == pytest.approx(0.1 * py_ce(MESSY_STUDENT, MESSY_LABELS), abs=1e-6)
    assert out["kd"].mean().item() == pytest.approx(0.9 * 16 * py_kl(MESSY_STUDENT, MESSY_TEACHER, 4.0), abs=1e-6)


def test_kd_float32_inputs_match_to_1e6():
    student = torch.tensor(MESSY_STUDENT, dtype=torch.float32)
    teacher = torch.tensor(MESSY_TEACHER, dtype=torch.float32)
    out = build_loss("kd", alpha=0.9, temperature=4.0)(student, labels(MESSY_LABELS), teacher)
    assert out["kd"].mean().item() == pytest.approx(0.9 * 16 * py_kl(MESSY_STUDENT, MESSY_TEACHER, 4.0), abs=1e-6)


def test_kd_term_zero_when_student_equals_teacher():
    out = build_loss("kd", alpha=0.9, temperature=4.0)(t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_STUDENT))
    # KL(p || p) = 0 exactly
    assert out["kd"].mean().item() == pytest.approx(0.0, abs=1e-12)
    assert out["ce"].mean().item() == pytest.approx(0.1 * py_ce(MESSY_STUDENT, MESSY_LABELS), abs=1e-9)


def test_kd_alpha_zero_is_plain_ce():
    out = build_loss("kd", alpha=0.0, temperature=4.0)(t(STUDENT), labels(LABELS), t(TEACHER))
    # (1 - 0) * CE and 0 * KL
    assert out["kd"].mean().item() == 0.0
    assert out["ce"].mean().item() == pytest.approx((math.log(3) + math.log(9 / 8)) / 2, abs=1e-12)
    plain = build_loss("ce")(t(STUDENT), labels(LABELS))["ce"]
    assert out["ce"].mean().item() == pytest.approx(plain.mean().item(), abs=1e-15)


def test_kd_alpha_one_is_pure_kd():
    out = build_loss("kd", alpha=1.0, temperature=4.0)(t(STUDENT), labels(LABELS), t(TEACHER))
    # 0 * CE; 1 * 16 * kl_mean
    assert out["ce"].mean().item() == 0.0
    assert out["kd"].mean().item() == pytest.approx(16 * py_kl(STUDENT, TEACHER, 4.0), abs=1e-9)


def test_kd_other_temperature():
    out = build_loss("kd", alpha=0.95, temperature=10.0)(t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
    # 0.95 * 10^2 * KL at T = 10; 0.05 * CE
    assert out["kd"].mean().item() == pytest.approx(0.95 * 100 * py_kl(MESSY_STUDENT, MESSY_TEACHER, 10.0), abs=1e-6)
    assert out["ce"].mean().item() == pytest.approx(0.05 * py_ce(MESSY_STUDENT, MESSY_LABELS), abs=1e-9)


def test_kd_gradients_reach_student_only():
    student = t(MESSY_STUDENT, requires_grad=True)
    teacher = t(MESSY_TEACHER)  # as in training: teacher logits carry no graph
    loss = build_loss("kd", alpha=0.9, temperature=4.0)
    out = loss(student, labels(MESSY_LABELS), teacher)
    sum(out.values()).mean().backward()
    assert student.grad is not None and student.grad.abs().sum().item() > 0
    assert teacher.grad is None and not teacher.requires_grad
    # d(kd)/dz_s = alpha * T^2 * (p_s - p_t) / T / B  (KL part only, checked with alpha = 1 below)
    student1 = t(MESSY_STUDENT, requires_grad=True)
    build_loss("kd", alpha=1.0, temperature=4.0)(student1, labels(MESSY_LABELS), teacher)["kd"].mean().backward()
    for i, (s, te) in enumerate(zip(MESSY_STUDENT, MESSY_TEACHER)):
        ps, pt = py_softmax(s, 4.0), py_softmax(te, 4.0)
        for k in range(3):
            assert student1.grad[i, k].item() == pytest.approx(16 * (ps[k] - pt[k]) / 4 / 2, abs=1e-9)


def test_kd_kd_term_gradient_is_zero_at_teacher():
    student = t(MESSY_TEACHER, requires_grad=True)
    out = build_loss("kd", alpha=1.0, temperature=4.0)(student, labels(MESSY_LABELS), t(MESSY_TEACHER))
    out["kd"].mean().backward()
    # p_s = p_t => gradient alpha T (p_s - p_t) / B = 0
    assert student.grad.abs().max().item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("alpha", [1.5, -0.1, float("nan")])
def test_kd_bad_alpha(alpha):
    with pytest.raises(UserError, match=r"alpha.*" + str(alpha)):
        build_loss("kd", alpha=alpha, temperature=4.0)


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0, -4])
def test_kd_bad_temperature(temperature):
    with pytest.raises(UserError, match=r"temperature.*" + str(temperature)):
        build_loss("kd", alpha=0.5, temperature=temperature)


def test_kd_bounds_are_inclusive():
    build_loss("kd", alpha=0.0, temperature=1e-3)
    build_loss("kd", alpha=1.0, temperature=1.0)


def test_kd_needs_teacher_flag():
    assert build_loss("kd").needs_teacher is True
    assert build_loss("ce").needs_teacher is False


# ------------------------------------------------------------------ registry


def test_registered_losses():
    assert {"ce", "kd", "dkd", "vid"} <= set(LOSSES.names())
    for name in set(LOSSES.names()) - {"vid"}:  # vid needs layer names and models: see VID below
        loss = build_loss(name)
        assert isinstance(loss, torch.nn.Module)
        teacher = t(MESSY_TEACHER) if loss.needs_teacher else None
        terms = loss(t(MESSY_STUDENT), labels(MESSY_LABELS), teacher)
        assert terms and all(torch.isfinite(v).all() and v.shape == (len(MESSY_LABELS),) for v in terms.values())


def test_loss_params_are_registered_with_the_loss():
    assert LOSSES.params("kd", {"alpha": 0.5}, "x") == HintonKD.Params(alpha=0.5, temperature=4.0)
    assert LOSSES.params("kd", {"alpha": 0.5}, "x") == HintonKD.Params(0.5, 4.0, False)
    assert LOSSES.params("dkd") == DecoupledKD.Params(tckd_weight=1.0, nckd_weight=8.0, temperature=4.0, warmup_epochs=20)
    assert LOSSES.params("vid", {"student_layers": ["a"], "teacher_layers": ["b"]}) == VID.Params(
        alpha=0.0, temperature=4.0, vid_weight=1.0, student_layers=["a"], teacher_layers=["b"])
    assert LOSSES.params_type("ce") is CrossEntropy.Params and LOSSES.params("ce", {}) == CrossEntropy.Params()
    assert isinstance(LOSSES.params("ce"), NoParams) is False  # every loss declares its own, possibly empty
    loss = build_loss("kd", alpha=0.5)
    assert loss.params == HintonKD.Params(alpha=0.5) and (loss.alpha, loss.temperature, loss.reshape) == (0.5, 4.0, False)


def test_unknown_loss_parameter_is_one_line():
    with pytest.raises(UserError) as info:
        LOSSES.params("kd", {"beta": 2}, "distillation.kd")
    assert str(info.value) == ("config error in distillation.kd: unknown parameter 'beta' for loss 'kd'; "
                               "allowed: alpha, temperature, reshape")
    with pytest.raises(UserError) as info:
        build_loss("ce", alpha=0.5)
    assert str(info.value) == "unknown parameter 'alpha' for loss 'ce'; allowed: none"


def test_unknown_loss_lists_known():
    with pytest.raises(UserError) as info:
        build_loss("kld")
    message = str(info.value)
    assert "'kld'" in message
    for name in LOSSES.names():
        assert name in message
    assert "known: " + ", ".join(LOSSES.names()) in message



def test_terms_are_per_sample():
    # the KD term of row i is 0.9 * 16 * KL_i: the per-sample values average to the batch value
    out = build_loss("kd", alpha=0.9, temperature=4.0)(t(MESSY_STUDENT), labels(MESSY_LABELS), t(MESSY_TEACHER))
    assert out["kd"].shape == out["ce"].shape == (len(MESSY_LABELS),)
    assert build_loss("ce")(t(STUDENT), labels(LABELS))["ce"].shape == (len(LABELS),)


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

    cfg = TrainConfig(epochs=2, batch_size=3, lr=0.1)
    vid = build_loss("vid", student_layers=["features.6"], teacher_layers=["features.6"])
    history = fit(cnn(2), data, torch.arange(6), cfg, seed=0, device=CPU, loss=vid, teacher=OnlineTeacher(cnn(4)), log=lambda line: None)
    first = vid.regressors[0].mean[0].weight.detach().clone()
    assert first.shape == (8, 4, 1, 1)  # teacher features.6: 8 channels; student: 4
    assert {"train_ce", "train_kd", "train_vid"} <= set(history.columns) and (history["train_vid"] > 0).all()
    # the regressor is initialised from the seed and trained: the same seed gives the same start
    again = build_loss("vid", student_layers=["features.6"], teacher_layers=["features.6"])
    fit(cnn(2), data, torch.arange(6), TrainConfig(epochs=1, batch_size=3, lr=0.0, momentum=0.0, weight_decay=0.0, nesterov=False),
        seed=0, device=CPU, loss=again, teacher=OnlineTeacher(cnn(4)), log=lambda line: None)
    assert not torch.equal(first, again.regressors[0].mean[0].weight)  # lr 0 kept the initial weights; training moved vid's

    dkd = build_loss("dkd", warmup_epochs=4)
    history = fit(cnn(2), data, torch.arange(6), cfg, seed=0, device=CPU, loss=dkd, teacher=OnlineTeacher(cnn(4)), log=lambda line: None)
    assert dkd.ramp == 2 / 4 and list(history.columns[:1]) == ["epoch"]
