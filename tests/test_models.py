"""Model zoo: every registered model builds and maps images to logits through a final
``classifier`` Linear; parameter counts match the published ones; unknown names are rejected; each
model's arguments (config ``model_args``) are its registered Params, checked before it builds."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.models import MODELS, build_model
from pipeline.models import cnn, mobilenetv2, resnet_cifar, shufflenetv2, torchvision_resnet, vgg, wrn
from pipeline.params import NoParams

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


# Exact counts with 100 classes, 3 channels: the reference definitions built and counted
# (sum of p.numel() over parameters). RepDistiller (HobbitLong/RepDistiller @ b84f547) models/vgg.py
# vgg8_bn, vgg11_bn, vgg13_bn, vgg19_bn, models/ShuffleNetv1.py ShuffleV1, models/ShuffleNetv2.py ShuffleV2
# (ShuffleNetV2(net_size=0.5) for 0.5); prune-then-distill (ososos888/prune-then-distill @ 1b5f3d3)
# models/cifar_vgg.py vgg11_bn, vgg19_bn give the same 9,277,284 and 20,086,692 (same layers).
# CRD (Tian et al. 2020) rounds them to 0.95M (ShuffleNetV1) and 1.36M (ShuffleNetV2).
@pytest.mark.parametrize("name, args, reference", [
    ("vgg8", {}, 3_965_028),
    ("vgg11", {}, 9_277_284),
    ("vgg13", {}, 9_462_180),
    ("vgg19", {}, 20_086_692),
    ("vgg19", {"pool3": True}, 20_086_692),
    ("shufflenetv1", {}, 949_258),
    ("shufflenetv2", {}, 1_355_528),
    ("shufflenetv2", {"net_size": 0.5}, 443_716),
])
def test_param_counts_match_the_reference_exactly(name: str, args: dict, reference: int) -> None:
    assert _num_params(build_model(name, num_classes=100, in_channels=3, **args)) == reference


@pytest.mark.parametrize("name", ["vgg11", "vgg19", "shufflenetv1", "shufflenetv2"])
def test_cifar100_forward_and_classifier_is_the_last_linear(name: str) -> None:
    model = build_model(name, num_classes=100, in_channels=3).eval()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[-1] is model.classifier
    x = torch.randn(2, 3, 32, 32)
    _check_logits(model, x, 100)
    with torch.no_grad():
        logits = model(x)
        # channels_last (how the pipeline trains and infers) computes the same logits
        model.to(memory_format=torch.channels_last)
        assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), logits, atol=1e-5)


def test_vgg_pool3_pools_before_the_last_stage() -> None:
    # prune-then-distill's VGG max-pools after block3 for 32x32 inputs too: block4 runs on 2x2 maps
    # instead of RepDistiller's 4x4, with the same parameters.
    sizes = {}
    for pool3 in (False, True):
        model = build_model("vgg19", num_classes=100, in_channels=3, pool3=pool3).eval()
        handle = model.block4.register_forward_hook(lambda m, i, o, pool3=pool3: sizes.__setitem__(pool3, o.shape))
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
        handle.remove()
    assert sizes == {False: (2, 512, 4, 4), True: (2, 512, 2, 2)}


def test_shufflenetv2_net_size_is_checked() -> None:
    with pytest.raises(UserError, match=r"^shufflenetv2 net_size must be one of 0.2, 0.3, 0.5, 1, 1.5, 2, got 0.75$"):
        build_model("shufflenetv2", num_classes=10, in_channels=3, net_size=0.75)
    assert build_model("shufflenetv2", num_classes=10, in_channels=3, net_size=2).conv2[0].out_channels == 2048


def test_torchvision_resnet18_param_count_exact() -> None:
    assert _num_params(build_model("resnet18", num_classes=1000, in_channels=3)) == 11_689_512


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError) as err:
        build_model("resnet9000", num_classes=10, in_channels=3)
    message = str(err.value)
    assert "resnet9000" in message
    for name in ALL:
        assert name in message


def test_model_args_are_the_registered_params():
    assert MODELS.params("cnn", {"width": 8}, "student.model_args") == cnn.Params(width=8, widths=None)
    assert MODELS.params("resnet8x4", {}, "x") == resnet_cifar.Params(widths=None, block_widths=None)
    assert MODELS.params("vgg13", {"widths": [4] * 10}) == vgg.Params(widths=[4] * 10)
    assert MODELS.params("vgg19", {"pool3": True}) == vgg.Params(widths=None, pool3=True)
    assert MODELS.params("shufflenetv1", {}) == NoParams()
    assert MODELS.params("shufflenetv2", {}) == shufflenetv2.Params(net_size=1.0)
    assert MODELS.params("wrn_16_2", {"drop_rate": 0.3}) == wrn.Params(drop_rate=0.3)
    assert MODELS.params("mobilenetv2", {}) == mobilenetv2.Params(width_mult=0.5, expansion=6)
    assert MODELS.params("resnet50", {"zero_init_residual": True}) == torchvision_resnet.Params(True, 1, 64)
    assert {MODELS.params_type(n) for n in ALL} == {cnn.Params, resnet_cifar.Params, vgg.Params, wrn.Params,
                                                    mobilenetv2.Params, torchvision_resnet.Params,
                                                    shufflenetv2.Params, NoParams}


def test_model_args_reach_the_model():
    model = build_model("cnn", num_classes=10, in_channels=1, width=3)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [3, 6, 12]
    model = build_model("cnn", num_classes=10, in_channels=1, widths=[2, 5, 7])
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [2, 5, 7]
    model = build_model("resnet20", num_classes=10, in_channels=3, widths=[8, 8, 16, 32])
    assert (model.conv1.out_channels, model.classifier.in_features) == (8, 32)
    assert build_model("wrn_16_2", num_classes=10, in_channels=3, drop_rate=0.25).block1[0].dropout.p == 0.25
    assert build_model("mobilenetv2", 10, 3, width_mult=1.0).features[0].out_channels == 32  # 32 * 1.0
    assert build_model("resnet18", 10, 3, zero_init_residual=True).backbone.layer1[0].bn2.weight.abs().sum() == 0


def test_unknown_model_arg_is_one_line():
    with pytest.raises(UserError) as err:
        build_model("cnn", num_classes=10, in_channels=3, depth=3)
    assert str(err.value) == "unknown parameter 'depth' for model 'cnn'; allowed: width, widths"
    with pytest.raises(UserError) as err:
        MODELS.params("resnet20", {"width": 8}, "teachers.r20.model_args")
    assert str(err.value) == ("config error in teachers.r20.model_args: unknown parameter 'width' for model "
                              "'resnet20'; allowed: widths, block_widths")
    with pytest.raises(UserError) as err:
        build_model("shufflenetv1", num_classes=10, in_channels=3, groups=3)
    assert str(err.value) == "unknown parameter 'groups' for model 'shufflenetv1'; allowed: none"
