"""ImageNet (ILSVRC-2012, Russakovsky et al. 2015): 1.28M training and 50k validation images, 1000
classes, read from an ImageFolder layout ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG``.
The validation images must already be sorted into one folder per class (the official archive has
them flat); the validation split is the test split. It cannot be downloaded automatically.

Too big for memory, so ``FolderSplit`` decodes images in DataLoader workers with the standard
transforms (training: random resized crop and horizontal flip; evaluation: resize and centre crop)
instead of augmenting uint8 tensors like ``TensorSplit``."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.data import DATASET_FOLDERS, DATASET_SIZES, DATASETS, DatasetSize
from pipeline.data.files import locate
from pipeline.data.splits import Augment, Dataset
from pipeline.errors import UserError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LAYOUT = "<root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG (validation images sorted into class folders)"


class FolderSplit:
    """A split of image files in canonical order: torchvision ImageFolder's order (classes sorted
    by folder name, files sorted by path within a class), so ``labels[i]`` belongs to sample ``i``.

    ``batches`` treats any ``augment`` that is not None as "use the training transforms"; its
    fields are not read. Images are decoded to uint8 in workers and normalised on ``device``."""

    def __init__(
        self,
        samples: list[tuple[str, int]],
        classes: list[str],
        *,
        image_size: int = 224,
        num_workers: int | None = None,
        mean: tuple[float, ...] = MEAN,
        std: tuple[float, ...] = STD,
    ):
        self.samples = samples
        self.classes = classes
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        self.image_size = image_size
        self.num_workers = min(8, os.cpu_count() or 1) if num_workers is None else num_workers
        self.mean, self.std = mean, std

    @classmethod
    def from_folder(cls, folder: Path, **kwargs) -> "FolderSplit":
        """Scan ``folder/<class>/<image>`` exactly as torchvision's ImageFolder does."""
        from torchvision.datasets import ImageFolder

        try:
            found = ImageFolder(str(folder))
        except FileNotFoundError as e:  # no class folders, or a class folder without images
            raise UserError(f"{folder}: {e}") from None
        return cls(found.samples, found.classes, **kwargs)

    def __len__(self) -> int:
        return len(self.samples)

    def head(self, n: int) -> "FolderSplit":
        return FolderSplit(
            self.samples[:n], self.classes, image_size=self.image_size, num_workers=self.num_workers,
            mean=self.mean, std=self.std,
        )

    def fingerprint_parts(self) -> list[bytes]:
        return [str(len(self)).encode(), "\n".join(self.classes).encode(), self.labels.numpy().tobytes()]

    def transform(self, train: bool):
        from torchvision import transforms as T

        s = self.image_size
        if train:
            return T.Compose([T.RandomResizedCrop(s), T.RandomHorizontalFlip(), T.PILToTensor()])
        return T.Compose([T.Resize(round(s * 256 / 224)), T.CenterCrop(s), T.PILToTensor()])

    def batches(self, indices, batch_size, *, device, order=None, augment=None, augment_rng=None, views=None):
        """Yield batches of ``indices`` (shuffled with ``order`` when given, exactly as
        ``TensorSplit.batches`` does), normalised on ``device``. The last batch may be smaller."""
        from torch.utils.data import DataLoader, Subset

        if views is not None:
            raise UserError("ImageNet is streamed with random views; cached teacher views need a dataset held in memory")

        if order is not None:
            indices = indices[torch.randperm(len(indices), generator=order)]
        device = torch.device(device)
        train = augment is not None
        # Per-sample crop/flip randomness comes from torch's global RNG inside each DataLoader
        # worker (seeded with a base seed plus the worker id), so it cannot use augment_rng
        # directly; only the base seed is drawn from it, which repeats a run for the same
        # num_workers (with num_workers=0 the transforms use this process's global RNG).
        # Evaluation draws the base seed from a private generator so the global RNG is untouched.
        loader = DataLoader(
            Subset(ImageFiles(self.samples, self.transform(train)), indices.tolist()),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
            generator=augment_rng if train else torch.Generator(),
        )
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        for x, y, idx in loader:
            x = x.to(device, non_blocking=True).float().div_(255).sub_(mean).div_(std)
            yield x, y.to(device, non_blocking=True), idx.to(device, non_blocking=True)


class ImageFiles(torch.utils.data.Dataset):
    """Item ``i`` is (transformed image as uint8 (3, H, W), label, i)."""

    def __init__(self, samples: list[tuple[str, int]], transform):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.samples[i]
        try:
            with Image.open(path) as img:
                x = self.transform(img.convert("RGB"))
        except OSError as e:  # includes PIL.UnidentifiedImageError
            raise UserError(f"{path}: cannot read image ({e})") from None
        return x, label, i


DATASET_SIZES.register("imagenet")(DatasetSize(train=1_281_167, channels=3, image_size=224, classes=1000, in_memory=False))


@DATASET_FOLDERS.register("imagenet")
def imagenet_folder(root: Path | None, download: bool) -> Path:
    candidates = [root, root / "imagenet"] if root else []

    def fetch() -> Path:
        looked = ", ".join(str(c) for c in candidates) or "nowhere: data.root is not set"
        why = "data.download cannot fetch it: " if download else ""
        raise UserError(
            f"ImageNet files not found (looked in {looked}); {why}ImageNet must be obtained manually "
            f"from https://image-net.org (ILSVRC-2012) and laid out as {LAYOUT}, with data.root set to <root>"
        )

    # ImageNet is never downloaded, so a missing copy always gets fetch's explanation.
    return locate("ImageNet", candidates, ["train", "val"], fetch, "")


@DATASETS.register("imagenet")
def imagenet(root: Path | None, download: bool) -> Dataset:
    folder = imagenet_folder(root, download)
    train = FolderSplit.from_folder(folder / "train")
    test = FolderSplit.from_folder(folder / "val")
    if test.classes != train.classes:
        raise UserError(
            f"{folder / 'val'} has {len(test.classes)} class folders that differ from the "
            f"{len(train.classes)} in {folder / 'train'}; sort val into the same <wnid> folders as train"
        )
    return Dataset("imagenet", train, test, len(train.classes), 3, Augment(crop_padding=0, flip=True),
                   classes=tuple(train.classes))
