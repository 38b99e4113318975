"""Intermediate features of a model, taken with forward hooks in one place (no edited
``forward``s, no model surgery): every model's last layer is an ``nn.Linear`` named
``classifier`` (see ``pipeline.models``), so its input is the penultimate feature vector h."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

from pipeline.errors import UserError


class _Rows:
    """Rows collected by a hook, batch after batch."""

    def __init__(self):
        self.batches: list[torch.Tensor] = []

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches)

    def cat(self) -> torch.Tensor:
        return torch.cat(self.batches)


@contextlib.contextmanager
def penultimate_features(model: nn.Module) -> Iterator[_Rows]:
    """While active, the input of ``model.classifier`` (the penultimate features h) at every
    forward, appended as CPU float32 rows; the hook comes off however the block ends."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise UserError(f"{type(model).__name__} has no nn.Linear 'classifier' whose input could be read")
    rows = _Rows()

    def keep_input(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        rows.batches.append(inputs[0].detach().float().cpu())

    handle = classifier.register_forward_pre_hook(keep_input)
    try:
        yield rows
    finally:
        handle.remove()


class LayerOutputs:
    """The outputs of named submodules (``model.named_modules()`` names) at every forward, by
    forward hooks: ``outputs[name]`` holds the latest. Use as a context manager so the hooks are
    removed however the block ends. Take layers whose output the model does not modify in place
    afterwards (a stage or block output, not a convolution followed by an in-place ReLU)."""

    def __init__(self, model: nn.Module | None, names: tuple[str, ...] | list[str]):
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = []
        if not names:
            return
        modules = dict(model.named_modules())
        check_layers(model, names)
        for name in names:
            self._handles.append(modules[name].register_forward_hook(self._keeper(name)))

    def _keeper(self, name: str):
        def keep(module: nn.Module, inputs, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return keep

    def __enter__(self) -> "LayerOutputs":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def check_layers(model: nn.Module, names, where: str = "") -> None:
    """A one-line error naming a layer the model lacks and listing the ones it has."""
    modules = [name for name, _ in model.named_modules() if name]
    for name in names:
        if name not in modules:
            prefix = f"{where}: " if where else ""
            raise UserError(f"{prefix}{type(model).__name__} has no layer {name!r}; layers: {', '.join(modules)}")
