"""ImageNet ResNets (He et al. 2016) from ``torchvision.models``, untrained, wrapped so the final
linear layer is exposed as ``classifier`` like every other model in the zoo."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn

from pipeline.models import MODELS


class TorchvisionResNet(nn.Module):
    def __init__(self, arch: str, num_classes: int, in_channels: int = 3, **kwargs):
        super().__init__()
        import torchvision.models  # here, not at the top: importing torchvision costs every job 1.4 s

        backbone = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes, **kwargs)
        if in_channels != 3:
            old = backbone.conv1
            backbone.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride,
                                       old.padding, bias=False)
            # Same init torchvision gives its own convs.
            nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")
        # Move fc out of the backbone so the Linear is registered once, under the common name.
        self.classifier = backbone.fc
        backbone.fc = nn.Identity()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


@dataclass(frozen=True)
class Params:
    """torchvision's own ResNet arguments (those a config can write)."""

    zero_init_residual: bool = False  # zero-initialise each block's last BatchNorm weight
    groups: int = 1  # groups of the 3x3 convolutions (ResNeXt)
    width_per_group: int = 64  # channels per group of the 3x3 convolutions (wide ResNets: 128)


@MODELS.register("resnet18", Params)
def resnet18(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return TorchvisionResNet("resnet18", num_classes, in_channels, **dataclasses.asdict(params))


@MODELS.register("resnet34", Params)
def resnet34(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return TorchvisionResNet("resnet34", num_classes, in_channels, **dataclasses.asdict(params))


@MODELS.register("resnet50", Params)
def resnet50(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return TorchvisionResNet("resnet50", num_classes, in_channels, **dataclasses.asdict(params))
