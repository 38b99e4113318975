"""Model zoo: every registered model builds and maps images to logits through a final
``classifier`` Linear; parameter counts match the published ones; unknown names are rejected."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from pipeline.models import MODELS, build_model

TORCHVISION = {"resnet18", "resnet34", "resnet50"}
ALL = MODELS.names()


def _check_logits(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Logits have the right shape and are exactly the classifier's output on
    (batch, in_features) penultimate features."""
    seen = {}

    def hook(module, inputs, output):
        seen["in"], seen["out"] = inputs[0], output

    handle = model.classifier.register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    assert logits.shape == (x.shape[0], num_classes)
    assert seen["in"].shape == (x.shape[0], model.classifier.in_features)
    assert seen["out"] is logits


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_builds_and_forwards_32(name: str, in_channels: int) -> None:
    model = build_model(name, num_classes=10, in_channels=in_channels).eval()
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.out_features == 10
    _check_logits(model, torch.randn(2, in_channels, 32, 32), 10)


@pytest.mark.parametrize("name", sorted(set(ALL) - TORCHVISION))
def test_forwards_28(name: str) -> None:
    model = build_model(name, num_classes=10, in_channels=1).eval()
    _check_logits(model, torch.randn(2, 1, 28, 28), 10)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Published counts with 100 classes (Tian et al. 2020, CRD, Table 1 / RepDistiller).
@pytest.mark.parametrize(
    "name, published",
    [("resnet8x4", 1.23e6), ("resnet32x4", 7.43e6), ("wrn_40_2", 2.26e6), ("resnet56", 0.86e6)],
)
def test_param_counts_match_published(name: str, published: float) -> None:
    count = _num_params(build_model(name, num_classes=100, in_channels=3))
    assert abs(count - published) <= 0.005 * published, count


def test_torchvision_resnet18_param_count_exact() -> None:
    assert _num_params(build_model("resnet18", num_classes=1000, in_channels=3)) == 11_689_512


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError) as err:
        build_model("resnet9000", num_classes=10, in_channels=3)
    message = str(err.value)
    assert "resnet9000" in message
    for name in ALL:
        assert name in message
