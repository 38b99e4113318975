"""Intermediate features of a model, taken with forward hooks in one place (no edited
``forward``s, no model surgery): every model's last layer is an ``nn.Linear`` named
``classifier`` (see ``pipeline.models``), so its input is the penultimate feature vector h."""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.data import Split
from pipeline.errors import UserError


@torch.no_grad()
def predict_with_features(
    model: nn.Module, split: Split, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and penultimate features h (the input of ``model.classifier``) of every sample of
    ``split`` in canonical order, un-augmented, in eval mode (CPU float32), as
    ``pipeline.train.predict``."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise UserError(f"{type(model).__name__} has no nn.Linear 'classifier' whose input could be read")
    model.to(device, memory_format=torch.channels_last).eval()
    features: list[torch.Tensor] = []

    def keep_input(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        features.append(inputs[0].detach().float())

    handle = classifier.register_forward_pre_hook(keep_input)
    try:
        indices = torch.arange(len(split))
        logits = [
            model(x.contiguous(memory_format=torch.channels_last)).float()
            for x, _, _ in split.batches(indices, batch_size, device=device)
        ]
    finally:
        handle.remove()
    logits_cpu, features_cpu = torch.cat(logits).cpu(), torch.cat(features).cpu()
    if len(features_cpu) != len(logits_cpu):  # the classifier ran more than once per forward
        raise RuntimeError(f"{type(model).__name__}.classifier saw {len(features_cpu)} rows for {len(logits_cpu)} samples")
    return logits_cpu, features_cpu


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
