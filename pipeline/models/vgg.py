"""CIFAR VGG with batch norm (Simonyan & Zisserman 2015, BN variant) as used by RepDistiller / CRD
(Tian et al. 2020): five conv stages, max pooling after the first three (and the fourth for
64x64 inputs), global average pooling and a single linear classifier.

Prune-then-distill's CIFAR VGG11/VGG19 (Park & No 2022, from OpenLTH) has the same layers and
parameters, but max-pools after the fourth stage for 32x32 inputs too (the fifth then runs on 2x2
maps): ``pool3=True``."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from pipeline.models import MODELS


def _stage(in_channels: int, widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        # Conv bias kept (as in RepDistiller) so parameter counts match theirs.
        layers += [nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        in_channels = w
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``widths``, if given, replaces the cfg's conv widths one by one in forward order, keeping its
    stage structure (a student shaped from a pruned teacher, see ``pipeline.models.shaping``)."""

    def __init__(self, cfg: list[list[int]], num_classes: int, in_channels: int = 3,
                 widths: list[int] | None = None, pool3: bool = False):
        super().__init__()
        self.pool3 = pool3
        if widths is not None:
            sizes = [len(stage) for stage in cfg]
            if len(widths) != sum(sizes) or min(widths) < 1:
                raise ValueError(f"VGG widths must be {sum(sizes)} positive ints, got {widths}")
            it = iter(widths)
            cfg = [[int(next(it)) for _ in range(size)] for size in sizes]
        stages = []
        for widths in cfg:
            stages.append(_stage(in_channels, widths))
            in_channels = widths[-1]
        self.block0, self.block1, self.block2, self.block3, self.block4 = stages
        self.pool = nn.MaxPool2d(2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.block0(x))
        x = self.pool(self.block1(x))
        x = self.pool(self.block2(x))
        x = self.block3(x)
        # RepDistiller pools here only for 64x64 inputs; CIFAR-sized maps are already 4x4 (or 3x3).
        if self.pool3 or x.shape[-1] >= 8:
            x = self.pool(x)
        x = self.block4(x)
        return self.classifier(torch.flatten(self.avgpool(x), 1))


# Each variant's convolution widths per block (RepDistiller's cfg).
VARIANTS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg19": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


@dataclass(frozen=True)
class Params:
    widths: list[int] | None = None  # every convolution's width in forward order, instead of the cfg's (a shaped student)
    pool3: bool = False  # max-pool after block3 at every input size, as prune-then-distill's VGG (default: 64x64 inputs only)


def _builder(cfg: list[list[int]]):
    def build(num_classes: int, in_channels: int, params: Params) -> nn.Module:
        return VGG(cfg, num_classes, in_channels, params.widths, params.pool3)

    return build


for _name, _cfg in VARIANTS.items():
    MODELS.register(_name, Params)(_builder(_cfg))
