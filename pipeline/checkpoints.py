"""Model checkpoints that rebuild themselves (the file holds the registry name and arguments of
the model next to its weights, and the fingerprint of the data it was trained on), and a trained
model's logits on the un-augmented training set, computed once and read by every scorer that
needs them, and the per-class logit statistics MDSLR's reshaping reads."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.io import REMAKE, atomic_write, read_table, require_same_data, unreadable, write_table
from pipeline.models import build_model


def load_torch(path: str | Path, kind: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """A torch file this pipeline wrote (a dict of tensors and plain values: ``weights_only``, so no
    pickled object runs) holding ``keys``. A missing, truncated, empty or foreign file, or one of
    another kind (a model where views belong), is one line naming it and what to do."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, OSError or UnpicklingError by where a file breaks
        raise unreadable(path, kind, error) from None
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        held = ", ".join(sorted(map(str, state))) if isinstance(state, dict) else type(state).__name__
        raise UserError(f"{path} is not a {kind}: it has no {', '.join(missing)} (it holds {held}); {REMAKE}")
    return state


def save_model(path: str | Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """``spec`` holds at least model, model_args, num_classes, in_channels, dataset_fingerprint."""
    state = {"spec": spec, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_model(path: str | Path, dataset_fingerprint: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    state = load_torch(path, "model checkpoint", ("spec", "state_dict"))
    spec = state["spec"]
    if dataset_fingerprint is not None:
        require_same_data(path, spec["dataset_fingerprint"], dataset_fingerprint)
    model = build_model(spec["model"], spec["num_classes"], spec["in_channels"], **spec["model_args"])
    model.load_state_dict(state["state_dict"])
    return model, spec


def save_train_logits(path: str | Path, logits: torch.Tensor, meta: dict[str, Any]) -> None:
    """A trained model's logits on every training sample in canonical order (eval mode, no
    augmentation: ``pipeline.inference.predict``); ``meta`` holds at least dataset_fingerprint."""
    atomic_write(path, lambda tmp: torch.save({"logits": logits, **meta}, tmp))


def save_class_logit_std(path: str | Path, class_std: torch.Tensor, labels: torch.Tensor, meta: dict[str, Any]) -> None:
    """MDSLR's class statistics s[c] of a full-data teacher (``pipeline.losses.kd.class_logit_std``):
    one row per class (label, logit_std, samples of the class among ``labels``)."""
    table = pd.DataFrame({
        "label": range(len(class_std)),
        "logit_std": class_std.numpy(),
        "samples": torch.bincount(labels, minlength=len(class_std)).numpy(),
    })
    write_table(table, path, meta)


def load_class_logit_std(path: str | Path, dataset_fingerprint: str, view_seed: int | None = None) -> torch.Tensor:
    """s[c] from ``path``, which must be of the view the setting asks for: the un-augmented images
    (``view_seed`` None) or the augmented pass drawn with ``view_seed``."""
    table, meta = read_table(path)
    require_same_data(path, meta["dataset_fingerprint"], dataset_fingerprint)
    if meta.get("view_seed") != view_seed:
        raise UserError(f"{path} holds the class statistics of {_view_name(meta.get('view_seed'))}, not of "
                        f"{_view_name(view_seed)}; give the file the setting's reshape_view_seed names")
    return torch.tensor(table.sort_values("label")["logit_std"].to_numpy(), dtype=torch.float32)


def _view_name(view_seed: int | None) -> str:
    return "the un-augmented images" if view_seed is None else f"the augmented view of seed {view_seed}"


def load_train_logits(path: str | Path, dataset_fingerprint: str) -> torch.Tensor:
    state = load_torch(path, "file of training-set logits", ("logits", "dataset_fingerprint"))
    require_same_data(path, state["dataset_fingerprint"], dataset_fingerprint)
    return state["logits"]
