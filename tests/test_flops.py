"""FLOP counts by hand, and the published count of a CIFAR ResNet."""
import torch.nn as nn

from pipeline.flops import count_forward_flops, model_flops


def test_conv_and_linear_flops_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4), nn.Flatten(), nn.Linear(64, 3))
    # conv 1->4, 3x3 on 8x8: 4*6*6 outputs x 9 MACs; depthwise 4->4: 4*4*4 outputs x 9 MACs; linear 64 x 3
    assert count_forward_flops(model, channels=1, image_size=8) == 2 * (144 * 9 + 64 * 9 + 64 * 3)


def test_resnet20_is_41_million_multiply_adds():
    # He et al. (2016) / the RepDistiller zoo: resnet20 on CIFAR is about 41M MACs
    assert 2 * 40e6 < model_flops("resnet20", {}, 10, 3, 32) < 2 * 42e6
