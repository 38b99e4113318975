"""Tiny-ImageNet (Le & Yang 2015, CS231n): 100k training and 10k validation 64 x 64 colour images
of 200 ImageNet classes, in the official archive's layout (``tiny-imagenet-200/``):
``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` with ``val/val_annotations.txt`` (file, wnid,
box per line), ``wnids.txt`` (the 200 class ids) and ``words.txt`` (wnid, names). The validation
split is the test split (the official test split has no labels). Held in memory (1.35 GB decoded).

Canonical order: classes sorted by wnid (label c is the c-th), training files sorted by name within
a class; validation files sorted by name. Class names are the first name of each wnid in
``words.txt``. Augmentation: random 64 x 64 crop after zero padding by 4 and horizontal flip, as
prune-then-distill trains on it (its ``datasets/data_utils.py``: ``get_transform(size=64,
padding=4)``, RandomCrop then RandomHorizontalFlip; some code bases pad by 8). Normalised by the
training images' own per-channel statistics (on the full set about prune-then-distill's (0.480,
0.448, 0.397), (0.276, 0.269, 0.282))."""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.data import DATASET_FOLDERS, DATASET_SIZE_READERS, DATASET_SIZES, DATASETS, DatasetSize
from pipeline.data.files import locate
from pipeline.data.images import decode_all
from pipeline.data.npz import channel_stats
from pipeline.data.splits import Augment, Dataset, PixelSplit
from pipeline.errors import UserError

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
SIZE = 64


def wnids(folder: Path) -> list[str]:
    ids = sorted({line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip()})
    if len(ids) < 2:
        raise UserError(f"{folder / 'wnids.txt'}: needs at least 2 class ids, found {len(ids)}")
    return ids


def train_samples(folder: Path, ids: list[str]) -> list[tuple[Path, int]]:
    samples = []
    for label, wnid in enumerate(ids):
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise UserError(f"{images} not found: every class of wnids.txt needs train/<wnid>/images/")
        samples += [(p, label) for p in sorted(images.iterdir()) if p.is_file()]
    return samples


def val_samples(folder: Path, ids: list[str]) -> list[tuple[Path, int]]:
    labels = {wnid: c for c, wnid in enumerate(ids)}
    annotations = folder / "val" / "val_annotations.txt"
    samples = []
    for n, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in labels:
            raise UserError(f"{annotations} line {n}: expected '<file>\\t<wnid>\\t...' with a wnid of wnids.txt, "
                            f"got {line[:80]!r}")
        samples.append((folder / "val" / "images" / fields[0], labels[fields[1]]))
    return sorted(samples, key=lambda s: s[0].name)


def class_names(folder: Path, ids: list[str]) -> tuple[str, ...]:
    """The first name of each wnid in words.txt (the wnid itself where words.txt lacks it)."""
    words = {}
    path = folder / "words.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            wnid, _, names = line.partition("\t")
            words[wnid.strip()] = names.split(",")[0].strip()
    return tuple(words.get(wnid) or wnid for wnid in ids)


@DATASET_FOLDERS.register("tiny_imagenet")
def tiny_imagenet_folder(root: Path | None, download: bool) -> Path:
    candidates = [root, root / FOLDER] if root else []

    def fetch() -> Path:
        from torchvision.datasets.utils import download_and_extract_archive

        target = root or Path("data")
        download_and_extract_archive(URL, str(target), md5=MD5)
        return target / FOLDER

    return locate("Tiny-ImageNet", candidates, ["wnids.txt", "train", "val/val_annotations.txt"],
                  fetch if download else None,
                  f"set data.root to a folder holding {FOLDER}/ (the official archive, unpacked, from {URL})")


DATASET_SIZES.register("tiny_imagenet")(DatasetSize(train=100_000, channels=3, image_size=SIZE, classes=200, in_memory=True))


@DATASET_SIZE_READERS.register("tiny_imagenet")
def tiny_imagenet_size(data: dict) -> DatasetSize:
    """The official size, or that of the copy found under data.root (a subset of its classes or images)."""
    root = data.get("root")
    try:
        folder = tiny_imagenet_folder(Path(root) if root else None, False)
    except UserError:  # not there yet (a download job fetches it): the official archive's
        return DATASET_SIZES.get("tiny_imagenet")
    ids = wnids(folder)
    return DatasetSize(train=len(train_samples(folder, ids)), channels=3, image_size=SIZE, classes=len(ids), in_memory=True)


@DATASETS.register("tiny_imagenet")
def tiny_imagenet(root: Path | None, download: bool) -> Dataset:
    folder = tiny_imagenet_folder(root, download)
    ids = wnids(folder)
    train, test = train_samples(folder, ids), val_samples(folder, ids)
    x_train = decode_all([p for p, _ in train], SIZE)
    x_test = decode_all([p for p, _ in test], SIZE)
    y_train = torch.tensor([c for _, c in train], dtype=torch.int64)
    y_test = torch.tensor([c for _, c in test], dtype=torch.int64)
    mean, std = channel_stats(x_train)  # the training images' own per-channel statistics
    return Dataset("tiny_imagenet", PixelSplit(x_train, y_train, mean, std), PixelSplit(x_test, y_test, mean, std),
                   len(ids), 3, Augment(crop_padding=4, flip=True), classes=class_names(folder, ids))
