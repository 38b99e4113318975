"""Students shaped from pruned teachers: widths computed by hand from known masks."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.models import build_model
from pipeline.models.shaping import shaped_model_args


def convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def keep_first(conv: nn.Conv2d, count: int) -> None:
    """Weights 1, all but the first ``count`` (in flat order) pruned to 0."""
    with torch.no_grad():
        flat = torch.zeros(conv.weight.numel())
        flat[:count] = 1.0
        conv.weight.copy_(flat.view_as(conv.weight))


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_cnn_widths_by_hand():
    teacher = build_model("cnn", num_classes=10, in_channels=1, width=2)  # convs 1->2, 2->4, 4->8, 3x3
    first, second, third = convs(teacher)
    keep_first(first, 9)    # 9 / (9 * 1 input channel)        -> 1
    keep_first(second, 36)  # 36 / (9 * 1, the shaped first)    -> 4
    keep_first(third, 72)   # 72 / (9 * 4, the shaped second)   -> 2
    args = shaped_model_args("cnn", teacher, {"width": 2})
    assert args == {"width": 2, "widths": [1, 4, 2]}
    student = build_model("cnn", num_classes=10, in_channels=1, **json.loads(json.dumps(args)))
    assert [(c.in_channels, c.out_channels) for c in convs(student)] == [(1, 1), (1, 4), (4, 2)]
    assert student.classifier.in_features == 2
    assert student(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_unpruned_vgg_gives_back_its_own_architecture():
    teacher = build_model("vgg8", num_classes=100, in_channels=3)
    args = shaped_model_args("vgg8", teacher, {})
    assert args == {"widths": [64, 128, 256, 512, 512]}
    assert params(build_model("vgg8", num_classes=100, in_channels=3, **args)) == params(teacher)


def test_vgg_widths_by_hand():
    teacher = build_model("vgg8", num_classes=10, in_channels=3)
    widths = [64, 128, 256, 512, 512]
    layers = convs(teacher)
    keep_first(layers[0], 32 * 27)       # 864 / (9 * 3)    -> 32
    keep_first(layers[1], 32 * 9 * 40)   # / (9 * 32)       -> 40
    for conv, w in zip(layers[2:], widths[2:]):
        keep_first(conv, conv.weight.numel() // 4)  # a quarter of 9 * c_in * c_out, read by c_in'
    # layer 2: 128 * 256 * 9 / 4 / (9 * 40) = 204.8 -> 205; layer 3: 256 * 512 * 9 / 4 / (9 * 205) = 159.84 -> 160;
    # layer 4: 512 * 512 * 9 / 4 / (9 * 160) = 409.6 -> 410
    assert shaped_model_args("vgg8", teacher, {})["widths"] == [32, 40, 205, 160, 410]


def test_unpruned_resnet_gives_back_its_own_architecture():
    teacher = build_model("resnet20", num_classes=10, in_channels=3)
    args = shaped_model_args("resnet20", teacher, {})
    assert args == {"widths": [16, 16, 32, 64], "block_widths": [16] * 3 + [32] * 3 + [64] * 3}
    assert params(build_model("resnet20", num_classes=10, in_channels=3, **args)) == params(teacher)


def test_resnet_stream_follows_the_first_block_by_hand():
    teacher = build_model("resnet20", num_classes=10, in_channels=3)
    block = teacher.layer2[0]
    keep_first(block.conv2, 32 * 32 * 9 // 2)   # 4608 / (9 * 32 inner)      -> 16
    keep_first(block.shortcut[0], 32 * 16 // 2)  # 256 / (1 * 16, stage-1 stream) -> 16
    args = shaped_model_args("resnet20", teacher, {})
    # stage 2's stream: max(16, 16) = 16. Blocks 2 and 3 of stage 2 read a 16-wide stream, so their
    # dense conv1 (32 * 32 * 9 weights) gives 9216 / (9 * 16) = 64; stage 3's first conv1 (64 * 32 * 9)
    # also reads 16 channels: 18432 / 144 = 128. Stage 3's stream: conv2 of its first block
    # 64 * 64 * 9 / (9 * 128) = 32, shortcut 64 * 32 / 16 = 128 -> 128.
    assert args["widths"] == [16, 16, 16, 128]
    assert args["block_widths"] == [16, 16, 16, 32, 64, 64, 128, 32, 32]
    student = build_model("resnet20", num_classes=10, in_channels=3, **args)
    assert student(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_unsupported_family_is_one_line():
    with pytest.raises(UserError, match=r"^cannot shape a student from 'mobilenetv2'; supported: cnn, resnet110, "):
        shaped_model_args("mobilenetv2", build_model("mobilenetv2", num_classes=10, in_channels=3), {})
