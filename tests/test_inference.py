"""Running a model over a split: logits and penultimate features in canonical order, and accuracy
on chosen samples."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny import CPU, inputs, make_model

from pipeline.inference import evaluate, predict, predict_with_features


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


def test_evaluate_on_chosen_samples(data):
    model = make_model()
    with torch.no_grad():
        logits = model(inputs(data.train))
    some = torch.tensor([1, 4, 5])
    accuracy, loss = evaluate(model, data.train, 2, CPU, some)
    assert accuracy == pytest.approx(float((logits[some].argmax(1) == data.train.labels[some]).float().mean()))
    assert loss == pytest.approx(float(F.cross_entropy(logits[some], data.train.labels[some])), rel=1e-5)
