"""A small three-stage CNN for 28x28 (MNIST-like) or 32x32 (CIFAR-like) inputs, used as a cheap
baseline and for quick experiments."""
from __future__ import annotations

from dataclasses import dataclass

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
    """Three convolutions of width, 2 x width and 4 x width channels, or ``widths`` (a student shaped
    from a pruned teacher, see ``pipeline.models.shaping``)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, widths: list[int] | None = None):
        super().__init__()
        w1, w2, w3 = widths or (width, 2 * width, 4 * width)
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, w1),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w1, w2),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w2, w3),
            # Adaptive pooling so 28x28 and 32x32 inputs give the same feature size.
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class Params:
    width: int = 16  # channels of the first convolution; the next two have 2x and 4x as many
    widths: list[int] | None = None  # the three convolutions' widths, instead of width (a shaped student)


@MODELS.register("cnn", Params)
def cnn(num_classes: int, in_channels: int, params: Params) -> nn.Module:
    return SmallCNN(num_classes, in_channels, params.width, params.widths)
