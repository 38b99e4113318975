"""Where a student's teacher logits come from while it trains, one object per source:

- ``NoTeacher``: labels only;
- ``OnlineTeacher``: the teacher network run on every batch the student sees, with its BatchNorms
  folded into its convolutions (``pipeline.inference.for_inference``), or, for losses that read its
  layers, such as VID, as it is, its features taken with forward hooks;
- ``CachedViews``: the teacher's logits computed once on K fixed augmented views of every training
  sample (rule ``teacher_views``); in epoch e the student sees view e mod K of each sample and the
  teacher's logits on exactly that view, so no teacher runs during training.

The training loop asks its source for the epoch's views and each batch's logits and never branches
on which source it has. ``problem`` says, before anything runs, why a source cannot serve a loss;
the config check and the loop share it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pipeline.data import Dataset
from pipeline.data.splits import TensorSplit, Views, random_views
from pipeline.errors import UserError
from pipeline.features import LayerOutputs
from pipeline.checkpoints import TEACHER_KEY, load_torch, require_teacher, save_torch
from pipeline.inference import for_inference, predict
from pipeline.losses import DistillLoss
from pipeline.seeding import torch_generator


class TeacherOutputs:
    """The source of a student's teacher logits (base: labels only)."""

    model: nn.Module | None = None  # the teacher network, where one runs (losses with learned parts size from it)
    description: str | None = None  # what the summary's teacher_outputs column says

    @classmethod
    def problem(cls, loss: DistillLoss, augment: bool) -> str | None:
        """Why this source cannot serve ``loss`` (training with or without augmentation), or None."""
        return None

    def start(self, loss: DistillLoss, augment: bool, device: torch.device) -> "TeacherOutputs":
        """Checked against the loss and ready on ``device``; hooks on the layers the loss reads."""
        problem = self.problem(loss, augment)
        if problem is not None:
            raise UserError(f"{type(self).__name__} cannot serve loss {type(loss).__name__}: {problem}")
        return self

    def views(self, epoch: int) -> Views | None:
        """The fixed augmentation of every sample in ``epoch``, or None for random ones."""
        return None

    def logits(self, x: torch.Tensor, idx: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """The teacher's float32 logits on the batch ``x`` (samples ``idx``), or None."""
        return None

    @property
    def features(self) -> dict[str, torch.Tensor]:
        """The outputs of the teacher layers the loss reads, at the latest ``logits`` call."""
        return {}

    def stop(self) -> None:
        """Remove whatever ``start`` attached."""


class NoTeacher(TeacherOutputs):
    @classmethod
    def problem(cls, loss, augment):
        return "the loss needs a teacher" if loss.needs_teacher else None


class OnlineTeacher(TeacherOutputs):
    description = "online"

    def __init__(self, model: nn.Module):
        self.model = model
        self._forward = model  # what runs: the model, or its folded copy
        self._layers = LayerOutputs(None, ())
        self._mode = torch.inference_mode

    @classmethod
    def problem(cls, loss, augment):
        return None if loss.needs_teacher else "the loss uses no teacher"

    def start(self, loss, augment, device):
        super().start(loss, augment, device)
        if loss.teacher_layers:
            # The loss hooks the teacher's own layers (VID), which folding would merge or change;
            # no_grad, not inference mode: the hooks' outputs must be ordinary tensors.
            self.model.to(device, memory_format=torch.channels_last).eval()
            self._forward, self._mode = self.model, torch.no_grad
        else:
            self._forward, self._mode = for_inference(self.model, device), torch.inference_mode
        self._layers = LayerOutputs(self.model, loss.teacher_layers)
        return self

    def logits(self, x, idx, epoch):
        with self._mode():
            logits = self._forward(x)
        return logits.float()  # (a normal tensor again, if made in inference mode)

    @property
    def features(self):
        return self._layers.outputs

    def stop(self):
        self._layers.__exit__()


@dataclass(frozen=True)
class CachedViews(TeacherOutputs):
    crop: torch.Tensor  # (K, N, 2) crop offsets
    flip: torch.Tensor  # (K, N) flips
    cached_logits: torch.Tensor  # (K, N, classes) the teacher's logits on each view (float16)

    @property
    def description(self) -> str:
        return f"cached, {len(self)} views"

    @classmethod
    def problem(cls, loss, augment):
        if not loss.needs_teacher:
            return "the loss uses no teacher"
        if loss.teacher_layers:
            return "the loss reads teacher features, which the cache does not hold (only the teacher's logits)"
        if not augment:
            return ("the cache holds augmented views, but the student trains without augmentation; "
                    "use online KD (cached_views: null)")
        return None

    def __len__(self) -> int:
        return len(self.flip)

    def view(self, k: int) -> Views:
        return Views(self.crop[k], self.flip[k])

    def start(self, loss, augment, device):
        super().start(loss, augment, device)
        return CachedViews(self.crop.to(device), self.flip.to(device), self.cached_logits.to(device))

    def views(self, epoch):
        return self.view(epoch % len(self))

    def logits(self, x, idx, epoch):
        return self.cached_logits[epoch % len(self), idx].float()


def compute_cached_views(teacher: nn.Module, data: Dataset, k: int, seed_name: str, batch_size: int,
                         device: torch.device) -> CachedViews:
    """The teacher's logits (eval mode, fp32 then stored as fp16) on ``k`` views of every training
    sample, drawn from a stream seeded by ``seed_name`` (the teacher's name)."""
    if not isinstance(data.train, TensorSplit):
        raise UserError(f"cached teacher views need a dataset held in memory; {data.name} is streamed from files")
    rng = torch_generator(0, "teacher_views", seed_name)
    views = [random_views(len(data.train), data.augment, rng) for _ in range(k)]
    logits = torch.stack([predict(teacher, data.train, batch_size, device, views=view, augment=data.augment)
                          for view in views])
    return CachedViews(torch.stack([v.crop for v in views]), torch.stack([v.flip for v in views]), logits.half())


def augmented_view_logits(teacher: nn.Module, data: Dataset, view_seed: int, batch_size: int,
                          device: torch.device) -> torch.Tensor:
    """The teacher's logits (eval mode) on one seeded augmented view of every training sample (the
    dataset's random crop and flip), as MDSLR runs its teacher over one pass of the training loader:
    the same pass for a given ``view_seed`` wherever it is computed, so that the teacher-output
    scorers' ``view: augmented`` and the class statistics for reshaping (``reshape_view_seed``) see
    the same images."""
    if not isinstance(data.train, TensorSplit):
        raise UserError(f"a seeded augmented view of the teacher needs a dataset held in memory; {data.name} is streamed from files")
    views = random_views(len(data.train), data.augment, torch_generator(view_seed, "scoring_view"))
    return predict(teacher, data.train, batch_size, device, views=views, augment=data.augment)


def save_cached_views(path: str | Path, views: CachedViews, meta: dict[str, Any]) -> None:
    save_torch(path, {"crop": views.crop, "flip": views.flip, "logits": views.cached_logits, **meta})


def load_cached_views(path: str | Path, dataset_fingerprint: str, teacher_config_hash: str | None = None) -> CachedViews:
    """The cached views in ``path``, made from the data of ``dataset_fingerprint`` and by the teacher
    whose ``config_hash`` is ``teacher_config_hash`` (when given)."""
    state = load_torch(path, "file of cached teacher views", ("crop", "flip", "logits", "dataset_fingerprint"),
                       dataset_fingerprint)
    require_teacher(path, state.get(TEACHER_KEY), teacher_config_hash)
    return CachedViews(state["crop"], state["flip"], state["logits"])
