"""SVHN (Netzer et al. 2011), cropped-digits format: 73,257 training and 26,032 test 32x32 colour
images of house-number digits, 10 classes, read from the official train_32x32.mat and
test_32x32.mat (plain or gzipped; reading needs scipy). The official label 10 stands for digit 0 and
becomes class 0. The 531k-image "extra" split is not used."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.data import DATASET_FOLDERS, DATASET_SIZES, DATASETS, DatasetSize
from pipeline.data.files import locate, open_maybe_gzipped
from pipeline.data.splits import Augment, Dataset, TensorSplit
from pipeline.errors import UserError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
MEAN, STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)


def read_mat(path: Path) -> TensorSplit:
    """Parse one split: X is (32, 32, 3, N) uint8 (row, column, channel, sample), y is (N, 1) with
    labels 1..10, where 10 means digit 0."""
    try:
        import scipy.io
    except ImportError:
        raise UserError("reading SVHN needs scipy; install it with `pip install scipy`") from None
    try:
        with open_maybe_gzipped(path) as f:
            mat = scipy.io.loadmat(f)
    except Exception as e:  # scipy raises many types for a file that is not a MATLAB file
        raise UserError(f"{path} is not a readable MATLAB file ({e})") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise UserError(f"{path} is not an SVHN cropped-digits file (needs variables X and y)")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise UserError(
            f"{path}: expected X uint8 (32, 32, 3, N) and N labels, got X {x.dtype} {x.shape} and y {y.shape}"
        )
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise UserError(f"{path}: labels must lie in 1..10, found {y.min()}..{y.max()}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return TensorSplit(images, torch.from_numpy(labels), MEAN, STD)


DATASET_SIZES.register("svhn")(DatasetSize(train=73_257, channels=3, image_size=32, classes=10, in_memory=True))


@DATASET_FOLDERS.register("svhn")
def svhn_folder(root: Path | None, download: bool) -> Path:
    candidates = [root, root / "svhn", root / "SVHN"] if root else []

    def fetch() -> Path:
        from torchvision.datasets import SVHN
        from torchvision.datasets.utils import download_url

        target = root or Path("data")
        for split, name in FILES.items():
            url, _, md5 = SVHN.split_list[split]
            download_url(url, str(target), name, md5)
        return target

    return locate(
        "SVHN",
        candidates,
        list(FILES.values()),
        fetch if download else None,
        "set data.root to a folder holding train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/",
    )


@DATASETS.register("svhn")
def svhn(root: Path | None, download: bool) -> Dataset:
    folder = svhn_folder(root, download)
    return Dataset(
        "svhn",
        read_mat(folder / FILES["train"]),
        read_mat(folder / FILES["test"]),
        10,
        3,
        Augment(crop_padding=4, flip=False),  # digits must not be mirrored
        classes=tuple(str(d) for d in range(10)),  # label d is the digit d (10 read as 0)
    )
