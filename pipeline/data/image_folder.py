"""Any tree of images (``data.dataset: image_folder``): ``<data.path>/train/<class>/*`` and
``<data.path>/test/<class>/*``, each file an image PIL decodes, the same class folders in both.
Canonical order is torchvision ImageFolder's: classes sorted by folder name (label c is the c-th,
its folder name the class name), files sorted by path within a class.

Images are seen at ``data.image_size`` (S, required). When both splits decoded (3 x S x S bytes
each) fit in ``pipeline.data.images.IN_MEMORY_BYTES`` (4 GiB: 100k images at 64 x 64, 1.4M at
32 x 32) they are decoded once into memory (each fitted to S x S: shorter side scaled to S, centre
crop) and trained like CIFAR, with ``data.augment`` (default: padding S/8 and flips) and the
training images' own per-channel mean and std; otherwise they are streamed from the files like
ImageNet (``FolderSplit``: random resized crop and flip for training, resize and centre crop for
evaluation, ImageNet's mean and std; ``data.augment`` is then not used)."""
from __future__ import annotations

from pathlib import Path


from pipeline.data import DATASET_FOLDERS, DATASET_OPTIONS, USER_DATASETS, DATASET_SIZE_READERS, DATASETS, DatasetSize
from pipeline.data.images import decode_all, fits_in_memory
from pipeline.data.imagenet import FolderSplit
from pipeline.data.npz import channel_stats, resolve, standard_augment
from pipeline.data.splits import Augment, Dataset, PixelSplit
from pipeline.errors import UserError

LAYOUT = "<data.path>/train/<class>/<image> and <data.path>/test/<class>/<image>"
DATASET_OPTIONS["image_folder"] = (("path", "image_size", "augment"), ("path", "image_size"))
USER_DATASETS.add("image_folder")


@DATASET_FOLDERS.register("image_folder")
def image_folder_folder(root: Path | None, download: bool, path: str | None = None, image_size: int | None = None,
                        augment: dict | None = None) -> Path:
    if path is None:
        raise UserError("config error in data.path: dataset 'image_folder' needs data.path")
    folder = resolve(path, root)
    missing = [s for s in ("train", "test") if not (folder / s).is_dir()]
    if missing:
        raise UserError(f"image folder {folder} has no {' or '.join(missing)}/ folder; lay the images out as {LAYOUT}")
    return folder


def scan(folder: Path, image_size: int) -> tuple[FolderSplit, FolderSplit]:
    """Both splits as file lists (nothing decoded), their class folders checked to agree."""
    train = FolderSplit.from_folder(folder / "train", image_size=image_size)
    test = FolderSplit.from_folder(folder / "test", image_size=image_size)
    if test.classes != train.classes:
        raise UserError(f"{folder / 'test'} has class folders {_few(test.classes)}, not those of {folder / 'train'} "
                        f"({_few(train.classes)}); both need the same <class> folders")
    if len(train.classes) < 2:
        raise UserError(f"{folder / 'train'}: needs at least 2 class folders, found {len(train.classes)}")
    return train, test


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


@DATASET_SIZE_READERS.register("image_folder")
def image_folder_size(data: dict) -> DatasetSize:
    """The size from the tree's file lists (no image opened)."""
    root = data.get("root")
    folder = image_folder_folder(Path(root) if root else None, False, data.get("path"))
    train, test = scan(folder, data["image_size"])
    return DatasetSize(train=len(train), channels=3, image_size=data["image_size"], classes=len(train.classes),
                       in_memory=fits_in_memory(len(train) + len(test), data["image_size"]))


@DATASETS.register("image_folder")
def image_folder(root: Path | None, download: bool, path: str | None = None, image_size: int | None = None,
                 augment: dict | None = None) -> Dataset:
    folder = image_folder_folder(root, download, path)
    if image_size is None:
        raise UserError("config error in data.image_size: dataset 'image_folder' needs data.image_size")
    train, test = scan(folder, image_size)
    classes = tuple(train.classes)
    if not fits_in_memory(len(train) + len(test), image_size):
        return Dataset("image_folder", train, test, len(classes), 3, Augment(crop_padding=0, flip=True), classes=classes)
    x_train = decode_all([p for p, _ in train.samples], image_size)
    x_test = decode_all([p for p, _ in test.samples], image_size)
    mean, std = channel_stats(x_train)
    return Dataset("image_folder", PixelSplit(x_train, train.labels, mean, std), PixelSplit(x_test, test.labels, mean, std),
                   len(classes), 3, standard_augment(image_size, augment), classes=classes)
