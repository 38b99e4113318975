"""Running a model over a split: logits and penultimate features in canonical order, and accuracy
on chosen samples."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny import CPU, inputs, make_model

from pipeline.inference import evaluate, for_inference, per_class_accuracy, predict, predict_with_features
from pipeline.models import build_model


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
    accuracy, loss, predictions = evaluate(model, data.train, 2, CPU, some)
    assert torch.equal(predictions, logits[some].argmax(1))
    assert accuracy == pytest.approx(float((logits[some].argmax(1) == data.train.labels[some]).float().mean()))
    assert loss == pytest.approx(float(F.cross_entropy(logits[some], data.train.labels[some])), rel=1e-5)


class ConstantModel(torch.nn.Module):
    """Predicts class 1 for every image."""

    def forward(self, x):
        return torch.tensor([0.0, 1.0, 0.0, 0.0]).expand(len(x), 4)


def test_per_class_accuracy(data):
    """The tiny test split has labels 2, 1, 0, 1 (and no class 3): always predicting 1 is right on
    both samples of class 1 and wrong on the others; a class without samples has no accuracy."""
    table = per_class_accuracy(evaluate(ConstantModel(), data.test, 3, CPU).predictions, data.test.labels, 4)
    assert table["label"].tolist() == [0, 1, 2, 3] and table["samples"].tolist() == [1, 2, 1, 0]
    assert table["accuracy"].iloc[:3].tolist() == [0.0, 1.0, 0.0] and np.isnan(table["accuracy"].iloc[3])


def batchnorms(model):
    return sum(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules())


def test_for_inference_folds_each_batchnorm_into_its_convolution_and_leaves_the_model_as_it_was(data):
    model = make_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    folded = for_inference(model, CPU)
    assert batchnorms(model) == 3 and batchnorms(folded) == 0
    # the folded convolution: weight * gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps)
    conv, bn = model.features[0], model.features[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded.get_submodule("features.0").weight, conv.weight * scale.view(-1, 1, 1, 1))
    torch.testing.assert_close(folded.get_submodule("features.0").bias, bn.bias - bn.running_mean * scale)
    x = inputs(data.train)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-6)
    for name, value in model.state_dict().items():  # the model itself is unchanged and can train on
        assert torch.equal(value, before[name]), name
    assert not model.training and all(p.requires_grad and not p.is_inference() for p in model.parameters())
    model.train()(x).sum().backward()


def test_a_model_the_tracer_cannot_follow_runs_unfolded(data):
    model = ConstantModel()  # len() of its input stops torch.fx
    assert for_inference(model, CPU) is model
    vgg = build_model("vgg8", 3, 1)  # branches on the feature map's size
    assert for_inference(vgg, CPU) is vgg and batchnorms(vgg) > 0
