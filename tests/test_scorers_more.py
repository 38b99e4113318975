"""GraNd, AUM and the teacher-uncertainty scorers, and the feature hook, against hand-derived
values and independent autograd on tiny fixtures."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from pipeline.checkpoints import save_model, save_train_logits
from pipeline.errors import UserError
from pipeline.inference import predict, predict_with_features
from pipeline.io import write_table
from pipeline.models import build_model
from pipeline.scorers import build_scorer
from pipeline.scorers.aum import aum
from pipeline.scorers.entropy import entropy_score
from pipeline.scorers.grand import full_grad_norm, last_layer_grad_norm
from pipeline.scorers.least_confidence import least_confidence_score
from pipeline.scorers.margin import margin_score
from pipeline.seeding import seeded_init
from tiny import CPU, MEAN, STD, TRAIN_LABELS, context

LN2, LN3 = math.log(2.0), math.log(3.0)


def make_model(seed=7):
    with seeded_init(seed, "test-model"):
        model = build_model("cnn", 3, 1, width=2)
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():  # non-trivial running statistics, so eval vs train mode matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
    return model.eval()


def save(path, model, fingerprint):
    save_model(path, model, {"model": "cnn", "model_args": {"width": 2}, "num_classes": 3, "in_channels": 1,
                             "dataset_fingerprint": fingerprint, "test_acc": 0.5})
    return path


def inputs(split):
    """The normalised un-augmented images, computed independently of ``split.batches``."""
    return (split.images.float() / 255 - MEAN[0]) / STD[0]


def autograd_norms(model, split, parameters):
    """|| grad CE ||_2 w.r.t. ``parameters``, one sample at a time with plain autograd."""
    model.eval()
    x, norms = inputs(split), []
    for i in range(len(split)):
        loss = F.cross_entropy(model(x[i : i + 1]), split.labels[i : i + 1])
        grads = torch.autograd.grad(loss, parameters)
        norms.append(math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads)))
    return np.array(norms)


# ------------------------------------------------------------------ features hook


def test_predict_with_features(data):
    model = make_model()
    logits, features = predict_with_features(model, data.train, 4, CPU)  # batches of 4 and 2
    assert logits.dtype == features.dtype == torch.float32
    assert features.shape == (6, 8)  # 4 * width
    with torch.no_grad():
        h = model.features(inputs(data.train))
        np.testing.assert_allclose(features.numpy(), h.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(logits.numpy(), model.classifier(h).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(logits.numpy(), predict(model, data.train, 4, CPU).numpy())
    assert not model.classifier._forward_pre_hooks  # the hook is gone


def test_predict_with_features_removes_hook_on_error(data):
    model = make_model()
    model.classifier.register_forward_hook(lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        predict_with_features(model, data.train, 4, CPU)
    assert not model.classifier._forward_pre_hooks


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
def test_grand_scorer_mean_over_proxies(data, tmp_path, mode):
    models = [make_model(1), make_model(2)]
    paths = [save(tmp_path / f"proxy{r}.pt", m, data.fingerprint) for r, m in enumerate(models)]
    scores = build_scorer("grand", {"mode": mode, "chunk_size": 4}).score(context(data, proxy_paths=paths))
    assert scores.shape == (6,) and scores.dtype == np.float64
    if mode == "full":
        per_proxy = [autograd_norms(m, data.train, list(m.parameters())) for m in models]
    else:
        per_proxy = [autograd_norms(m, data.train, [m.classifier.weight, m.classifier.bias]) for m in models]
    assert not np.allclose(per_proxy[0], per_proxy[1])
    np.testing.assert_allclose(scores, (per_proxy[0] + per_proxy[1]) / 2, rtol=1e-5, atol=1e-5)


def test_grand_needs_proxies_and_rejects_other_data(data, tmp_path):
    with pytest.raises(UserError, match="proxy"):
        build_scorer("grand").score(context(data))
    path = save(tmp_path / "proxy.pt", make_model(), "ffff")
    with pytest.raises(UserError, match="ffff"):
        build_scorer("grand").score(context(data, proxy_paths=[path]))


def test_grand_bad_params():
    with pytest.raises(UserError, match=r"'sometimes'") as info:
        build_scorer("grand", {"mode": "sometimes"})
    assert "last_layer, full" in str(info.value)
    with pytest.raises(UserError, match="chunk_size"):
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


def write_margins(path, fingerprint, margins=MARGINS, drop=()):
    n, epochs = margins.shape
    frame = pd.DataFrame(
        [(i, e + 1, bool(margins[i, e] > 0), float(margins[i, e])) for e in range(epochs) for i in range(n)
         if (i, e + 1) not in drop],
        columns=["sample_index", "epoch", "correct", "margin"],
    )
    frame["epoch"] = frame["epoch"].astype("int32")
    frame["margin"] = frame["margin"].astype("float32")
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows in any order
    write_table(frame, path, {"stage": "teacher-dynamics", "dataset": "tiny", "dataset_fingerprint": fingerprint})
    return path


def test_aum_hand_values(data, tmp_path):
    assert aum(MARGINS).tolist() == EXPECTED_AUM
    scores = build_scorer("aum").score(context(data, dynamics_path=write_margins(tmp_path / "d.parquet", data.fingerprint)))
    assert scores.dtype == np.float64
    assert scores.tolist() == EXPECTED_AUM


def test_aum_incomplete_dynamics(data, tmp_path):
    path = write_margins(tmp_path / "a.parquet", data.fingerprint, drop={(4, 2)})  # sample 4, epoch 2 missing
    with pytest.raises(UserError, match=r"incomplete for 1 samples: 4$"):
        build_scorer("aum").score(context(data, dynamics_path=path))
    nan = MARGINS.copy()
    nan[2, 0] = np.nan
    path = write_margins(tmp_path / "b.parquet", data.fingerprint, nan, drop={(5, 1), (5, 2)})  # 5: no rows
    with pytest.raises(UserError, match=r"incomplete for 2 samples: 2, 5$"):
        build_scorer("aum").score(context(data, dynamics_path=path))
    path = write_margins(tmp_path / "c.parquet", data.fingerprint, drop={(i, 1) for i in range(6)})  # epoch 1
    with pytest.raises(UserError, match="incomplete for 6 samples"):
        build_scorer("aum").score(context(data, dynamics_path=path))
    with pytest.raises(UserError, match="dynamics"):
        build_scorer("aum").score(context(data))


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
def test_uncertainty_scorers(data, tmp_path, name, fn):
    model = make_model()
    path = tmp_path / "train_logits.pt"
    save_train_logits(path, model, data, 4, CPU, {})
    scores = build_scorer(name).score(context(data, teacher_logits_path=path))
    with torch.no_grad():
        expected = fn(model.eval()(inputs(data.train))).numpy()
    assert scores.shape == (6,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="teacher"):
        build_scorer(name).score(context(data))


# ------------------------------------------------------------------ registry


def test_new_scorers_needs():
    assert build_scorer("grand").needs == {"proxies"}
    assert build_scorer("grand", {"mode": "full"}).needs == {"proxies"}
    assert build_scorer("aum").needs == {"dynamics"}
    for name in ("entropy", "margin", "least_confidence"):
        assert build_scorer(name).needs == {"teacher_logits"}
