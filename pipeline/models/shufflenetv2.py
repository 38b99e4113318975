"""CIFAR ShuffleNetV2 (Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design": channel split, a 1x1-depthwise-1x1 branch on one half, concatenation and a
channel shuffle) as used by RepDistiller / CRD (Tian et al. 2020) as a student, their ``ShuffleV2``
(net size 1: stage widths 116, 232, 464 with 3, 7, 3 units after a downsampling unit, a 1024-wide 1x1
conv), with a 1x1 stem without downsampling, so 32x32 inputs end on 4x4 maps."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.models import MODELS
from pipeline.models.shufflenetv1 import channel_shuffle

# RepDistiller's net sizes: (stage widths, last conv width), units per stage.
_SIZES = {
    0.2: ((40, 80, 160, 512), (3, 3, 3)),
    0.3: ((40, 80, 160, 512), (3, 7, 3)),
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1.0: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2.0: ((224, 488, 976, 2048), (3, 7, 3)),
}


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
             relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _branch(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """1x1 conv, 3x3 depthwise conv (no ReLU after it), 1x1 conv."""
    return nn.Sequential(
        _conv_bn(in_channels, out_channels, 1),
        _conv_bn(out_channels, out_channels, 3, stride, groups=out_channels, relu=False),
        _conv_bn(out_channels, out_channels, 1),
    )


class BasicUnit(nn.Module):
    """The first half of the channels passes through; the branch transforms the second half."""

    def __init__(self, channels: int):
        super().__init__()
        self.half = channels // 2
        self.branch = _branch(channels - self.half, channels - self.half, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([x[:, :self.half], self.branch(x[:, self.half:])], 1)
        return channel_shuffle(out, 2)


class DownUnit(nn.Module):
    """Both branches read the whole input at stride 2 and give half of the output channels each."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.left = nn.Sequential(
            _conv_bn(in_channels, in_channels, 3, 2, groups=in_channels, relu=False),
            _conv_bn(in_channels, mid, 1),
        )
        self.right = _branch(in_channels, mid, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, net_size: float = 1.0):
        super().__init__()
        (*widths, last), units = _SIZES[net_size]
        self.conv1 = _conv_bn(in_channels, 24, 1)
        in_planes = 24
        stages = []
        for width, n in zip(widths, units):
            stages.append(nn.Sequential(DownUnit(in_planes, width), *(BasicUnit(width) for _ in range(n))))
            in_planes = width
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = _conv_bn(in_planes, last, 1)
        # Adaptive pooling (RepDistiller: a fixed 4x4 average pool for 32x32) so 28x28 inputs work too.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.classifier(torch.flatten(self.avgpool(self.conv2(x)), 1))


@dataclass(frozen=True)
class Params:
    net_size: float = 1.0  # RepDistiller's net size: one of 0.2, 0.3, 0.5, 1, 1.5, 2 (their ShuffleV2: 1)

    def __post_init__(self):
        if isinstance(self.net_size, bool) or not isinstance(self.net_size, (int, float)) \
                or self.net_size not in _SIZES:
            raise UserError(f"shufflenetv2 net_size must be one of {', '.join(f'{s:g}' for s in _SIZES)}, "
                            f"got {self.net_size!r}")


@MODELS.register("shufflenetv2", Params)
def shufflenetv2(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return ShuffleNetV2(num_classes, in_channels, params.net_size)
