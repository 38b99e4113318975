"""CIFAR MobileNetV2 (Sandler et al. 2018, inverted residuals with linear bottlenecks) as used by
RepDistiller / CRD (Tian et al. 2020) for distillation: their ``mobile_half``, i.e. width multiplier
0.5, expansion 6, and strides reduced so 32x32 inputs are downsampled 16x instead of 32x."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from pipeline.models import MODELS


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                  groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class InvertedResidual(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_planes * expansion
        self.use_residual = stride == 1 and in_planes == planes
        # RepDistiller keeps the expansion conv even when expansion == 1; kept for equal counts.
        self.conv = nn.Sequential(
            *_conv_bn_relu(in_planes, hidden, 1),
            *_conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            # Linear bottleneck: no ReLU after the projection.
            nn.Conv2d(hidden, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width_mult: float = 0.5,
                 expansion: int = 6):
        super().__init__()
        # (expansion, channels, blocks, stride); strides of stages 2 and 4 are 1 here instead of
        # ImageNet's 2, which together with the stride-2 stem gives a 2x2 map for 32x32 inputs.
        setting = [
            (1, 16, 1, 1),
            (expansion, 24, 2, 1),
            (expansion, 32, 3, 2),
            (expansion, 64, 4, 2),
            (expansion, 96, 3, 1),
            (expansion, 160, 3, 2),
            (expansion, 320, 1, 1),
        ]
        in_planes = int(32 * width_mult)
        layers: list[nn.Module] = _conv_bn_relu(in_channels, in_planes, 3, stride=2)
        for t, c, n, s in setting:
            planes = int(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(in_planes, planes, s if i == 0 else 1, t))
                in_planes = planes
        # The last conv is not narrowed for multipliers <= 1, as in the original paper.
        last_channels = max(1280, int(1280 * width_mult))
        layers += _conv_bn_relu(in_planes, last_channels, 1)
        self.features = nn.Sequential(*layers)
        # Adaptive pooling (RepDistiller: fixed AvgPool2d for 32x32) so 28x28 inputs work too.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@dataclass(frozen=True)
class Params:
    width_mult: float = 0.5  # channel multiplier (RepDistiller's mobile_half: 0.5)
    expansion: int = 6  # expansion factor of the inverted residual blocks


@MODELS.register("mobilenetv2", Params)
def mobilenetv2(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return MobileNetV2(num_classes, in_channels, params.width_mult, params.expansion)
