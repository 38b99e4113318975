"""Model registry. A model factory is called as ``factory(num_classes=..., in_channels=..., **args)``
and returns an ``nn.Module`` whose last layer is an ``nn.Linear`` named ``classifier``.

Adding a model: one file in this package with ``@MODELS.register("name")`` and its import below.
"""
from __future__ import annotations

import torch.nn as nn

from pipeline.registry import Registry

MODELS: Registry = Registry("model")


def build_model(name: str, num_classes: int, in_channels: int, **args) -> nn.Module:
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, **args)


from pipeline.models import cnn, mobilenetv2, resnet_cifar, torchvision_resnet, vgg, wrn  # noqa: E402,F401
