"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 50k training and 10k test 32x32 colour images, 10 or
100 classes, read from the official "python version" pickle batches (plain or gzipped). The
training split is the concatenation of the training batches in their official order."""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from pipeline.data import DATASET_FOLDERS, DATASET_SIZES, DATASETS, DatasetSize
from pipeline.data.files import locate, open_maybe_gzipped
from pipeline.data.splits import Augment, Dataset, TensorSplit
from pipeline.errors import UserError


@dataclass(frozen=True)
class CifarFormat:
    title: str  # for messages
    folder: str  # what the official archive (and torchvision's download) unpacks to
    train: tuple[str, ...]  # batch files, in canonical order
    test: tuple[str, ...]
    label_key: bytes
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    torchvision_class: str  # used only to download
    meta: str = ""  # the archive's file of class names, and its key
    names_key: bytes = b""
    classes: tuple[str, ...] = ()  # the names when the meta file is absent (CIFAR-10's are fixed)


CIFAR10 = CifarFormat(
    "CIFAR-10",
    "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    ("test_batch",),
    b"labels",
    10,
    (0.4914, 0.4822, 0.4465),
    (0.2470, 0.2435, 0.2616),
    "CIFAR10",
    "batches.meta",
    b"label_names",
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)
CIFAR100 = CifarFormat(
    "CIFAR-100",
    "cifar-100-python",
    ("train",),
    ("test",),
    b"fine_labels",
    100,
    (0.5071, 0.4865, 0.4409),
    (0.2673, 0.2564, 0.2762),
    "CIFAR100",
    "meta",
    b"fine_label_names",
)


def read_batches(folder: Path, names: tuple[str, ...], fmt: CifarFormat) -> TensorSplit:
    """Read and concatenate pickle batches: a dict with b"data" (N, 3072) uint8, each row the red,
    then green, then blue 32x32 plane in row-major order, and the labels under ``fmt.label_key``."""
    images, labels = [], []
    for name in names:
        path = folder / name
        try:
            with open_maybe_gzipped(path) as f:
                batch = pickle.load(f, encoding="bytes")
        except Exception as e:  # a corrupt or foreign file can fail in many ways inside pickle
            raise UserError(f"{path} is not a {fmt.title} python-version batch ({e})") from None
        if not isinstance(batch, dict) or b"data" not in batch or fmt.label_key not in batch:
            raise UserError(f"{path} is not a {fmt.title} python-version batch (needs b'data' and {fmt.label_key!r})")
        data = np.asarray(batch[b"data"])
        y = np.asarray(batch[fmt.label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or y.shape != (len(data),):
            raise UserError(
                f"{path}: expected uint8 data of shape (N, 3072) and N labels, "
                f"got {data.dtype} {data.shape} and {y.shape} labels"
            )
        if len(y) and (y.min() < 0 or y.max() >= fmt.num_classes):
            raise UserError(f"{path}: labels must lie in 0..{fmt.num_classes - 1}, found {y.min()}..{y.max()}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(y)
    return TensorSplit(
        torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)), fmt.mean, fmt.std
    )


def class_names(folder: Path, fmt: CifarFormat) -> tuple[str, ...]:
    """The class names of the archive's meta file, else ``fmt.classes`` (none for CIFAR-100)."""
    path = folder / fmt.meta
    if path.exists() or path.with_name(path.name + ".gz").exists():
        try:
            with open_maybe_gzipped(path) as f:
                names = pickle.load(f, encoding="bytes")[fmt.names_key]
            if len(names) == fmt.num_classes:
                return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        except Exception:  # an unreadable meta file: the names are only labels, fall back
            pass
    return fmt.classes


def cifar_folder(fmt: CifarFormat, root: Path | None, download: bool) -> Path:
    candidates = [root, root / fmt.folder] if root else []

    def fetch() -> Path:
        import torchvision

        target = root or Path("data")
        getattr(torchvision.datasets, fmt.torchvision_class)(str(target), train=True, download=True)
        return target / fmt.folder

    return locate(
        fmt.title,
        candidates,
        [*fmt.train, *fmt.test],
        fetch if download else None,
        f"set data.root to a folder holding {fmt.folder}/ (the official python-version archive, unpacked)",
    )


def load_cifar(name: str, fmt: CifarFormat, root: Path | None, download: bool) -> Dataset:
    folder = cifar_folder(fmt, root, download)
    return Dataset(
        name,
        read_batches(folder, fmt.train, fmt),
        read_batches(folder, fmt.test, fmt),
        fmt.num_classes,
        3,
        Augment(crop_padding=4, flip=True),
        classes=class_names(folder, fmt),
    )


DATASET_SIZES.register("cifar10")(DatasetSize(train=50_000, channels=3, image_size=32, classes=10, in_memory=True))
DATASET_SIZES.register("cifar100")(DatasetSize(train=50_000, channels=3, image_size=32, classes=100, in_memory=True))


DATASET_FOLDERS.register("cifar10")(partial(cifar_folder, CIFAR10))
DATASET_FOLDERS.register("cifar100")(partial(cifar_folder, CIFAR100))


@DATASETS.register("cifar10")
def cifar10(root: Path | None, download: bool) -> Dataset:
    return load_cifar("cifar10", CIFAR10, root, download)


@DATASETS.register("cifar100")
def cifar100(root: Path | None, download: bool) -> Dataset:
    return load_cifar("cifar100", CIFAR100, root, download)
