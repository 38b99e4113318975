"""ImageNet ResNets (He et al. 2016) from ``torchvision.models``, untrained, wrapped so the final
linear layer is exposed as ``classifier`` like every other model in the zoo."""
from __future__ import annotations

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


@MODELS.register("resnet18")
def resnet18(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    return TorchvisionResNet("resnet18", num_classes, in_channels, **kwargs)


@MODELS.register("resnet34")
def resnet34(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    return TorchvisionResNet("resnet34", num_classes, in_channels, **kwargs)


@MODELS.register("resnet50")
def resnet50(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    return TorchvisionResNet("resnet50", num_classes, in_channels, **kwargs)
