"""A student shaped from a pruned teacher ("Prune your model before distill it", Park & No 2022).

The teacher was pruned by global unstructured magnitude pruning, so its pruned Conv2d/Linear
weights are exactly zero. The shaped student gives every layer about as many weights as the pruned
teacher's layer keeps: layer by layer from the input, a conv with k x k kernels whose input has
the already-shaped width c_in' gets the width

    c_out' = max(1, round(nnz / (k * k * c_in')))

(for the first conv, c_in' is the image channels). ``shaped_model_args`` returns the model_args
that make ``build_model`` build that student; they are plain JSON lists, so a checkpoint that
stores them rebuilds the same student.
"""
from __future__ import annotations

import torch.nn as nn

from pipeline.errors import UserError


def _width(conv: nn.Conv2d, in_width: int) -> int:
    nnz = int((conv.weight != 0).sum())
    kh, kw = conv.kernel_size
    return max(1, round(nnz / (kh * kw * in_width)))


def _chain(model: nn.Module) -> dict:
    """A plain chain of convolutions, each reading the previous one's output (cnn, VGG)."""
    widths = []
    in_width = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    # modules() yields the convs in registration order, which is forward order (block0..block4).
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        in_width = _width(conv, in_width)
        widths.append(in_width)
    return {"widths": widths}


def _resnet(model: nn.Module) -> dict:
    """Residual connections make every layer that writes to a stream share its width, which the
    paper's rule leaves open. Here: a block's inner width (conv1) follows the rule with c_in' = the
    width of the stream feeding it. A stream's width is the largest the rule gives its writers in
    its FIRST block (conv2 and the projection shortcut, or for an identity shortcut the stream it
    continues, i.e. the stem for stage 1), since later blocks read and write the same stream; their
    conv2s are not counted. With an identity shortcut the first block's conv1 reads the stem's own
    width (the shared width depends on that block, so it cannot come first). The classifier reads
    the last stream."""
    stem = _width(model.conv1, model.conv1.in_channels)
    streams, block_widths = [stem], []
    for layer in (model.layer1, model.layer2, model.layer3):
        for i, block in enumerate(layer):
            inner = _width(block.conv1, streams[-1])
            block_widths.append(inner)
            if i > 0:
                continue
            if isinstance(block.shortcut, nn.Identity):
                # Identity: this stage continues the previous stream (only stage 1 of these models:
                # the later ones downsample), so both must get one width.
                width = max(_width(block.conv2, inner), streams[-1])
                streams[-1] = width
            else:
                width = max(_width(block.conv2, inner), _width(block.shortcut[0], streams[-1]))
            streams.append(width)
    return {"widths": streams, "block_widths": block_widths}


_SHAPERS = {
    **dict.fromkeys(["cnn", "vgg8", "vgg11", "vgg13", "vgg19"], _chain),
    **dict.fromkeys(["resnet20", "resnet32", "resnet56", "resnet110", "resnet8x4", "resnet32x4"], _resnet),
}


def shaped_model_args(model_name: str, model: nn.Module, model_args: dict) -> dict:
    """``model_args`` plus the widths that make ``build_model(model_name, ...)`` the student shaped
    from the pruned ``model`` (its zero weights are the pruned ones)."""
    if model_name not in _SHAPERS:
        raise UserError(f"cannot shape a student from {model_name!r}; supported: {', '.join(sorted(_SHAPERS))}")
    return {**model_args, **_SHAPERS[model_name](model)}


SHAPED_FAMILIES = frozenset(_SHAPERS)
