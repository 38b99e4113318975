"""A user's arrays (``data.dataset: npz``): one ``.npz`` file at ``data.path`` holding ``x_train``
and ``x_test`` (uint8, N x H x W for grey images or N x H x W x C, channels last), ``y_train`` and
``y_test`` (integer labels 0..K-1) and optionally ``classes`` (K names). Held in memory like CIFAR;
the training split's order is the file's, so a sample's row is its ``sample_index``.

``data.augment: {crop_padding, flip}`` is the training augmentation (default: padding of an eighth
of the image side, 4 for 32 x 32, and flips, the CIFAR convention; set ``flip: false`` for digits
or text). The normalisation is the training images' own per-channel mean and std. The number of
classes is ``len(classes)`` when given, else the largest label + 1 of either split."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from pipeline.data import DATASET_FOLDERS, DATASET_OPTIONS, USER_DATASETS, DATASET_SIZE_READERS, DATASETS, DatasetSize
from pipeline.data.splits import Augment, Dataset, PixelSplit
from pipeline.errors import UserError

KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONS = (("path", "augment"), ("path",))


def resolve(path: str | Path, root: Path | None) -> Path:
    """``data.path`` as given, or under ``data.root`` when relative and found there."""
    path = Path(path)
    if not path.is_absolute() and root is not None and not path.exists() and (Path(root) / path).exists():
        return Path(root) / path
    return path


def standard_augment(image_size: int, augment: dict | None) -> Augment:
    """``data.augment`` over the default: padding of an eighth of the side, and flips."""
    values = {"crop_padding": image_size // 8, "flip": True, **(augment or {})}
    return Augment(crop_padding=int(values["crop_padding"]), flip=bool(values["flip"]))


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to [0, 1] (std 1 for a
    constant channel), summed a chunk of images at a time in float64."""
    c = images.shape[1]
    total, squares, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].transpose(0, 1).reshape(c, -1).double().div_(255)
        total += x.sum(1)
        squares += x.square().sum(1)
        count += x.shape[1]
    if not count:
        return (0.0,) * c, (1.0,) * c
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


def _open(path: Path):
    if not path.is_file():
        raise UserError(f"npz file {path} not found; set data.path to a .npz with {', '.join(KEYS)} (and optionally classes)")
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is not a readable .npz file ({e})") from None
    if not hasattr(arrays, "files"):
        raise UserError(f"{path} holds one array, not an .npz archive of {', '.join(KEYS)}")
    missing = [k for k in KEYS if k not in arrays.files]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)} (it holds {', '.join(arrays.files) or 'nothing'})")
    return arrays


def _images(x: np.ndarray, path: Path, key: str) -> torch.Tensor:
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise UserError(f"{path}: {key} must be uint8 N x H x W or N x H x W x C, got {x.dtype} {x.shape}")
    if x.ndim == 3:
        x = x[..., None]
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _labels(y: np.ndarray, n: int, path: Path, key: str) -> torch.Tensor:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: {key} must be {n} integer labels, got {y.dtype} {y.shape}")
    if len(y) and y.min() < 0:
        raise UserError(f"{path}: {key} has a negative label ({y.min()})")
    return torch.from_numpy(y.astype(np.int64))


def read(path: Path) -> tuple[PixelSplit, PixelSplit, tuple[str, ...], int]:
    """The training and test splits, the class names (may be empty) and the number of classes."""
    arrays = _open(path)
    x_train, x_test = _images(arrays["x_train"], path, "x_train"), _images(arrays["x_test"], path, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(f"{path}: x_train images are {tuple(x_train.shape[1:])} (C, H, W) but x_test's "
                        f"{tuple(x_test.shape[1:])}")
    if x_train.shape[2] != x_train.shape[3]:
        raise UserError(f"{path}: images must be square, got {x_train.shape[2]} x {x_train.shape[3]}")
    y_train = _labels(arrays["y_train"], len(x_train), path, "y_train")
    y_test = _labels(arrays["y_test"], len(x_test), path, "y_test")
    classes = class_names(arrays, path)
    top = int(torch.cat([y_train, y_test, torch.tensor([-1])]).max()) + 1
    if classes and top > len(classes):
        raise UserError(f"{path}: a label is {top - 1} but classes names only {len(classes)}")
    num_classes = len(classes) or top
    if num_classes < 2:
        raise UserError(f"{path}: needs at least 2 classes, found {num_classes}")
    mean, std = channel_stats(x_train)
    return PixelSplit(x_train, y_train, mean, std), PixelSplit(x_test, y_test, mean, std), classes, num_classes


@DATASET_FOLDERS.register("npz")
def npz_folder(root: Path | None, download: bool, path: str | None = None, augment: dict | None = None) -> Path:
    if path is None:
        raise UserError("config error in data.path: dataset 'npz' needs data.path")
    file = resolve(path, root)
    _open(file)
    return file.parent


@DATASET_SIZE_READERS.register("npz")
def npz_size(data: dict) -> DatasetSize:
    """The size from the archive's headers (the arrays are not decompressed)."""
    path = resolve(data["path"], Path(data["root"]) if data.get("root") else None)
    arrays = _open(path)
    shape = _shape(arrays, "x_train")
    channels = shape[3] if len(shape) == 4 else 1
    classes = len(class_names(arrays, path)) or None
    if classes is None:
        classes = int(max(arrays["y_train"].max(initial=-1), arrays["y_test"].max(initial=-1))) + 1
    return DatasetSize(train=shape[0], channels=int(channels), image_size=int(shape[1]), classes=classes, in_memory=True)


def _shape(arrays, key: str) -> tuple[int, ...]:
    """An array's shape read from its .npy header inside the archive."""
    from numpy.lib import format as npy

    with arrays.zip.open(key + ".npy") as f:
        version = npy.read_magic(f)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, _ = read_header(f)
    return tuple(shape)


def class_names(arrays, path: Path) -> tuple[str, ...]:
    """The archive's ``classes`` (strings, one per class), or () without one."""
    if "classes" not in arrays.files:
        return ()
    try:
        names = arrays["classes"]
    except ValueError as e:  # an object array, which allow_pickle=False refuses
        raise UserError(f"{path}: classes must be an array of strings ({e})") from None
    if names.dtype.kind not in "US":
        raise UserError(f"{path}: classes must be an array of strings, got {names.dtype}")
    return tuple(str(c) for c in names.reshape(-1))


DATASET_OPTIONS["npz"] = OPTIONS  # accepted, required
USER_DATASETS.add("npz")


@DATASETS.register("npz")
def npz(root: Path | None, download: bool, path: str | None = None, augment: dict | None = None) -> Dataset:
    if path is None:
        raise UserError("config error in data.path: dataset 'npz' needs data.path")
    file = resolve(path, root)
    train, test, classes, num_classes = read(file)
    return Dataset("npz", train, test, num_classes, train.images.shape[1],
                   standard_augment(train.images.shape[-1], augment), classes=classes)
