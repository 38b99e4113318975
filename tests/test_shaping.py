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


def conv_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(m.weight.shape) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def test_vgg8_exact_shapes_and_at_least_one():
    teacher = build_model("vgg8", num_classes=10, in_channels=3)
    block0, block1, block2, block3, block4 = convs(teacher)
    keep_first(block0, 864)    # (64, 3, 3, 3), half kept:     864 / (9 * 3)    -> 32
    keep_first(block1, 18432)  # (128, 64, 3, 3), a quarter:  18432 / (9 * 32)  -> 64
    keep_first(block2, 36864)  # (256, 128, 3, 3), an eighth: 36864 / (9 * 64)  -> 64
    keep_first(block3, 1000)   # 1000 / (9 * 64) = 1.74                         -> 2
    keep_first(block4, 0)      # nothing kept: 0, but widths are at least 1     -> 1
    args = shaped_model_args("vgg8", teacher, {})
    assert args == {"widths": [32, 64, 64, 2, 1]}
    student = build_model("vgg8", num_classes=10, in_channels=3, **args).eval()
    assert conv_shapes(student) == {"block0.0": (32, 3, 3, 3), "block1.0": (64, 32, 3, 3),
                                    "block2.0": (64, 64, 3, 3), "block3.0": (2, 64, 3, 3), "block4.0": (1, 2, 3, 3)}
    assert student.classifier.in_features == 1
    with torch.no_grad():
        assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_vgg13_widths_keep_the_stage_structure():
    widths = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    model = build_model("vgg13", num_classes=10, in_channels=1, widths=widths)
    stages = (model.block0, model.block1, model.block2, model.block3, model.block4)
    assert [len([m for m in s if isinstance(m, nn.Conv2d)]) for s in stages] == [2, 2, 2, 2, 2]
    assert [c.out_channels for c in convs(model)] == widths
    assert model.classifier.in_features == 17
    with pytest.raises(ValueError, match="10 positive ints"):
        build_model("vgg13", num_classes=10, in_channels=3, widths=[8, 9])


@pytest.mark.parametrize("name, expected", [
    ("vgg13", {"widths": [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]}),
    ("vgg11", {"widths": [64, 128, 256, 256, 512, 512, 512, 512]}),
    ("vgg19", {"widths": [64, 64, 128, 128] + [256] * 4 + [512] * 8}),
    # stage 1 has a projection shortcut here (32 -> 64), so the stem keeps its own width
    ("resnet8x4", {"widths": [32, 64, 128, 256], "block_widths": [64, 128, 256]}),
])
def test_unpruned_gives_back_the_same_layers(name, expected):
    teacher = build_model(name, num_classes=100, in_channels=3)
    args = shaped_model_args(name, teacher, {})
    assert args == expected
    student = build_model(name, num_classes=100, in_channels=3, **args)
    assert conv_shapes(student) == conv_shapes(teacher)
    assert params(student) == params(teacher)


def test_vgg19_teacher_shapes_its_student_by_hand():
    # Prune-then-distill's CIFAR-100 teacher: VGG19 (with its pooling, pool3), shaped student widths
    # conv by conv. Each conv keeps 9 * c_in' * w weights, so the rule gives back w exactly.
    teacher = build_model("vgg19", num_classes=100, in_channels=3, pool3=True)
    layers = convs(teacher)
    assert len(layers) == 16
    targets = [32, 20, 100, 64, 128, 100, 200, 50, 256, 300, 400, 256, 128, 64, 32]
    in_width = 3
    for conv, width in zip(layers, targets):
        keep_first(conv, 9 * in_width * width)
        in_width = width
    keep_first(layers[15], 0)  # nothing kept -> 1
    args = shaped_model_args("vgg19", teacher, {"pool3": True})
    assert args == {"pool3": True, "widths": targets + [1]}
    student = build_model("vgg19", num_classes=100, in_channels=3, **json.loads(json.dumps(args))).eval()
    stages = (student.block0, student.block1, student.block2, student.block3, student.block4)
    assert [[m.out_channels for m in s if isinstance(m, nn.Conv2d)] for s in stages] == \
        [[32, 20], [100, 64], [128, 100, 200, 50], [256, 300, 400, 256], [128, 64, 32, 1]]
    assert [c.in_channels for c in convs(student)] == [3] + targets
    assert student.pool3 and student.classifier.in_features == 1
    with torch.no_grad():
        assert student(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def pruned_resnet20() -> nn.Module:
    teacher = build_model("resnet20", num_classes=10, in_channels=3)
    l1, l2, l3 = teacher.layer1, teacher.layer2, teacher.layer3
    keep_first(teacher.conv1, 216)         # stem (16, 3, 3, 3): 216 / (9 * 3)             -> 8
    keep_first(l1[0].conv1, 288)           # c_in' = the stem's own 8: 288 / (9 * 8)      -> 4
    keep_first(l1[0].conv2, 360)           # c_in' = 4: 360 / (9 * 4)                     -> 10
    # identity shortcut: stem and stage 1 are one stream: max(10, 8) = 10, the stem too
    keep_first(l1[1].conv1, 900)           # c_in' = 10: 900 / 90                         -> 10
    keep_first(l1[2].conv1, 0)             # nothing kept                                 -> 1
    keep_first(l1[2].conv2, 0)             # a later block's conv2 does not count
    keep_first(l2[0].conv1, 1000)          # (32, 16, 3, 3), c_in' = 10: 1000 / 90 = 11.1  -> 11
    keep_first(l2[0].conv2, 2000)          # c_in' = 11: 2000 / 99 = 20.2                 -> 20
    keep_first(l2[0].shortcut[0], 250)     # (32, 16, 1, 1), c_in' = 10: 250 / 10          -> 25
    # stream 2 = max(20, 25) = 25
    keep_first(l2[1].conv1, 4500)          # c_in' = 25: 4500 / 225                       -> 20
    # l2[2].conv1 dense: 9216 / 225 = 40.96 -> 41, wider than the teacher's 32 (its input shrank more)
    keep_first(l3[0].conv1, 2250)          # (64, 32, 3, 3), c_in' = 25: 2250 / 225        -> 10
    keep_first(l3[0].conv2, 2700)          # c_in' = 10: 2700 / 90                        -> 30
    keep_first(l3[0].shortcut[0], 500)     # (64, 32, 1, 1), c_in' = 25: 500 / 25          -> 20
    # stream 3 = max(30, 20) = 30
    keep_first(l3[1].conv1, 2700)          # c_in' = 30: 2700 / 270                       -> 10
    keep_first(l3[2].conv1, 2850)          # 2850 / 270 = 10.56                           -> 11
    return teacher


def test_resnet20_streams_and_blocks_by_hand():
    args = shaped_model_args("resnet20", pruned_resnet20(), {})
    assert args == {"widths": [10, 10, 25, 30], "block_widths": [4, 10, 1, 11, 20, 41, 10, 10, 11]}
    student = build_model("resnet20", num_classes=10, in_channels=3, **args).eval()
    assert conv_shapes(student) == {
        "conv1": (10, 3, 3, 3),
        "layer1.0.conv1": (4, 10, 3, 3), "layer1.0.conv2": (10, 4, 3, 3),
        "layer1.1.conv1": (10, 10, 3, 3), "layer1.1.conv2": (10, 10, 3, 3),
        "layer1.2.conv1": (1, 10, 3, 3), "layer1.2.conv2": (10, 1, 3, 3),
        "layer2.0.conv1": (11, 10, 3, 3), "layer2.0.conv2": (25, 11, 3, 3), "layer2.0.shortcut.0": (25, 10, 1, 1),
        "layer2.1.conv1": (20, 25, 3, 3), "layer2.1.conv2": (25, 20, 3, 3),
        "layer2.2.conv1": (41, 25, 3, 3), "layer2.2.conv2": (25, 41, 3, 3),
        "layer3.0.conv1": (10, 25, 3, 3), "layer3.0.conv2": (30, 10, 3, 3), "layer3.0.shortcut.0": (30, 25, 1, 1),
        "layer3.1.conv1": (10, 30, 3, 3), "layer3.1.conv2": (30, 10, 3, 3),
        "layer3.2.conv1": (11, 30, 3, 3), "layer3.2.conv2": (30, 11, 3, 3),
    }
    assert isinstance(student.layer1[0].shortcut, nn.Identity)  # the stem's stream is stage 1's
    assert student.classifier.in_features == 30
    with torch.no_grad():
        assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_args_survive_json_and_keep_the_original_ones():
    original = {"widths": [16, 16, 32, 64]}
    args = shaped_model_args("resnet20", pruned_resnet20(), original)
    assert original == {"widths": [16, 16, 32, 64]}  # not mutated; the shaped widths replace it
    loaded = json.loads(json.dumps(args))
    assert loaded == args
    assert conv_shapes(build_model("resnet20", num_classes=10, in_channels=3, **loaded)) == \
        conv_shapes(build_model("resnet20", num_classes=10, in_channels=3, **args))
    assert shaped_model_args("vgg8", build_model("vgg8", num_classes=10, in_channels=3), {"extra": 1})["extra"] == 1


def test_unsupported_message_lists_every_family():
    with pytest.raises(UserError) as err:
        shaped_model_args("wrn_40_2", build_model("wrn_40_2", num_classes=10, in_channels=3), {})
    message = str(err.value)
    assert "\n" not in message and message.startswith("cannot shape a student from 'wrn_40_2'; supported: ")
    for name in ["cnn", "resnet110", "resnet20", "resnet32", "resnet32x4", "resnet56", "resnet8x4",
                 "vgg11", "vgg13", "vgg19", "vgg8"]:
        assert name in message
