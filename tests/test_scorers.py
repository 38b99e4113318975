"""Scorers and the scores stage's inputs, against hand-derived values
and independent autograd on tiny fixtures. Scorers get loaded objects in a ``ScoringContext``; the
stage (``pipeline.stages.scores``) loads the files, which its own tests below cover."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tiny import CPU, MEAN, STD, TRAIN_LABELS, context, inputs, make_model

from pipeline.checkpoints import save_model, save_train_logits
from pipeline.data.splits import apply_views, random_views
from pipeline.errors import UserError
from pipeline.inference import predict, predict_with_features
from pipeline.io import write_table
from pipeline.scorers import SCORERS, build_scorer
from pipeline.stages.embeddings import save_embeddings
from pipeline.scorers.aum import aum
from pipeline.scorers.el2n import el2n
from pipeline.scorers.entropy import entropy_score
from pipeline.scorers.forgetting import Forgetting, forgetting_counts
from pipeline.scorers.grand import GraNd, full_grad_norm, last_layer_grad_norm
from pipeline.scorers.least_confidence import least_confidence_score
from pipeline.scorers.margin import margin_score
from pipeline.seeding import torch_generator
from pipeline.stages.scores import MISSING, load_needs, score_at_largest_batch

LN2, LN3 = math.log(2.0), math.log(3.0)


def save(path, model, fingerprint):
    """A model as the teacher stage writes teachers and proxies (``stage: teacher``)."""
    save_model(path, model, {"stage": "teacher", "model": "cnn", "model_args": {"width": 2}, "num_classes": 3,
                             "in_channels": 1, "dataset_fingerprint": fingerprint, "test_acc": 0.5})
    return path


def autograd_norms(model, split, parameters):
    """|| grad CE ||_2 w.r.t. ``parameters``, one sample at a time with plain autograd."""
    model.eval()
    x, norms = inputs(split), []
    for i in range(len(split)):
        loss = F.cross_entropy(model(x[i : i + 1]), split.labels[i : i + 1])
        grads = torch.autograd.grad(loss, parameters)
        norms.append(math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads)))
    return np.array(norms)


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


# ------------------------------------------------------------------ forgetting scorer


def correctness_frame(correct=CORRECT, drop=None):
    """The dynamics table of ``correct`` (samples x presentations), rows shuffled."""
    n, epochs = correct.shape
    rows = [(i, e, bool(correct[i, e]), 0.0) for e in range(epochs) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["sample_index", "epoch", "correct", "margin"])
    frame["epoch"] = frame["epoch"].astype("int32")
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows in any order
    return frame if drop is None else frame.drop(index=drop)


def test_forgetting_scorer(data):
    scores = build_scorer("forgetting").score(context(data, dynamics=correctness_frame()))
    assert scores.tolist() == EXPECTED_MAX  # per row, see CORRECT
    scores = build_scorer("forgetting", {"never_learned": "zero"}).score(context(data, dynamics=correctness_frame()))
    assert scores.tolist() == EXPECTED_ZERO


def test_forgetting_scorer_needs_every_presentation(data):
    frame = correctness_frame(drop=[3])  # one presentation missing
    with pytest.raises(UserError, match="every sample"):
        build_scorer("forgetting").score(context(data, dynamics=frame))


def test_forgetting_bad_never_learned():
    with pytest.raises(UserError, match=r"^forgetting never_learned must be 'max' or 'zero', got 'sometimes'$"):
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


def test_teacher_ce_scorer(data):
    model = make_model()
    scores = build_scorer("teacher_ce").score(context(data, teacher_logits=predict(model, data.train, 4, CPU)))

    # Independently: normalise the raw uint8 images, eval-mode forward, per-sample CE.
    x = inputs(data.train)
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


# ------------------------------------------------------------------ el2n scorer


def test_el2n_scorer_averages_the_proxies(data):
    models = [make_model(1), make_model(2)]
    per_proxy = []
    for model in models:
        with torch.no_grad():
            per_proxy.append(el2n(model(inputs(data.train)), torch.tensor(TRAIN_LABELS)).numpy())
    scores = build_scorer("el2n").score(context(data, proxies=models))
    np.testing.assert_allclose(scores, (per_proxy[0] + per_proxy[1]) / 2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(per_proxy[0], per_proxy[1])
    # ||p - e_y||_2 lies in [0, sqrt(2)]
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= math.sqrt(2)).all()


# ------------------------------------------------------------------ grand


def test_last_layer_grad_norm_hand_value():
    # h = [3, 4] -> ||h||^2 + 1 = 26; z = [0, 0], y = 0 -> p = [1/2, 1/2], p - e_y = [-1/2, 1/2],
    # ||p - e_y|| = sqrt(1/2) -> sqrt(1/2) * sqrt(26) = sqrt(13)
    out = last_layer_grad_norm(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]), torch.tensor([0]))
    assert out.item() == pytest.approx(math.sqrt(13), rel=1e-6)
    # z = [ln 2, 0, 0], y = 2 -> p = [1/2, 1/4, 1/4], p - e_y = [1/2, 1/4, -3/4] -> sqrt(14)/4;
    # h = [0] -> sqrt(1): the bias gradient alone
    out = last_layer_grad_norm(torch.tensor([[LN2, 0.0, 0.0]]), torch.tensor([[0.0]]), torch.tensor([2]))
    assert out.item() == pytest.approx(math.sqrt(14) / 4, rel=1e-6)


def test_last_layer_grad_norm_equals_autograd(data):
    model = make_model()
    logits, features = predict_with_features(model, data.train, 4, CPU)
    ours = last_layer_grad_norm(logits, features, data.train.labels).numpy()
    expected = autograd_norms(model, data.train, [model.classifier.weight, model.classifier.bias])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_full_grad_norm_equals_autograd(data):
    model = make_model()
    split = data.train.head(5)
    ours = full_grad_norm(model, split, chunk_size=2, device=CPU).numpy()  # chunks of 2, 2, 1
    assert ours.shape == (5,) and ours.dtype == np.float32
    expected = autograd_norms(model, split, list(model.parameters()))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    # more than the last layer contributes
    last = autograd_norms(model, split, [model.classifier.weight, model.classifier.bias])
    assert (ours > last + 1e-4).all()


@pytest.mark.parametrize("mode", ["last_layer", "full"])
def test_grand_scorer_mean_over_proxies(data, mode):
    models = [make_model(1), make_model(2)]
    scores = build_scorer("grand", {"mode": mode, "chunk_size": 4}).score(context(data, proxies=models))
    assert scores.shape == (6,) and scores.dtype == np.float64
    if mode == "full":
        per_proxy = [autograd_norms(m, data.train, list(m.parameters())) for m in models]
    else:
        per_proxy = [autograd_norms(m, data.train, [m.classifier.weight, m.classifier.bias]) for m in models]
    assert not np.allclose(per_proxy[0], per_proxy[1])
    np.testing.assert_allclose(scores, (per_proxy[0] + per_proxy[1]) / 2, rtol=1e-5, atol=1e-5)


def test_grand_params():
    assert SCORERS.params("grand", {"mode": "full"}, "scorers.grand") == GraNd.Params(mode="full", chunk_size=64)
    with pytest.raises(UserError, match=r"'sometimes'") as info:
        build_scorer("grand", {"mode": "sometimes"})
    assert str(info.value) == "grand mode must be one of last_layer, full, got 'sometimes'"
    with pytest.raises(UserError, match=r"^grand chunk_size must be at least 1, got 0$"):
        build_scorer("grand", {"chunk_size": 0})


# ------------------------------------------------------------------ aum

# margins per (sample, epoch 1, epoch 2) -> AUM = -(mean margin)
MARGINS = np.array(
    [
        [1.0, 3.0],  # mean 2 -> -2
        [-1.0, -2.0],  # mean -1.5 -> 1.5
        [0.0, 0.0],  # -> 0
        [0.5, -0.5],  # -> 0
        [2.0, 1.0],  # mean 1.5 -> -1.5
        [-3.0, 1.0],  # mean -1 -> 1
    ]
)
EXPECTED_AUM = [-2.0, 1.5, 0.0, 0.0, -1.5, 1.0]


def margins_frame(margins=MARGINS, drop=()):
    """The dynamics table of ``margins`` (samples x epochs), without the (sample, epoch) pairs in
    ``drop``, rows shuffled."""
    n, epochs = margins.shape
    frame = pd.DataFrame(
        [(i, e + 1, bool(margins[i, e] > 0), float(margins[i, e])) for e in range(epochs) for i in range(n)
         if (i, e + 1) not in drop],
        columns=["sample_index", "epoch", "correct", "margin"],
    )
    frame["epoch"] = frame["epoch"].astype("int32")
    frame["margin"] = frame["margin"].astype("float32")
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows in any order


def test_aum_hand_values(data):
    assert aum(MARGINS).tolist() == EXPECTED_AUM
    scores = build_scorer("aum").score(context(data, dynamics=margins_frame()))
    assert scores.dtype == np.float64
    assert scores.tolist() == EXPECTED_AUM


def test_aum_incomplete_dynamics(data):
    frame = margins_frame(drop={(4, 2)})  # sample 4, epoch 2 missing
    with pytest.raises(UserError, match=r"incomplete for 1 samples: 4$"):
        build_scorer("aum").score(context(data, dynamics=frame))
    nan = MARGINS.copy()
    nan[2, 0] = np.nan
    frame = margins_frame(nan, drop={(5, 1), (5, 2)})  # 5: no rows
    with pytest.raises(UserError, match=r"incomplete for 2 samples: 2, 5$"):
        build_scorer("aum").score(context(data, dynamics=frame))
    frame = margins_frame(drop={(i, 1) for i in range(6)})  # epoch 1
    with pytest.raises(UserError, match="incomplete for 6 samples"):
        build_scorer("aum").score(context(data, dynamics=frame))


# ------------------------------------------------------------------ entropy, margin, least confidence

# row 0: z = [0, 0, 0] -> p = [1/3, 1/3, 1/3]: H = ln 3, gap 0, 1 - max p = 2/3
# row 1: z = [ln 2, 0, 0] -> p = [2, 1, 1] / 4 = [1/2, 1/4, 1/4]:
#        H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2, gap 1/2 - 1/4 = 1/4 -> -1/4, 1 - max p = 1/2
UNCERTAINTY_LOGITS = torch.tensor([[0.0, 0.0, 0.0], [LN2, 0.0, 0.0]], dtype=torch.float64)


def test_uncertainty_hand_values():
    h, m, lc = (f(UNCERTAINTY_LOGITS) for f in (entropy_score, margin_score, least_confidence_score))
    for out in (h, m, lc):
        assert out.dtype == torch.float64
    np.testing.assert_allclose(h.numpy(), [LN3, 1.5 * LN2], rtol=1e-12)
    np.testing.assert_allclose(m.numpy(), [0.0, -0.25], atol=1e-12)
    np.testing.assert_allclose(lc.numpy(), [2 / 3, 0.5], rtol=1e-12)
    # a one-hot-like prediction: no uncertainty, no NaN from 0 * log 0
    certain = torch.tensor([[200.0, 0.0, 0.0]])
    assert entropy_score(certain).item() == pytest.approx(0.0, abs=1e-12)
    assert margin_score(certain).item() == pytest.approx(-1.0, abs=1e-12)
    assert least_confidence_score(certain).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "name, fn", [("entropy", entropy_score), ("margin", margin_score), ("least_confidence", least_confidence_score)]
)
def test_uncertainty_scorers(data, name, fn):
    model = make_model()
    scores = build_scorer(name).score(context(data, teacher_logits=predict(model, data.train, 4, CPU)))
    with torch.no_grad():
        expected = fn(model.eval()(inputs(data.train))).numpy()
    assert scores.shape == (6,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ registry and parameters


def test_scorer_needs():
    assert build_scorer("grand").needs == {"proxies"}
    assert build_scorer("grand", {"mode": "full"}).needs == {"proxies"}
    assert build_scorer("el2n").needs == {"proxies"}
    assert build_scorer("aum").needs == build_scorer("forgetting").needs == {"dynamics"}
    for name in ("entropy", "margin", "least_confidence", "teacher_ce"):
        assert build_scorer(name).needs == {"teacher_logits"}
    assert build_scorer("random").needs == set()


def test_scorer_params_from_the_registry():
    assert SCORERS.params_type("forgetting") is Forgetting.Params
    assert SCORERS.params("forgetting", {"never_learned": "zero"}, "scorers.forgetting") == Forgetting.Params("zero")
    assert SCORERS.params("forgetting", None, "scorers.forgetting") == Forgetting.Params(never_learned="max")
    assert build_scorer("forgetting", {"never_learned": "zero"}).params_dict() == {"never_learned": "zero"}
    assert build_scorer("grand").params_dict() == {"epoch": None, "mode": "last_layer", "chunk_size": 64}
    assert build_scorer("el2n").params_dict() == {"epoch": None}
    assert build_scorer("margin").params_dict() == {"view": "clean", "view_seed": 0}
    assert build_scorer("random").params_dict() == {}


def test_unknown_scorer_parameter():
    with pytest.raises(UserError) as info:
        build_scorer("forgetting", {"rounds": 3})
    assert str(info.value) == "unknown parameter 'rounds' for scorer 'forgetting'; allowed: never_learned"
    with pytest.raises(UserError) as info:
        SCORERS.params("el2n", {"runs": 3}, "scorers.el2n")
    assert str(info.value) == "config error in scorers.el2n: unknown parameter 'runs' for scorer 'el2n'; allowed: epoch"


def test_unknown_scorer_lists_known():
    with pytest.raises(UserError) as info:
        build_scorer("el2m")
    assert "known: " + ", ".join(SCORERS.names()) in str(info.value)
    assert {"el2n", "forgetting", "random", "teacher_ce"} <= set(SCORERS.names())


# ------------------------------------------------------------------ the scores stage: inputs, batch size


def write_dynamics(path, fingerprint):
    write_table(correctness_frame(), path, {"stage": "teacher-dynamics", "dataset": "tiny", "dataset_fingerprint": fingerprint})
    return path


@pytest.mark.parametrize("need, message", [
    ("teacher", "this scorer needs a trained teacher, but none was given"),
    ("teacher_logits", "this scorer needs the teacher's training-set logits, but none were given"),
    ("dynamics", "this scorer needs the teacher's training dynamics, but none were given"),
    ("proxies", "this scorer needs the proxy models, but none were given"),
])
def test_stage_refuses_a_missing_input_in_one_line(data, need, message):
    assert MISSING[need] == message
    for given in ({}, {need: None}, {need: []}):
        with pytest.raises(UserError, match=f"^{message}$"):
            load_needs({need}, given, data.fingerprint)


def test_stage_loads_exactly_what_a_scorer_needs(data, tmp_path):
    teacher, proxies = make_model(7), [make_model(1), make_model(2)]
    given = {"teacher": save(tmp_path / "teacher.pt", teacher, data.fingerprint),
             "dynamics": write_dynamics(tmp_path / "dynamics.parquet", data.fingerprint),
             "proxies": [save(tmp_path / f"proxy{r}.pt", m, data.fingerprint) for r, m in enumerate(proxies)]}
    given["teacher_logits"] = tmp_path / "logits.pt"
    save_train_logits(given["teacher_logits"], predict(teacher, data.train, 4, CPU), {"dataset_fingerprint": data.fingerprint})
    features = predict_with_features(teacher, data.train, 4, CPU)[1]
    given["embeddings"] = tmp_path / "embeddings.pt"
    save_embeddings(given["embeddings"], features, {"dataset_fingerprint": data.fingerprint})
    assert load_needs(set(), given, data.fingerprint) == {}
    for name in SCORERS.names():
        assert set(load_needs(build_scorer(name).needs, given, data.fingerprint)) == build_scorer(name).needs
    loaded = load_needs({"teacher", "teacher_logits", "dynamics", "proxies"}, given, data.fingerprint)
    x = inputs(data.train)
    with torch.no_grad():
        assert torch.allclose(loaded["teacher"].eval()(x), teacher(x), atol=1e-6)
        for mine, theirs in zip(loaded["proxies"], proxies, strict=True):
            assert torch.allclose(mine.eval()(x), theirs(x), atol=1e-6)
    np.testing.assert_allclose(loaded["teacher_logits"].numpy(), teacher(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(loaded["dynamics"], correctness_frame())
    assert torch.equal(load_needs({"embeddings"}, given, data.fingerprint)["embeddings"], features.half())
    # through the loaded inputs, the scorers give what they give on the objects
    ctx = context(data, **loaded)
    assert build_scorer("forgetting").score(ctx).tolist() == EXPECTED_MAX
    np.testing.assert_allclose(build_scorer("teacher_ce").score(ctx),
                               build_scorer("teacher_ce").score(context(data, teacher_logits=predict(teacher, data.train, 4, CPU))))
    np.testing.assert_allclose(build_scorer("el2n").score(ctx), build_scorer("el2n").score(context(data, proxies=proxies)),
                               rtol=1e-6)


def test_stage_refuses_inputs_made_from_other_data(data, tmp_path):
    dynamics = write_dynamics(tmp_path / "dyn.parquet", "0000000000000000")
    with pytest.raises(UserError, match="0000000000000000"):
        load_needs({"dynamics"}, {"dynamics": dynamics}, data.fingerprint)
    logits = tmp_path / "teacher.pt"
    save_train_logits(logits, predict(make_model(), data.train, 4, CPU), {"dataset_fingerprint": data.fingerprint})
    with pytest.raises(UserError, match=data.fingerprint):
        load_needs({"teacher_logits"}, {"teacher_logits": logits}, replace(data, name="other").fingerprint)
    proxy = save(tmp_path / "proxy.pt", make_model(), "ffff")
    with pytest.raises(UserError, match="ffff"):
        load_needs({"proxies"}, {"proxies": [proxy]}, data.fingerprint)
    with pytest.raises(UserError, match="ffff"):
        load_needs({"teacher"}, {"teacher": proxy}, data.fingerprint)


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
    scorer = _FitsBelow(8)
    scores, batch = score_at_largest_batch(scorer, replace(context(data), batch_size=50))
    assert scorer.tried == [50, 25, 12, 6] and batch == 6
    np.testing.assert_array_equal(scores, build_scorer("random").score(context(data)))
    never = _FitsBelow(0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        score_at_largest_batch(never, replace(context(data), batch_size=4))
    assert never.tried == [4, 2, 1]


def test_teacher_output_scorers_on_one_seeded_augmented_view(data):
    """view: augmented scores the teacher's logits on one seeded random crop and flip of every
    sample (MDSLR's one pass over its training loader), computed here by hand."""
    teacher = make_model()
    clean, augmented = build_scorer("teacher_ce"), build_scorer("teacher_ce", {"view": "augmented", "view_seed": 10})
    assert clean.needs == {"teacher_logits"} and augmented.needs == {"teacher"}
    views = random_views(len(data.train), data.augment, torch_generator(10, "scoring_view"))
    images = apply_views(data.train.images, data.augment, views).float().div(255).sub(MEAN[0]).div(STD[0])
    with torch.no_grad():
        expected = F.cross_entropy(teacher(images).double(), data.train.labels, reduction="none").numpy()
    np.testing.assert_allclose(augmented.score(context(data, teacher=teacher)), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, clean.score(context(data, teacher_logits=predict(teacher, data.train, 4, CPU))))
    for name in ("entropy", "margin", "least_confidence"):
        assert build_scorer(name, {"view": "augmented"}).needs == {"teacher"}
    with pytest.raises(UserError, match="view must be 'clean' or 'augmented', got 'flipped'"):
        build_scorer("teacher_ce", {"view": "flipped"})
