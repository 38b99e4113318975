"""CIFAR ResNets of He et al. 2016 ("Deep Residual Learning", Sec. 4.2: 6n+2 layers, three stages)
as used by RepDistiller / CRD (Tian et al. 2020), including their wider ``x4`` variants and their
1x1 conv + BN projection shortcut whenever a block changes shape."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from pipeline.models import MODELS


class BasicBlock(nn.Module):
    """``width`` is the inner width (conv1's output), ``planes`` by default."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, width: int | None = None):
        super().__init__()
        width = planes if width is None else width
        self.conv1 = nn.Conv2d(in_planes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """``widths`` = (stem, stage1, stage2, stage3), as RepDistiller's ``num_filters``: the widths of
    the residual streams. ``block_widths``, if given, are the inner widths (conv1's output) of all
    blocks in forward order; by default each block's inner width is its stream's."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int] | list[int], num_classes: int,
                 in_channels: int = 3, block_widths: list[int] | None = None):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"CIFAR ResNet widths must be 4 positive ints, got {widths}")
        if block_widths is not None and (len(block_widths) != 3 * n or min(block_widths) < 1):
            raise ValueError(f"resnet{depth} block_widths must be {3 * n} positive ints, got {block_widths}")
        inner = iter(block_widths) if block_widths is not None else None
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        in_planes = widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for i in range(n):
                width = None if inner is None else next(inner)
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, width))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        # Adaptive rather than RepDistiller's AvgPool2d(8) so 28x28 inputs work too.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


_SMALL = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


@dataclass(frozen=True)
class Params:
    # the residual streams' widths (stem, stage 1, 2, 3), RepDistiller's num_filters; None: the
    # model's own ((16, 16, 32, 64), or (32, 64, 128, 256) for the x4 models)
    widths: list[int] | None = None
    block_widths: list[int] | None = None  # every block's inner width in forward order (a shaped student)


def _resnet(depth: int, default_widths: tuple[int, int, int, int], num_classes: int, in_channels: int,
            params: Params) -> nn.Module:
    widths = default_widths if params.widths is None else params.widths
    return CifarResNet(depth, widths, num_classes, in_channels, params.block_widths)


# Each variant's depth and default stream widths.
VARIANTS = {"resnet20": (20, _SMALL), "resnet32": (32, _SMALL), "resnet56": (56, _SMALL), "resnet110": (110, _SMALL),
            "resnet8x4": (8, _WIDE), "resnet32x4": (32, _WIDE)}


def _builder(depth: int, default_widths: tuple[int, int, int, int]):
    def build(num_classes: int, in_channels: int, params: Params) -> nn.Module:
        return _resnet(depth, default_widths, num_classes, in_channels, params)

    return build


for _name, (_depth, _widths) in VARIANTS.items():
    MODELS.register(_name, Params)(_builder(_depth, _widths))
