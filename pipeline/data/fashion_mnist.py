"""Fashion-MNIST (Xiao et al. 2017): 60k training and 10k test 28x28 grey images, 10 classes,
read from the original IDX files (plain or gzipped)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.data import DATASET_FOLDERS, DATASET_SIZES, DATASETS, DatasetSize
from pipeline.data.files import locate, open_maybe_gzipped
from pipeline.data.splits import Augment, Dataset, TensorSplit
from pipeline.errors import UserError

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MEAN, STD = (0.2860,), (0.3530,)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file: magic (0, 0, dtype code, ndim), ndim big-endian uint32 sizes, data."""
    with open_maybe_gzipped(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path}: IDX header is cut short (needs {ndim} dimension sizes)")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UserError(f"{path}: header says shape {shape} but holds {data.size} bytes")
    return data.reshape(shape)


DATASET_SIZES.register("fashion_mnist")(DatasetSize(train=60_000, channels=1, image_size=28, classes=10, in_memory=True))


@DATASET_FOLDERS.register("fashion_mnist")
def fashion_mnist_folder(root: Path | None, download: bool) -> Path:
    candidates = [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"] if root else []
    candidates.append(SYSTEM_DIR)

    def fetch() -> Path:
        import torchvision

        target = root or Path("data")
        torchvision.datasets.FashionMNIST(str(target), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(target), train=False, download=True)
        return target / "FashionMNIST" / "raw"

    return locate(
        "Fashion-MNIST",
        candidates,
        [name for pair in FILES.values() for name in pair],
        fetch if download else None,
        "install it with `apt-get install dataset-fashion-mnist`",
    )


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: Path | None, download: bool) -> Dataset:
    folder = fashion_mnist_folder(root, download)
    splits = {}
    for split, (images, labels) in FILES.items():
        x = torch.from_numpy(read_idx(folder / images).copy()).unsqueeze(1)
        y = torch.from_numpy(read_idx(folder / labels).astype(np.int64))
        splits[split] = TensorSplit(x, y, MEAN, STD)
    return Dataset("fashion_mnist", splits["train"], splits["test"], 10, 1, Augment(crop_padding=2, flip=True),
                   classes=CLASSES)
