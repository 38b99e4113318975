"""Model checkpoints that rebuild themselves (the file holds the registry name and arguments of
the model next to its weights, and the fingerprint of the data it was trained on), and a trained
model's logits on the un-augmented training set, computed once and read by every scorer that
needs them, and the per-class logit statistics MDSLR's reshaping reads.

Every torch file this pipeline writes (checkpoints, logits, cached views, saved training state) is
a dict of tensors and plain values written by ``save_torch``, which adds the hash of its contents
(``content_hash``); ``load_torch`` reads it with ``weights_only=True`` and checks the hash."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import hashlib

import pandas as pd
import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.io import CONTENT_HASH, REMAKE, atomic_write, changed, read_table, require_same_data, unreadable, write_table
from pipeline.models import build_model


# the key under which a file made from a teacher's outputs records that teacher's config_hash
TEACHER_KEY = "teacher_config_hash"


def save_torch(path: str | Path, state: dict[str, Any]) -> None:
    """``state`` (tensors and plain values only) written atomically with its ``content_hash``."""
    state = {**state, CONTENT_HASH: torch_content_hash(state)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def torch_content_hash(state: dict[str, Any]) -> str:
    """Hash of a torch file's dict without its ``content_hash``: every tensor's dtype, shape and
    bytes (hashed where they lie, one tensor at a time: a CPU tensor is not copied) and every plain
    value's repr, in the dict's order."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != CONTENT_HASH})
    return digest.hexdigest()[:16]


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):  # (state dicts are OrderedDicts: one kind here)
        digest.update(f"dict of {len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} of {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def load_torch(path: str | Path, kind: str, keys: tuple[str, ...], fingerprint: str | None = None) -> dict[str, Any]:
    """A torch file this pipeline wrote (a dict of tensors and plain values: ``weights_only``, so no
    pickled object runs) holding ``keys``, made from the data of ``fingerprint`` when given. A
    missing, truncated, empty or foreign file, one of another kind (a model where views belong), one
    changed after it was written (its contents no longer hash to its ``content_hash``) or one made
    from other data is one line naming it and what to do. A file written before content hashes were
    recorded has none and is read unchecked, so no finished result has to be made again."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, OSError or UnpicklingError by where a file breaks
        raise unreadable(path, kind, error) from None
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        held = ", ".join(sorted(map(str, state))) if isinstance(state, dict) else type(state).__name__
        raise UserError(f"{path} is not a {kind}: it has no {', '.join(missing)} (it holds {held}); {REMAKE}")
    recorded = state.get(CONTENT_HASH)
    if recorded is not None and torch_content_hash(state) != recorded:
        raise changed(path, torch_content_hash(state), recorded)
    if fingerprint is not None:
        require_same_data(path, state.get("dataset_fingerprint", (state.get("spec") or {}).get("dataset_fingerprint")),
                          fingerprint)
    return state


# The stages whose model.pt is a teacher (proxies are trained by the teacher stage too): what a
# stage that distils from, scores with or caches the outputs of a teacher accepts.
TEACHER_STAGES = ("teacher", "prune_teacher")


def save_model(path: str | Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """``spec`` holds at least model, model_args, num_classes, in_channels, dataset_fingerprint."""
    save_torch(path, {"spec": spec, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})


def load_model(path: str | Path, dataset_fingerprint: str | None = None,
               teacher: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a checkpoint made from the data of ``dataset_fingerprint`` (when given); with
    ``teacher``, one the teacher stages wrote (a student's model.pt is refused)."""
    state = load_torch(path, "model checkpoint", ("spec", "state_dict"), dataset_fingerprint)
    spec = state["spec"]
    if teacher and spec.get("stage") not in TEACHER_STAGES:
        raise UserError(f"{path} is the model of stage {spec.get('stage')!r}, not a teacher's (a model.pt of "
                        f"shared/teachers/ or shared/proxies/); {REMAKE}")
    model = build_model(spec["model"], spec["num_classes"], spec["in_channels"], **spec["model_args"])
    model.load_state_dict(state["state_dict"])
    return model, spec


def save_train_logits(path: str | Path, logits: torch.Tensor, meta: dict[str, Any]) -> None:
    """A trained model's logits on every training sample in canonical order (eval mode, no
    augmentation: ``pipeline.inference.predict``); ``meta`` holds at least dataset_fingerprint."""
    save_torch(path, {"logits": logits, **meta})


def save_class_logit_std(path: str | Path, class_std: torch.Tensor, labels: torch.Tensor, meta: dict[str, Any]) -> None:
    """MDSLR's class statistics s[c] of a full-data teacher (``pipeline.losses.kd.class_logit_std``):
    one row per class (label, logit_std, samples of the class among ``labels``)."""
    table = pd.DataFrame({
        "label": range(len(class_std)),
        "logit_std": class_std.numpy(),
        "samples": torch.bincount(labels, minlength=len(class_std)).numpy(),
    })
    write_table(table, path, meta)


def load_class_logit_std(path: str | Path, dataset_fingerprint: str, view_seed: int | None = None,
                         teacher_config_hash: str | None = None) -> torch.Tensor:
    """s[c] from ``path``, which must be of the view the setting asks for: the un-augmented images
    (``view_seed`` None) or the augmented pass drawn with ``view_seed``, and of the teacher whose
    ``config_hash`` is ``teacher_config_hash`` (when given)."""
    table, meta = read_table(path, "table of class logit statistics", ("label", "logit_std"), dataset_fingerprint)
    require_teacher(path, meta.get(TEACHER_KEY), teacher_config_hash)
    if meta.get("view_seed") != view_seed:
        raise UserError(f"{path} holds the class statistics of {_view_name(meta.get('view_seed'))}, not of "
                        f"{_view_name(view_seed)}; give the file the setting's reshape_view_seed names")
    return torch.tensor(table.sort_values("label")["logit_std"].to_numpy(), dtype=torch.float32)


def require_teacher(path: str | Path, recorded: str | None, expected: str | None) -> None:
    """A file made from a teacher's outputs (its cached views, its class statistics) is refused
    where the job loads another teacher: each records its teacher's ``config_hash`` (``TEACHER_KEY``).
    Files written before it was recorded are read unchecked."""
    if recorded is not None and expected is not None and recorded != expected:
        raise UserError(f"{path} was made from another teacher (config hash {recorded}) than the one this job loads "
                        f"({expected}); {REMAKE}")


def _view_name(view_seed: int | None) -> str:
    return "the un-augmented images" if view_seed is None else f"the augmented view of seed {view_seed}"


def load_train_logits(path: str | Path, dataset_fingerprint: str) -> torch.Tensor:
    kind = "file of training-set logits"
    logits = load_torch(path, kind, ("logits", "dataset_fingerprint"), dataset_fingerprint)["logits"]
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:  # (cached views hold K x N x classes)
        raise UserError(f"{path} is not a {kind}: its logits are not one row per sample (shape "
                        f"{tuple(getattr(logits, 'shape', ()))}); {REMAKE}")
    return logits
