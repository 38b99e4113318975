"""Label noise (``data.label_noise: {rate, kind, seed}``): a seeded share of the training labels
corrupted when the data is loaded, before any stage sees it, so every stage trains, scores and
selects on the noisy labels; the clean ones stay on the ``Dataset`` (``clean_labels``, ``noisy``).

Exactly floor(rate x N) training samples are drawn (seeded by ``seed``) and each gets another label:
``symmetric``: uniformly one of the K - 1 other classes; ``asymmetric``: the next class, c -> c + 1
mod K (pair flipping, Han et al. 2018), the class-dependent noise of a fixed confusion. The noisy
labels are in the fingerprint, so results on noisy data never mix with clean ones."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from pipeline.data.splits import Split, TensorSplit
from pipeline.seeding import torch_generator

KINDS = ("symmetric", "asymmetric")


@dataclass(frozen=True)
class LabelNoise:
    rate: float
    kind: str = "symmetric"
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.rate < 1 or self.kind not in KINDS:
            raise ValueError(f"label noise needs 0 <= rate < 1 and kind in {KINDS}, got {self.rate}, {self.kind!r}")


def corrupt(labels: torch.Tensor, num_classes: int, noise: LabelNoise) -> torch.Tensor:
    """``labels`` with floor(rate x N) of them, drawn with the noise's seed, changed to another class."""
    rng = torch_generator(noise.seed, "label_noise")
    chosen = torch.randperm(len(labels), generator=rng)[: int(noise.rate * len(labels))]
    if noise.kind == "symmetric":
        offset = torch.randint(1, num_classes, (len(chosen),), generator=rng)
    else:
        offset = torch.ones(len(chosen), dtype=torch.long)
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + offset) % num_classes
    return noisy


def with_labels(split: Split, labels: torch.Tensor) -> Split:
    """``split`` with other labels (the same samples in the same order)."""
    if isinstance(split, TensorSplit):
        return replace(split, labels=labels)
    from pipeline.data.imagenet import FolderSplit

    if isinstance(split, FolderSplit):
        samples = [(path, int(label)) for (path, _), label in zip(split.samples, labels.tolist())]
        return FolderSplit(samples, split.classes, image_size=split.image_size, num_workers=split.num_workers,
                           mean=split.mean, std=split.std)
    raise TypeError(f"cannot relabel a {type(split).__name__}")
