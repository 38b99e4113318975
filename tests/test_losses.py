"""Loss registry, plain CE and Hinton KD against values derived by hand (plain Python math)."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.errors import UserError
from pipeline.losses import LOSSES, build_loss

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
    for name in set(LOSSES.names()) - {"vid"}:  # vid needs layer names and models: test_losses_distill
        loss = build_loss(name)
        assert isinstance(loss, torch.nn.Module)
        teacher = t(MESSY_TEACHER) if loss.needs_teacher else None
        terms = loss(t(MESSY_STUDENT), labels(MESSY_LABELS), teacher)
        assert terms and all(torch.isfinite(v).all() and v.shape == (len(MESSY_LABELS),) for v in terms.values())


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
