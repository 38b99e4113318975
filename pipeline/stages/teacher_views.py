"""Stage 1c: a teacher's outputs on K fixed augmented views of every training sample, computed once
and read by every student that distils from it with ``cached_views: K`` (every keep fraction,
scorer and seed), instead of running the teacher at every step.

View v of sample i is a crop offset and a flip drawn once (``views``, seeded by the teacher's name);
a student trained with cached outputs sees, in epoch e, view e mod K of each sample, and the teacher's
logits on exactly that view, so its targets are what the online teacher would give on those
images. The difference from online KD is the augmentation: K views per sample instead of a new
random one at every presentation. Logits are stored in float16 (K x N x classes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pipeline.checkpoints import load_model
from pipeline.cli import data_meta, parser, setup, stage
from pipeline.data import Dataset
from pipeline.data.splits import TensorSplit, Views, random_views
from pipeline.errors import UserError
from pipeline.io import atomic_write, require_same_data
from pipeline.seeding import torch_generator


@dataclass(frozen=True)
class TeacherViews:
    crop: torch.Tensor  # (K, N, 2) crop offsets
    flip: torch.Tensor  # (K, N) flips
    logits: torch.Tensor  # (K, N, classes) the teacher's logits on each view

    def __len__(self) -> int:
        return len(self.flip)

    def view(self, k: int) -> Views:
        return Views(self.crop[k], self.flip[k])

    def to(self, device: torch.device) -> "TeacherViews":
        return TeacherViews(self.crop.to(device), self.flip.to(device), self.logits.to(device))


def compute_teacher_views(teacher: nn.Module, data: Dataset, k: int, seed_name: str, batch_size: int,
                          device: torch.device) -> TeacherViews:
    """The teacher's logits (eval mode, fp32 then stored as fp16) on ``k`` views of every training
    sample, drawn from a stream seeded by ``seed_name`` (the teacher's name)."""
    if not isinstance(data.train, TensorSplit):
        raise UserError(f"cached teacher views need a dataset held in memory; {data.name} is streamed from files")
    rng = torch_generator(0, "teacher_views", seed_name)
    views = [random_views(len(data.train), data.augment, rng) for _ in range(k)]
    teacher.to(device, memory_format=torch.channels_last).eval()  # (outside inference mode: see train.predict)
    everything = torch.arange(len(data.train))
    with torch.inference_mode():
        logits = torch.stack([
            torch.cat([teacher(x.contiguous(memory_format=torch.channels_last)).float().cpu()
                       for x, _, _ in data.train.batches(everything, batch_size, device=device,
                                                         augment=data.augment, views=view)])
            for view in views
        ])
    return TeacherViews(torch.stack([v.crop for v in views]), torch.stack([v.flip for v in views]), logits.half())


def save_teacher_views(path: str | Path, views: TeacherViews, meta: dict[str, Any]) -> None:
    state = {"crop": views.crop, "flip": views.flip, "logits": views.logits, **meta}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_teacher_views(path: str | Path, dataset_fingerprint: str) -> TeacherViews:
    state = torch.load(path, map_location="cpu", weights_only=True)
    require_same_data(path, state["dataset_fingerprint"], dataset_fingerprint)
    return TeacherViews(state["crop"], state["flip"], state["logits"])


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--teacher", required=True, help="the teacher's checkpoint")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    teacher, _ = load_model(args.teacher, data.fingerprint)
    views = compute_teacher_views(teacher, data, spec["views"], spec["teacher"], spec["batch_size"], device)
    meta = {"stage": "teacher_views", "teacher": spec["teacher"], "views": spec["views"], "spec": spec, **data_meta(data)}
    save_teacher_views(args.output, views, meta)
    print(f"{spec['views']} views of {views.logits.shape[1]} samples")


if __name__ == "__main__":
    main()
