"""Model checkpoints that rebuild themselves (the file holds the registry name and arguments of
the model next to its weights, and the fingerprint of the data it was trained on), and a trained
model's logits on the un-augmented training set, computed once and read by every scorer that
needs them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pipeline.io import atomic_write, require_same_data
from pipeline.data import Dataset
from pipeline.models import build_model
from pipeline.train import predict


def save_model(path: str | Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """``spec`` holds at least model, model_args, num_classes, in_channels, dataset_fingerprint."""
    state = {"spec": spec, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_model(path: str | Path, dataset_fingerprint: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    spec = state["spec"]
    if dataset_fingerprint is not None:
        require_same_data(path, spec["dataset_fingerprint"], dataset_fingerprint)
    model = build_model(spec["model"], spec["num_classes"], spec["in_channels"], **spec["model_args"])
    model.load_state_dict(state["state_dict"])
    return model, spec


def save_train_logits(path: str | Path, model: nn.Module, data: Dataset, batch_size: int,
                      device: torch.device, meta: dict[str, Any]) -> None:
    """Logits of every training sample in canonical order, eval mode, no augmentation."""
    logits = predict(model, data.train, batch_size, device)
    state = {"logits": logits, **meta, "dataset_fingerprint": data.fingerprint}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_train_logits(path: str | Path, dataset_fingerprint: str) -> torch.Tensor:
    state = torch.load(path, map_location="cpu", weights_only=True)
    require_same_data(path, state["dataset_fingerprint"], dataset_fingerprint)
    return state["logits"]
