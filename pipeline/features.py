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
