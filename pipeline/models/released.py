"""Weights trained elsewhere, loaded into this zoo's models: a teacher brought from a file
(``teachers.<t>.checkpoint: <path>``) or torchvision's pretrained ImageNet weights
(``checkpoint: torchvision``) instead of trained.

A file may be this pipeline's own model checkpoint (``pipeline.checkpoints.save_model``), a released
checkpoint of RepDistiller (Tian et al. 2020, github.com/HobbitLong/RepDistiller) or mdistiller
(github.com/megvii-research/mdistiller), which ship their CIFAR-100 teachers as
``<model>_vanilla/ckpt_epoch_240.pth``: a dict whose ``"model"`` is a state dict in their layer
naming, or a bare state dict. ``zoo_state_dict`` renames their layout to the zoo's; the files are
read with ``weights_only`` (no pickled object runs).

Their names against the zoo's (read from their ``models/`` definitions; mdistiller's CIFAR models
are RepDistiller's):

- CIFAR ResNets (resnet8x4, resnet32x4, resnet20, resnet56, ...): the same but ``downsample`` for
  the projection shortcut (``shortcut``) and ``fc`` for ``classifier``;
- WRNs: ``block<k>.layer.<i>`` for ``block<k>.<i>``, ``convShortcut`` for ``shortcut``, the final
  BN ``bn1`` for ``bn``, ``fc`` for ``classifier``;
- VGGs: the zoo's names are theirs (``block<k>.<i>``, ``classifier``): nothing to rename;
- MobileNetV2 (their ``mobile_half``): ``conv1.<i>``, ``blocks.<stage>.<unit>.conv.<i>``,
  ``conv2.<i>`` and ``classifier.0`` for the zoo's flat ``features.<n>`` and ``classifier``;
- ShuffleNetV1: ``linear`` for ``classifier``;
- ShuffleNetV2: flat ``conv<k>``/``bn<k>`` pairs for the zoo's conv-BN(-ReLU) sequences
  (``conv1``/``bn1`` for ``conv1.0``/``conv1.1``; a down unit's ``conv1..5`` for ``left.0``,
  ``left.1``, ``right.0..2``; a basic unit's ``conv1..3`` for ``branch.0..2``), ``linear`` for
  ``classifier``.

Their CIFAR ``ResNet50`` (a bottleneck CIFAR ResNet) has no model in the zoo. Their CIFAR-100
normalisation (mean 0.5071, 0.4867, 0.4408; std 0.2675, 0.2565, 0.2761) is this pipeline's to
within 3e-4.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.models import MODELS

TORCHVISION = "torchvision"  # the checkpoint value that asks for torchvision's pretrained weights

# The units per stage of RepDistiller's MobileNetV2 (and the zoo's): blocks.<s>.<u> is the zoo's
# features.<3 + units before stage s + u> (features 0-2 are the stem, then the units, then conv2).
_MOBILENET_UNITS = (1, 2, 3, 4, 3, 3, 1)
_MOBILENET_START = [3 + sum(_MOBILENET_UNITS[:s]) for s in range(len(_MOBILENET_UNITS))]
_MOBILENET_LAST = 3 + sum(_MOBILENET_UNITS)

# A ShuffleNetV2 down unit's conv<k>/bn<k> (k = 1..5) in the zoo's left/right sequences.
_SHUFFLE_DOWN = ("left.0", "left.1", "right.0", "right.1", "right.2")

Rule = tuple[str, "str | Callable[[re.Match], str]"]

# Renaming rules per zoo module (the family of a registered model): (pattern, replacement) applied
# in order to each key. Every rule leaves a key already in the zoo's naming unchanged, so a state
# dict this pipeline wrote passes through as it is.
_RULES: dict[str, list[Rule]] = {
    "resnet_cifar": [(r"\.downsample\.", ".shortcut."), (r"^fc\.", "classifier.")],
    "wrn": [(r"^(block\d+)\.layer\.", r"\1."), (r"\.convShortcut\.", ".shortcut."), (r"^bn1\.", "bn."),
            (r"^fc\.", "classifier.")],
    "vgg": [],
    "mobilenetv2": [
        (r"^conv1\.(\d+)\.", r"features.\1."),
        (r"^blocks\.(\d+)\.(\d+)\.", lambda m: f"features.{_MOBILENET_START[int(m[1])] + int(m[2])}."),
        (r"^conv2\.(\d+)\.", lambda m: f"features.{_MOBILENET_LAST + int(m[1])}."),
        (r"^classifier\.0\.", "classifier."),
    ],
    "shufflenetv1": [(r"^linear\.", "classifier.")],
    "shufflenetv2": [
        # (?=[a-z]): a parameter name follows (conv1.weight), not the zoo's sequence index (conv1.0.weight)
        (r"^(conv|bn)([12])\.(?=[a-z])", lambda m: f"conv{m[2]}.{0 if m[1] == 'conv' else 1}."),
        (r"^(layer\d)\.0\.(conv|bn)(\d)\.(?=[a-z])",
         lambda m: f"{m[1]}.0.{_SHUFFLE_DOWN[int(m[3]) - 1]}.{0 if m[2] == 'conv' else 1}."),
        (r"^(layer\d)\.(\d+)\.(conv|bn)(\d)\.(?=[a-z])",
         lambda m: f"{m[1]}.{m[2]}.branch.{int(m[4]) - 1}.{0 if m[3] == 'conv' else 1}."),
        (r"^linear\.", "classifier."),
    ],
    # torchvision's own ResNets: the zoo wraps the backbone and moves its fc to classifier
    "torchvision_resnet": [(r"^fc\.", "classifier."), (r"^(?!backbone\.|classifier\.)", "backbone.")],
}


def family(model_name: str) -> str:
    """The zoo module that defines ``model_name`` (resnet_cifar, wrn, vgg, ...)."""
    return MODELS.get(model_name).__module__.rsplit(".", 1)[-1]


def zoo_state_dict(model_name: str, state_dict: dict[str, torch.Tensor], model: nn.Module,
                   source: str) -> dict[str, torch.Tensor]:
    """``state_dict`` (RepDistiller's/mdistiller's or torchvision's layout, or the zoo's own; a
    DataParallel ``module.`` prefix dropped) renamed to the keys of ``model``, the zoo's
    ``model_name``. Keys or shapes that do not fit are one line naming them and ``source``."""
    rules = _RULES.get(family(model_name), [])
    renamed = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    expected = model.state_dict()
    missing = [k for k in expected if k not in renamed]
    unexpected = [k for k in renamed if k not in expected]
    shapes = [f"{k} {tuple(renamed[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in renamed and tuple(renamed[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        problems = [f"{what} {_some(keys)}" for what, keys in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("shapes differ:", shapes)) if keys]
        raise UserError(f"{source} does not fit model {model_name!r} (after renaming its keys to the zoo's): "
                        f"{'; '.join(problems)}")
    return renamed


def _some(items: list[str], shown: int = 4) -> str:
    more = f" (and {len(items) - shown} more)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def load_weights(model: nn.Module, model_name: str, checkpoint: str, where: str) -> dict[str, Any]:
    """Load the weights ``checkpoint`` names (a file, or ``torchvision``) into ``model`` (the zoo's
    ``model_name``); returns their provenance (path or torchvision weights, sha256 of the file).
    ``where``: the config key, for messages."""
    if checkpoint == TORCHVISION:
        state, path, provenance = _torchvision_state(model_name)
    else:
        path, provenance = Path(checkpoint), {"path": checkpoint}
        state = _state_dict(_read(path, where), path, where)
    model.load_state_dict(zoo_state_dict(model_name, state, model, f"{where} {path}"))
    return {**provenance, "sha256": sha256(path)}


def _read(path: Path, where: str) -> Any:
    if not path.is_file():
        raise UserError(_missing(path, where))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # RuntimeError, EOFError, OSError or UnpicklingError by where a file breaks
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{where}: {path} is not a readable torch checkpoint ({type(error).__name__}: {detail}); "
                        f"it may be truncated, or hold pickled objects (save only the state dict: "
                        f"torch.save({{'model': model.state_dict()}}, path))") from None


def _state_dict(state: Any, path: Path, where: str) -> dict[str, torch.Tensor]:
    """The state dict in a file: this pipeline's (``state_dict``), RepDistiller's/mdistiller's
    (``model``), or the file itself."""
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        held = ", ".join(sorted(map(str, state)))[:200] if isinstance(state, dict) else type(state).__name__
        raise UserError(f"{where}: {path} holds no state dict (a dict of tensors, alone or under 'model' or "
                        f"'state_dict'); it holds {held}")
    return state


def torchvision_weights(model_name: str):
    """torchvision's default pretrained weights of the architecture ``model_name`` names."""
    import torchvision.models  # here, not at the top: importing torchvision costs every job 1.4 s

    return torchvision.models.get_model_weights(model_name).DEFAULT


def torchvision_file(model_name: str) -> Path:
    """Where torch's hub cache keeps (or will keep) those weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(torchvision_weights(model_name).url).name


def _torchvision_state(model_name: str) -> tuple[dict[str, torch.Tensor], Path, dict[str, Any]]:
    weights = torchvision_weights(model_name)
    state = weights.get_state_dict(progress=False)  # downloads into the hub cache when missing
    return state, torchvision_file(model_name), {"torchvision": f"{type(weights).__name__}.{weights.name}",
                                                 "url": weights.url}


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_problem(entry: dict[str, Any], where: str) -> str | None:
    """Why a teacher's ``checkpoint`` cannot be loaded on this machine, checked before any job
    starts: a missing file. torchvision's weights are downloaded by the job when not cached."""
    checkpoint = entry.get("checkpoint")
    if checkpoint is None or checkpoint == TORCHVISION or Path(checkpoint).is_file():
        return None
    return _missing(checkpoint, where)


def _missing(path: str | Path, where: str) -> str:
    return (f"{where}: {path} does not exist or is no file (a relative path is from the folder the workflow "
            f"runs in); put the trained model's file there or fix the path")


def check_checkpoints(config: dict[str, Any]) -> None:
    """Every teacher checkpoint of a validated config is a file here (the workflow's ``onstart``:
    a dry run plans without the files)."""
    for name, entry in config["teachers"].items():
        problem = checkpoint_problem(entry, f"teachers.{name}.checkpoint")
        if problem:
            raise UserError(problem)
