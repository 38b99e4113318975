"""Wide ResNets (Zagoruyko & Komodakis 2016, "Wide Residual Networks") with pre-activation blocks,
as used by RepDistiller / CRD (Tian et al. 2020): WRN-d-k has (d-4)/6 blocks per stage and stage
widths 16k, 32k, 64k."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from pipeline.models import MODELS


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, drop_rate: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(drop_rate)
        self.shortcut = (
            None if in_planes == planes and stride == 1
            else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu(self.bn1(x))
        # As in the reference implementation: an identity shortcut carries the raw input, a
        # projection shortcut takes the pre-activated one.
        residual = x if self.shortcut is None else self.shortcut(act)
        out = self.conv1(act)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + residual


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor``; ``drop_rate`` is dropout between a block's two convs."""

    def __init__(self, depth: int, widen_factor: int, num_classes: int, in_channels: int = 3,
                 drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        stages = []
        in_planes = widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(in_planes, planes, stride if i == 0 else 1, drop_rate))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        # Pre-activation blocks end without BN/ReLU, so the network applies them once at the end.
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn(x))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


@dataclass(frozen=True)
class Params:
    drop_rate: float = 0.0  # dropout between a block's two convolutions


@MODELS.register("wrn_16_2", Params)
def wrn_16_2(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return WideResNet(16, 2, num_classes, in_channels, params.drop_rate)


@MODELS.register("wrn_40_2", Params)
def wrn_40_2(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return WideResNet(40, 2, num_classes, in_channels, params.drop_rate)
