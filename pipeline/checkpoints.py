"""Model checkpoints that rebuild themselves: the file holds the registry name and arguments of
the model next to its weights, and the fingerprint of the data it was trained on."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.io import atomic_write
from pipeline.models import build_model


def save_model(path: str | Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """``spec`` holds at least model, model_args, num_classes, in_channels, dataset_fingerprint."""
    state = {"spec": spec, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_model(path: str | Path, dataset_fingerprint: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    spec = state["spec"]
    if dataset_fingerprint is not None and spec["dataset_fingerprint"] != dataset_fingerprint:
        raise UserError(
            f"{path} was trained on data with fingerprint {spec['dataset_fingerprint']}, "
            f"but this run's data has fingerprint {dataset_fingerprint}"
        )
    model = build_model(spec["model"], spec["num_classes"], spec["in_channels"], **spec["model_args"])
    model.load_state_dict(state["state_dict"])
    return model, spec
