"""Dataset registry. A loader is called as ``loader(root, download)`` and returns a
``Dataset`` whose training split is in canonical order (the official training split's order), so a
sample's position there is its ``sample_index`` in every table.

A dataset has no parameters of its own (its registered Params is ``NoParams``): what a config
says about the data is its ``data`` section (root, download, train_limit, test_limit), the same for
every dataset and checked by the JSON schema.

Adding a dataset: one file in this package with ``@DATASETS.register("name")``, its size under
``DATASET_SIZES`` (what the workflow sizes cluster jobs by, without reading the data), and its
import below.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.data.splits import Augment, Dataset, Split, TensorSplit, hold_out
from pipeline.registry import Registry
from pipeline.seeding import torch_generator

DATASETS: Registry = Registry("dataset")
# Each dataset's folder finder, (root, download) -> the folder holding its files: what the loader
# reads from, and what the workflow checks at load, before any job starts (``check_files``).
DATASET_FOLDERS: Registry = Registry("dataset")


@dataclass(frozen=True)
class DatasetSize:
    train: int  # training samples
    channels: int
    image_size: int  # side of the (square) image the models see
    classes: int
    in_memory: bool  # held whole in memory (TensorSplit) rather than streamed from files


DATASET_SIZES: Registry[DatasetSize] = Registry("dataset")


def load_dataset(
    name: str,
    root: str | Path | None = None,
    download: bool = False,
    train_limit: int | None = None,
    test_limit: int | None = None,
    validation_fraction: float = 0.0,
    validation_seed: int = 0,
    validation_stratified: bool = True,
) -> Dataset:
    """Load a registered dataset; ``train_limit``/``test_limit`` keep only the first n samples of
    a split (tiny runs), which changes the fingerprint, so such results never mix with full ones.
    ``validation_fraction`` > 0 holds out that share of the training samples for validation
    (``Dataset.held_out``, seeded by ``validation_seed``, per class when ``validation_stratified``),
    the same for every stage of an experiment; it changes the fingerprint too."""
    data = DATASETS.get(name)(Path(root) if root else None, download)
    train = data.train.head(train_limit) if train_limit else data.train
    test = data.test.head(test_limit) if test_limit else data.test
    held_out = (hold_out(train.labels, validation_fraction, torch_generator(validation_seed, "validation"),
                         validation_stratified) if validation_fraction else torch.zeros(0, dtype=torch.long))
    if train is data.train and test is data.test and not len(held_out):
        return data
    return Dataset(data.name, train, test, data.num_classes, data.in_channels, data.augment, held_out)


def check_files(data: dict) -> None:
    """One line naming where the files were looked for and how to get them, when a dataset's files
    are missing and ``data.download`` is off (with it on, the first job to need them downloads)."""
    if not data.get("download"):
        root = data.get("root")
        DATASET_FOLDERS.get(data["dataset"])(Path(root) if root else None, False)


from pipeline.data import cifar, fashion_mnist, imagenet, svhn  # noqa: E402,F401

__all__ = ["DATASETS", "DATASET_FOLDERS", "DATASET_SIZES", "check_files", "Augment", "DatasetSize", "Dataset", "Split", "TensorSplit", "load_dataset"]
