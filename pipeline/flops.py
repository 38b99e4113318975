"""FLOPs of one forward pass of a model on one image, counted from its layers' shapes.

Convolutions and linear layers only (2 FLOPs per multiply-add; they are nearly all of a CNN's
work). The model is built and run on the meta device, so counting costs no memory or compute even
for ImageNet models; the workflow sizes cluster jobs with it and the benchmark reports achieved
FLOP/s with it.
"""
from __future__ import annotations

import functools
import json

import torch
import torch.nn as nn

from pipeline.models import build_model


def count_forward_flops(model: nn.Module, channels: int, image_size: int) -> int:
    total = 0

    def conv(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        macs_per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += 2 * macs_per_output * output[0].numel()

    def linear(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * module.in_features * output[0].numel()

    hooks = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, image_size, image_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return total


@functools.cache
def _model_flops(name: str, args_json: str, num_classes: int, channels: int, image_size: int) -> int:
    with torch.device("meta"):
        model = build_model(name, num_classes, channels, **json.loads(args_json))
    return count_forward_flops(model, channels, image_size)


def model_flops(name: str, model_args: dict, num_classes: int, channels: int, image_size: int) -> int:
    """Forward FLOPs per image of a registered model (cached: the workflow asks once per job)."""
    return _model_flops(name, json.dumps(model_args, sort_keys=True), num_classes, channels, image_size)
