"""FLOP counts by hand, and the published count of a CIFAR ResNet."""
import pytest
import torch.nn as nn

from pipeline.flops import count_forward_flops, model_flops


def test_conv_and_linear_flops_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4), nn.Flatten(), nn.Linear(64, 3))
    # conv 1->4, 3x3 on 8x8: 4*6*6 outputs x 9 MACs; depthwise 4->4: 4*4*4 outputs x 9 MACs; linear 64 x 3
    assert count_forward_flops(model, channels=1, image_size=8) == 2 * (144 * 9 + 64 * 9 + 64 * 3)


def test_resnet20_is_41_million_multiply_adds():
    # He et al. (2016) / the RepDistiller zoo: resnet20 on CIFAR is about 41M MACs
    assert 2 * 40e6 < model_flops("resnet20", {}, 10, 3, 32) < 2 * 42e6


# count_forward_flops on the reference definitions built with 100 classes, 32x32 inputs: RepDistiller
# (HobbitLong/RepDistiller @ b84f547) models/vgg.py vgg11_bn, vgg19_bn, models/ShuffleNetv1.py ShuffleV1,
# models/ShuffleNetv2.py ShuffleV2; with pool3, prune-then-distill (ososos888/prune-then-distill @ 1b5f3d3)
# models/cifar_vgg.py vgg11_bn, vgg19_bn.
@pytest.mark.parametrize("name, args, reference", [
    ("vgg11", {}, 418_877_440),
    ("vgg19", {}, 1_022_857_216),
    ("vgg11", {"pool3": True}, 305_631_232),
    ("vgg19", {"pool3": True}, 796_364_800),
    ("shufflenetv1", {}, 77_382_912),
    ("shufflenetv2", {}, 89_008_896),
])
def test_cifar100_models_match_the_reference_definitions(name, args, reference):
    assert model_flops(name, args, 100, 3, 32) == reference


def test_vgg_pool3_by_hand():
    # Only block4 (two 512 -> 512 3x3 convs in vgg11) changes: 4x4 maps -> 2x2, 12 fewer outputs per channel.
    saved = 2 * (512 * 9) * (2 * 512 * (16 - 4))
    assert model_flops("vgg11", {}, 100, 3, 32) - model_flops("vgg11", {"pool3": True}, 100, 3, 32) == saved
