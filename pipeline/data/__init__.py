"""Dataset registry. A loader is called as ``loader(root, download)`` and returns a
``Dataset`` whose training split is in canonical order (the official training split's order), so a
sample's position there is its ``sample_index`` in every table.

A dataset has no parameters of its own (its registered Params is ``NoParams``): what a config
says about the data is its ``data`` section (root, download, train_limit, test_limit), the same for
every dataset and checked by the JSON schema. Datasets read from a user's files (``npz``,
``image_folder``, ``tiny_imagenet``) also take some of ``DATA_OPTIONS`` (``data.path``,
``data.image_size``, ``data.augment``), passed to their loader as keywords; ``DATASET_OPTIONS``
says which each takes, and ``check_data`` refuses the others in one line.

A dataset whose size is known only from its files registers a reader under
``DATASET_SIZE_READERS`` (data section -> ``DatasetSize``) instead of a fixed ``DATASET_SIZES``
entry; ``dataset_size(data)`` answers for every dataset.

Adding a dataset: one file in this package with ``@DATASETS.register("name")``, its size under
``DATASET_SIZES`` (what the workflow sizes cluster jobs by, without reading the data), and its
import below.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.data.splits import Augment, Dataset, Split, TensorSplit, hold_out
from pipeline.errors import UserError
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
# Sizes read from the files (data section -> DatasetSize), for datasets with no fixed size.
DATASET_SIZE_READERS: Registry = Registry("dataset")
# The data options (beyond root, download and the limits) a dataset's loader takes, and which of them it requires.
DATA_OPTIONS = ("path", "image_size", "augment")
DATASET_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}  # name -> (accepted, required)
USER_DATASETS: set[str] = set()  # read from the user's own files at data.path: nothing to download


def dataset_size(data: dict) -> DatasetSize:
    """The size of the dataset a config's ``data`` section names: its registered ``DATASET_SIZES``
    entry, or for a dataset read from a user's files, what its size reader finds there (cached
    per path and options)."""
    name = data["dataset"]
    if name in DATASET_SIZE_READERS:
        return _read_size(name, *(_frozen(data.get(k)) for k in ("root", *DATA_OPTIONS)))
    return DATASET_SIZES.get(name)


def _frozen(value):
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


@functools.cache
def _read_size(name, root, path, image_size, augment) -> DatasetSize:
    data = {"dataset": name, "root": root, "path": path, "image_size": image_size,
            "augment": dict(augment) if augment is not None else None}
    return DATASET_SIZE_READERS.get(name)({k: v for k, v in data.items() if v is not None})


def check_data(data: dict) -> None:
    """A data section's options fit its dataset: one line naming an option the dataset does not
    take, or one it needs and lacks."""
    name = data["dataset"]
    accepted, required = DATASET_OPTIONS.get(name, ((), ()))
    for key in DATA_OPTIONS:
        if key in data and data[key] is not None and key not in accepted:
            takes = f"it takes {', '.join('data.' + k for k in accepted)}" if accepted else "it reads its own files"
            raise UserError(f"config error in data.{key}: dataset {name!r} has no {key} ({takes})")
    for key in required:
        if data.get(key) is None:
            raise UserError(f"config error in data.{key}: dataset {name!r} needs data.{key}")
    if data.get("download") and name in USER_DATASETS:
        raise UserError(f"config error in data.download: dataset {name!r} reads your own files at data.path, "
                        "nothing can be downloaded; remove data.download")


def data_options(data: dict) -> dict:
    """The options of a data section its dataset's loader takes, as keywords."""
    accepted, _ = DATASET_OPTIONS.get(data["dataset"], ((), ()))
    return {k: data[k] for k in accepted if data.get(k) is not None}


def load_dataset(
    name: str,
    root: str | Path | None = None,
    download: bool = False,
    train_limit: int | None = None,
    test_limit: int | None = None,
    validation_fraction: float = 0.0,
    validation_seed: int = 0,
    validation_stratified: bool = True,
    options: dict | None = None,
    label_noise: dict | None = None,
) -> Dataset:
    """Load a registered dataset; ``train_limit``/``test_limit`` keep only the first n samples of
    a split (tiny runs), which changes the fingerprint, so such results never mix with full ones.
    ``validation_fraction`` > 0 holds out that share of the training samples for validation
    (``Dataset.held_out``, seeded by ``validation_seed``, per class when ``validation_stratified``),
    the same for every stage of an experiment; it changes the fingerprint too. ``options`` are the
    data options the dataset takes (``data_options``: path, image_size, augment). ``label_noise``
    (``{rate, kind, seed}``, ``pipeline.data.noise``) corrupts a seeded share of the training labels
    (after the limits; the hold-out is drawn on the clean labels), keeping the clean ones on the
    Dataset; the noisy labels change the fingerprint."""
    data = DATASETS.get(name)(Path(root) if root else None, download, **(options or {}))
    train = data.train.head(train_limit) if train_limit else data.train
    test = data.test.head(test_limit) if test_limit else data.test
    held_out = (hold_out(train.labels, validation_fraction, torch_generator(validation_seed, "validation"),
                         validation_stratified) if validation_fraction else torch.zeros(0, dtype=torch.long))
    clean = None
    if label_noise and label_noise.get("rate"):
        from pipeline.data.noise import LabelNoise, corrupt, with_labels

        clean = train.labels
        train = with_labels(train, corrupt(clean, data.num_classes, LabelNoise(**label_noise)))
    if train is data.train and test is data.test and not len(held_out):
        return data
    return Dataset(data.name, train, test, data.num_classes, data.in_channels, data.augment, held_out, data.classes,
                   clean)


def check_files(data: dict) -> None:
    """One line naming where the files were looked for and how to get them, when a dataset's files
    are missing and ``data.download`` is off (with it on, the first job to need them downloads)."""
    if not data.get("download"):
        root = data.get("root")
        DATASET_FOLDERS.get(data["dataset"])(Path(root) if root else None, False, **data_options(data))


from pipeline.data import cifar, fashion_mnist, image_folder, imagenet, npz, svhn, tiny_imagenet  # noqa: E402,F401

__all__ = ["DATASETS", "DATASET_FOLDERS", "DATASET_SIZES", "DATASET_SIZE_READERS", "DATASET_OPTIONS", "USER_DATASETS", "check_data",
           "check_files", "data_options", "dataset_size", "Augment", "DatasetSize", "Dataset", "Split", "TensorSplit", "load_dataset"]
