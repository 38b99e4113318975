"""A small three-stage CNN for 28x28 (MNIST-like) or 32x32 (CIFAR-like) inputs, used as a cheap
baseline and for quick experiments."""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.models import MODELS


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    # No conv bias: the following BatchNorm has its own shift.
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, w),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w),
            nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, 4 * w),
            # Adaptive pooling so 28x28 and 32x32 inputs give the same feature size.
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@MODELS.register("cnn")
def cnn(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    return SmallCNN(num_classes, in_channels, **kwargs)
