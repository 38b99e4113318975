"""CIFAR ShuffleNet (Zhang et al. 2018, "ShuffleNet: An Extremely Efficient Convolutional Neural
Network for Mobile Devices": grouped 1x1 convolutions with a channel shuffle) as used by RepDistiller
/ CRD (Tian et al. 2020) as a student, their ``ShuffleV1``: 3 groups, stage widths 240, 480, 960 with
4, 8, 4 units, a 1x1 stem without downsampling, so 32x32 inputs end on 4x4 maps."""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.models import MODELS
from pipeline.params import NoParams


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channels (g, c/g) -> (c/g, g): each group's outputs spread over all groups of the next conv."""
    return x.unflatten(1, (groups, x.shape[1] // groups)).transpose(1, 2).flatten(1, 2)


class ShuffleUnit(nn.Module):
    """Grouped 1x1 conv, shuffle, 3x3 depthwise conv, grouped 1x1 conv. A stride-2 unit concatenates
    its output with the 3x3 average-pooled input (so it adds ``out_planes`` channels to the input's);
    a stride-1 unit adds the input to it."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int, first_groups: int):
        super().__init__()
        mid_planes = out_planes // 4
        self.stride = stride
        self.first_groups = first_groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.conv2 = nn.Conv2d(mid_planes, mid_planes, 3, stride, 1, groups=mid_planes, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(self.relu(self.bn1(self.conv1(x))), self.first_groups)
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        return self.relu(torch.cat([out, res], 1) if self.stride == 2 else out + res)


class ShuffleNetV1(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, groups: int = 3,
                 widths: tuple[int, ...] = (240, 480, 960), units: tuple[int, ...] = (4, 8, 4)):
        super().__init__()
        stem = 24
        self.conv1 = nn.Conv2d(in_channels, stem, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        in_planes = stem
        stages = []
        for width, n in zip(widths, units):
            # The first unit of a stage downsamples and concatenates its input, so it computes only
            # the missing channels. The unit reading the stem has an ungrouped first conv (as in
            # RepDistiller; the paper: the stem is too narrow to group).
            blocks = [ShuffleUnit(in_planes, width - in_planes, 2, groups, 1 if in_planes == stem else groups)]
            blocks += [ShuffleUnit(width, width, 1, groups, groups) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = width
        self.layer1, self.layer2, self.layer3 = stages
        # Adaptive pooling (RepDistiller: a fixed 4x4 average pool for 32x32) so 28x28 inputs work too.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


@MODELS.register("shufflenetv1")
def shufflenetv1(num_classes: int, in_channels: int, params: NoParams) -> nn.Module:
    return ShuffleNetV1(num_classes, in_channels)
