"""Training and test splits as the training loop sees them.

``TensorSplit`` holds a whole split as one uint8 tensor (datasets that fit in memory: MNIST-like,
CIFAR, SVHN) and augments a batch at a time with tensor ops, so a subset is only an index tensor
and the loader never becomes the bottleneck. ``Dataset`` bundles both splits with what every
output records about the data: its name and fingerprint.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator, Protocol

import torch
import torch.nn.functional as F

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, labels, canonical indices


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding by ``crop_padding`` pixels, and random horizontal flip."""

    crop_padding: int = 0
    flip: bool = False


class Split(Protocol):
    labels: torch.Tensor  # int64, canonical order

    def __len__(self) -> int: ...

    def batches(
        self,
        indices: torch.Tensor,
        batch_size: int,
        *,
        device: torch.device,
        order: torch.Generator | None = None,
        augment: Augment | None = None,
        augment_rng: torch.Generator | None = None,
        views: "Views | None" = None,
    ) -> Iterator[Batch]: ...

    def head(self, n: int) -> "Split": ...

    def fingerprint_parts(self) -> list[bytes]: ...


@dataclass
class TensorSplit:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # The split copied once to each device it is used on (uint8: CIFAR-10 is 150 MB), so that a
    # GPU never waits on host-to-device copies of batches.
    _on_device: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> "TensorSplit":
        return TensorSplit(self.images[:n], self.labels[:n], self.mean, self.std)

    def fingerprint_parts(self) -> list[bytes]:
        return [str(tuple(self.images.shape)).encode(), self.labels.numpy().tobytes()]

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels on ``device`` (copied there once)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.images, self.labels
        if device not in self._on_device:
            self._on_device[device] = (self.images.to(device), self.labels.to(device))
        return self._on_device[device]

    def batches(self, indices, batch_size, *, device, order=None, augment=None, augment_rng=None, views=None):
        """Yield batches of ``indices`` (shuffled with ``order`` when given), gathered, augmented
        and normalised on ``device`` from the split held there. The last batch may be smaller: no
        sample is silently dropped. With ``views`` (one per sample of the split), each sample gets
        its fixed view instead of a random one."""
        if order is not None:
            indices = indices[torch.randperm(len(indices), generator=order)]
        images, labels = self.on(device)
        indices = indices.to(images.device)
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            x = images[idx]
            if augment is not None:
                x = apply_views(x, augment, views[idx]) if views is not None else augment_batch(x, augment, augment_rng)
            yield x.float().div_(255).sub_(mean).div_(std), labels[idx], idx


@dataclass
class PixelSplit(TensorSplit):
    """A ``TensorSplit`` read from a user's files, whose fingerprint includes a hash of its pixels:
    other images under the same shapes and labels are other data."""

    def head(self, n: int) -> "PixelSplit":
        return PixelSplit(self.images[:n], self.labels[:n], self.mean, self.std)

    def fingerprint_parts(self) -> list[bytes]:
        return [*super().fingerprint_parts(), hashlib.sha256(self.images.contiguous().numpy().tobytes()).digest()]


@dataclass(frozen=True)
class Views:
    """Fixed augmentations, one per sample: the offsets of its crop in the padded image
    (``crop``, (N, 2) as rows, columns) and whether it is flipped (``flip``, (N,))."""

    crop: torch.Tensor
    flip: torch.Tensor

    def __getitem__(self, idx: torch.Tensor) -> "Views":
        return Views(self.crop[idx], self.flip[idx])

    def to(self, device: torch.device) -> "Views":
        return Views(self.crop.to(device), self.flip.to(device))


def random_views(n: int, augment: Augment, rng: torch.Generator | None) -> Views:
    """Random crop offsets and flips of ``n`` samples (on the CPU, so a seed gives the same views
    on every device)."""
    p = augment.crop_padding
    dy = torch.randint(0, 2 * p + 1, (n,), generator=rng) if p > 0 else torch.zeros(n, dtype=torch.long)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=rng) if p > 0 else torch.zeros(n, dtype=torch.long)
    flip = torch.rand(n, generator=rng) < 0.5 if augment.flip else torch.zeros(n, dtype=torch.bool)
    return Views(torch.stack([dy, dx], 1), flip)


def apply_views(x: torch.Tensor, augment: Augment, views: Views) -> torch.Tensor:
    """Crop (of the zero-padded image) and flip a whole uint8 batch with tensor ops on its device."""
    n, _, h, w = x.shape
    p, device = augment.crop_padding, x.device
    if p > 0:
        crop = views.crop.to(device)
        padded = F.pad(x, (p, p, p, p))
        rows = (crop[:, 0, None] + torch.arange(h, device=device))[:, None, :, None]
        cols = (crop[:, 1, None] + torch.arange(w, device=device))[:, None, None, :]
        x = padded[torch.arange(n, device=device)[:, None, None, None],
                   torch.arange(x.shape[1], device=device)[None, :, None, None], rows, cols]
    if augment.flip:
        x = torch.where(views.flip.to(device)[:, None, None, None], x.flip(-1), x)
    return x


def augment_batch(x: torch.Tensor, augment: Augment, rng: torch.Generator | None) -> torch.Tensor:
    """Per-sample random crop and flip of a whole uint8 batch."""
    return apply_views(x, augment, random_views(len(x), augment, rng))


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    in_channels: int
    augment: Augment  # the dataset's standard training augmentation
    # Sorted canonical indices of the training samples held out for validation (empty: none). They
    # stay in ``train`` (a sample's index is its position in the official split) but no stage
    # trains on, scores or selects them.
    held_out: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    # Class names from the data, by label (empty: none known). Not part of the fingerprint: names
    # change no sample or label (a dataset read from files records them in its splits' parts).
    classes: tuple[str, ...] = ()
    # The training labels before ``data.label_noise`` corrupted some (None: no label noise); the
    # noisy ones are ``train.labels``, which every stage trains on.
    clean_labels: torch.Tensor | None = None
    fingerprint: str = field(init=False)

    def __post_init__(self):
        self.classes = tuple(str(c) for c in self.classes)
        if self.classes and len(self.classes) != self.num_classes:
            raise ValueError(f"{len(self.classes)} class names for {self.num_classes} classes")
        h = hashlib.sha256(self.name.encode())
        for part in self.train.fingerprint_parts() + self.test.fingerprint_parts():
            h.update(part)
        if len(self.held_out):  # other held-out samples, other data (no split: the fingerprint as before)
            h.update(b"held_out" + self.held_out.numpy().astype("<i8").tobytes())
        self.fingerprint = h.hexdigest()[:16]

    def class_name(self, label: int) -> str:
        """The name of class ``label``, or "class <label>" where the data names none."""
        label = int(label)
        return self.classes[label] if 0 <= label < len(self.classes) else f"class {label}"

    def class_names(self) -> list[str]:
        """Every class's name, by label."""
        return [self.class_name(c) for c in range(self.num_classes)]

    @property
    def noisy(self) -> torch.Tensor:
        """Whether each training sample's label was corrupted (bool, canonical order; all False without label noise)."""
        if self.clean_labels is None:
            return torch.zeros(len(self.train), dtype=torch.bool)
        return self.train.labels != self.clean_labels

    @property
    def train_indices(self) -> torch.Tensor:
        """Sorted canonical indices of the training samples that are not held out."""
        keep = torch.ones(len(self.train), dtype=torch.bool)
        keep[self.held_out] = False
        return torch.nonzero(keep).flatten()


def hold_out(labels: torch.Tensor, fraction: float, rng: torch.Generator, stratified: bool = True) -> torch.Tensor:
    """Sorted indices of a seeded hold-out of ``fraction`` of the samples: floor(fraction x n) of
    each class (``stratified``), or of all n at random (as prune-then-distill's split)."""
    groups = [torch.nonzero(labels == c).flatten() for c in labels.unique()] if stratified else [torch.arange(len(labels))]
    chosen = [group[torch.randperm(len(group), generator=rng)[: int(fraction * len(group))]] for group in groups]
    return torch.cat(chosen).sort().values
