"""Datasets read from a user's files (npz, image_folder) and Tiny-ImageNet, on files the tests
write; class names from the data; the sizes the workflow plans with."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.data import Augment, check_data, data_options, dataset_size, load_dataset
from pipeline.data import images as images_module
from pipeline.data.imagenet import FolderSplit
from pipeline.data.npz import channel_stats
from pipeline.data.splits import PixelSplit
from pipeline.errors import UserError

TINY = Path(__file__).parent / "configs" / "tiny.yaml"


def load(data: dict, **kwargs):
    return load_dataset(data["dataset"], data.get("root"), options=data_options(data), **kwargs)


# ---------------------------------------------------------------- npz


def write_npz(path, n_train=12, n_test=6, shape=(8, 8, 3), classes=("cat", "dog", "emu"), seed=0, **extra):
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % 3,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % 3,
    }
    if classes is not None:
        arrays["classes"] = np.array(classes)
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


def test_npz_colour_arrays_in_file_order(tmp_path):
    arrays = write_npz(tmp_path / "mine.npz")
    data = load({"dataset": "npz", "path": str(tmp_path / "mine.npz")})
    assert (data.name, data.num_classes, data.in_channels, len(data.train), len(data.test)) == ("npz", 3, 3, 12, 6)
    assert isinstance(data.train, PixelSplit)
    # channels last in the file, (N, C, H, W) in memory: pixel (row 2, col 5, channel 1) of sample 7
    assert data.train.images[7, 1, 2, 5] == arrays["x_train"][7, 2, 5, 1]
    assert data.train.labels.tolist() == (np.arange(12) % 3).tolist()
    assert data.classes == ("cat", "dog", "emu") and data.class_name(2) == "emu"
    assert data.augment == Augment(crop_padding=1, flip=True)  # an eighth of 8 pixels, and flips
    # normalised by the training images' own statistics
    x = arrays["x_train"].reshape(-1, 3) / 255
    assert np.allclose(data.train.mean, x.mean(0), atol=1e-5) and np.allclose(data.train.std, x.std(0), atol=1e-5)


def test_npz_grey_images_augment_and_relative_path(tmp_path):
    write_npz(tmp_path / "digits.npz", shape=(16, 16), classes=None, y_train=np.array([0, 1, 2, 3] * 3))
    data = load({"dataset": "npz", "root": str(tmp_path), "path": "digits.npz", "augment": {"flip": False}})
    assert data.in_channels == 1 and data.train.images.shape == (12, 1, 16, 16)
    assert data.num_classes == 4 and data.classes == () and data.class_name(3) == "class 3"
    assert data.augment == Augment(crop_padding=2, flip=False)
    assert load({"dataset": "npz", "path": str(tmp_path / "digits.npz"),
                 "augment": {"crop_padding": 0, "flip": True}}).augment == Augment(0, True)


def test_npz_fingerprint_follows_the_pixels(tmp_path):
    write_npz(tmp_path / "a.npz", seed=0)
    write_npz(tmp_path / "b.npz", seed=1)  # the same shapes and labels, other pixels
    a = load({"dataset": "npz", "path": str(tmp_path / "a.npz")})
    assert load({"dataset": "npz", "path": str(tmp_path / "a.npz")}).fingerprint == a.fingerprint
    assert load({"dataset": "npz", "path": str(tmp_path / "b.npz")}).fingerprint != a.fingerprint
    small = load({"dataset": "npz", "path": str(tmp_path / "a.npz")}, train_limit=5)
    assert len(small.train) == 5 and isinstance(small.train, PixelSplit) and small.fingerprint != a.fingerprint
    assert small.classes == a.classes  # kept by the limit


def test_npz_size_from_the_headers(tmp_path):
    write_npz(tmp_path / "mine.npz", n_train=12, shape=(8, 8, 3))
    size = dataset_size({"dataset": "npz", "path": str(tmp_path / "mine.npz")})
    assert (size.train, size.channels, size.image_size, size.classes, size.in_memory) == (12, 3, 8, 3, True)
    write_npz(tmp_path / "grey.npz", n_train=9, shape=(10, 10), classes=None)
    size = dataset_size({"dataset": "npz", "path": str(tmp_path / "grey.npz")})
    assert (size.train, size.channels, size.image_size, size.classes) == (9, 1, 10, 3)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.write_text("not a zip"), "is not a readable .npz file"),
    (lambda p: write_npz(p, x_train=np.zeros((12, 8, 8), dtype=np.float32)), "x_train must be uint8"),
    (lambda p: write_npz(p, y_train=np.arange(5)), "y_train must be 12 integer labels"),
    (lambda p: write_npz(p, x_test=np.zeros((6, 9, 9, 3), dtype=np.uint8)), "x_train images are"),
    (lambda p: write_npz(p, classes=("a", "b")), "a label is 2 but classes names only 2"),
    (lambda p: np.savez(p, x_train=np.zeros((1, 2, 2), np.uint8)), "lacks y_train, x_test, y_test"),
])
def test_npz_errors_are_one_line(tmp_path, change, message):
    path = tmp_path / "bad.npz"
    change(path)
    with pytest.raises(UserError, match=message) as error:
        load({"dataset": "npz", "path": str(path)})
    assert "\n" not in str(error.value)


def test_npz_missing_file(tmp_path):
    with pytest.raises(UserError, match="npz file .*nowhere.npz not found; set data.path"):
        load({"dataset": "npz", "path": str(tmp_path / "nowhere.npz")})


def test_npz_batches_are_augmented_like_cifar(tmp_path):
    write_npz(tmp_path / "mine.npz")
    data = load({"dataset": "npz", "path": str(tmp_path / "mine.npz")})
    x, y, idx = next(data.train.batches(torch.arange(12), 4, device=torch.device("cpu"), augment=data.augment,
                                        augment_rng=torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32 and idx.tolist() == [0, 1, 2, 3]


def test_channel_stats_by_hand():
    images = torch.tensor([[[[0, 255]], [[51, 51]]]], dtype=torch.uint8)  # one 1 x 2 image, 2 channels
    mean, std = channel_stats(images, chunk=1)
    assert mean == (0.5, 0.2) and std == (0.5, 1.0)  # a constant channel's std is 1


# ---------------------------------------------------------------- image_folder


def write_tree(root, splits: dict[str, dict[str, int]], size=(12, 10)):
    """Solid-colour PNGs: colour (10 c, 20 i, 30) for image i of class c; returns the colours by path."""
    from PIL import Image

    colours = {}
    for split, classes in splits.items():
        for c, (name, count) in enumerate(sorted(classes.items())):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                colour = (10 * c, 20 * i, 30)
                path = root / split / name / f"{i:02d}.png"
                Image.new("RGB" if i % 2 == 0 else "L", size, colour if i % 2 == 0 else 77).save(path)
                colours[str(path)] = colour if i % 2 == 0 else (77, 77, 77)
    return colours


def test_image_folder_decoded_into_memory(tmp_path):
    colours = write_tree(tmp_path / "tree", {"train": {"lion": 3, "bee": 2}, "test": {"lion": 1, "bee": 2}})
    spec = {"dataset": "image_folder", "path": str(tmp_path / "tree"), "image_size": 8}
    data = load(spec)
    assert (data.num_classes, data.in_channels, len(data.train), len(data.test)) == (2, 3, 5, 3)
    assert data.classes == ("bee", "lion")  # sorted folder names
    assert data.train.labels.tolist() == [0, 0, 1, 1, 1]
    assert isinstance(data.train, PixelSplit) and data.train.images.shape == (5, 3, 8, 8)
    # solid colours survive the fit to 8 x 8; grey images become RGB
    assert data.train.images[3, :, 4, 4].tolist() == [77, 77, 77]
    assert data.train.images[4, :, 0, 0].tolist() == list(colours[str(tmp_path / "tree/train/lion/02.png")])
    assert data.augment == Augment(crop_padding=1, flip=True)
    size = dataset_size(spec)
    assert (size.train, size.channels, size.image_size, size.classes, size.in_memory) == (5, 3, 8, 2, True)


def test_image_folder_streamed_when_too_big(tmp_path, monkeypatch):
    write_tree(tmp_path / "tree", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    monkeypatch.setattr(images_module, "IN_MEMORY_BYTES", 3 * 8 * 8 * 5)  # five 8 x 8 images: six do not fit
    spec = {"dataset": "image_folder", "path": str(tmp_path / "tree"), "image_size": 8}
    data = load(spec)
    assert isinstance(data.train, FolderSplit) and data.train.image_size == 8 and data.classes == ("a", "b")
    x, y, _ = next(data.test.batches(torch.arange(2), 2, device=torch.device("cpu")))
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [0, 1]
    assert dataset_size({**spec, "path": str(tmp_path / "tree") + "/"}).in_memory is False


def test_image_folder_errors(tmp_path):
    write_tree(tmp_path / "tree", {"train": {"a": 1, "b": 1}, "test": {"a": 1, "c": 1}})
    with pytest.raises(UserError, match="has class folders a, c, not those of .*train.*both need the same"):
        load({"dataset": "image_folder", "path": str(tmp_path / "tree"), "image_size": 8})
    with pytest.raises(UserError, match="has no train or test/ folder"):
        load({"dataset": "image_folder", "path": str(tmp_path), "image_size": 8})
    (tmp_path / "tree/train/a/00.png").write_bytes(b"not a png")
    (tmp_path / "tree/test/c").rename(tmp_path / "tree/test/b")
    with pytest.raises(UserError, match="00.png: cannot read image"):
        load({"dataset": "image_folder", "path": str(tmp_path / "tree"), "image_size": 8})


# ---------------------------------------------------------------- Tiny-ImageNet


def write_tiny_imagenet(root, wnids=("n03", "n01", "n02"), per_class=4):
    """The official layout in miniature: 64 x 64 JPEGs of colour (40 c, 10 i, 0) for class c (sorted), image i."""
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\ttench\nn09\tunused\n")
    for c, wnid in enumerate(sorted(wnids)):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(per_class):
            Image.new("RGB", (64, 64), (40 * c, 10 * i, 0)).save(images / f"{wnid}_{i}.JPEG", quality=100)
    lines = []
    for i, wnid in enumerate(["n02", "n03", "n01", "n02", "n01"]):  # validation files, their classes
        Image.new("RGB", (64, 64), (40 * sorted(wnids).index(wnid), 0, 200)).save(folder / "val/images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(reversed(lines)) + "\n")
    return folder


def test_tiny_imagenet_layout(tmp_path):
    write_tiny_imagenet(tmp_path)
    data = load_dataset("tiny_imagenet", tmp_path)
    assert (data.name, data.num_classes, data.in_channels, len(data.train), len(data.test)) == ("tiny_imagenet", 3, 3, 12, 5)
    assert data.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4  # classes sorted by wnid, files by name
    assert data.test.labels.tolist() == [1, 2, 0, 1, 0]  # val_0 .. val_4, whatever the annotations' order
    assert data.train.images.shape == (12, 3, 64, 64)
    # JPEG is lossy: the solid colours are only close
    assert (data.train.images[6, :, 32, 32].int() - torch.tensor([40, 20, 0])).abs().max() <= 3
    assert data.classes == ("goldfish", "tench", "n03")  # first words.txt name, else the wnid
    assert data.augment == Augment(crop_padding=4, flip=True)
    assert load_dataset("tiny_imagenet", tmp_path / "tiny-imagenet-200").fingerprint == data.fingerprint
    size = dataset_size({"dataset": "tiny_imagenet", "root": str(tmp_path)})
    assert (size.train, size.channels, size.image_size, size.classes, size.in_memory) == (12, 3, 64, 3, True)


def test_tiny_imagenet_missing_and_official_size(tmp_path):
    with pytest.raises(UserError, match="Tiny-ImageNet files not found.*tiny-imagenet-200/.*data.download"):
        load_dataset("tiny_imagenet", tmp_path)
    size = dataset_size({"dataset": "tiny_imagenet", "root": str(tmp_path / "none")})  # before its download
    assert (size.train, size.classes, size.image_size) == (100_000, 200, 64)


def test_tiny_imagenet_bad_annotation(tmp_path):
    folder = write_tiny_imagenet(tmp_path)
    (folder / "val/val_annotations.txt").write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match=r"val_annotations.txt line 1: expected .* a wnid of wnids.txt"):
        load_dataset("tiny_imagenet", tmp_path)


# ---------------------------------------------------------------- options and config


def test_options_only_where_the_dataset_takes_them():
    with pytest.raises(UserError, match=r"^config error in data.path: dataset 'cifar10' has no path \(it reads its own files\)$"):
        check_data({"dataset": "cifar10", "path": "x.npz"})
    with pytest.raises(UserError, match=r"^config error in data.image_size: dataset 'npz' has no image_size \(it takes data.path, data.augment\)$"):
        check_data({"dataset": "npz", "path": "x.npz", "image_size": 32})
    with pytest.raises(UserError, match=r"^config error in data.image_size: dataset 'image_folder' needs data.image_size$"):
        check_data({"dataset": "image_folder", "path": "tree"})
    with pytest.raises(UserError, match=r"^config error in data.download: dataset 'image_folder' reads your own files"):
        check_data({"dataset": "image_folder", "path": "tree", "image_size": 32, "download": True})
    check_data({"dataset": "npz", "path": "x.npz", "augment": {"flip": False}, "download": False})
    check_data({"dataset": "tiny_imagenet", "download": True})
    assert data_options({"dataset": "npz", "path": "x.npz", "root": "data", "augment": None}) == {"path": "x.npz"}


def tiny_config(data: dict) -> dict:
    config = yaml.safe_load(TINY.read_text())
    config["data"] = data
    return config


def test_config_with_npz_validates_and_sizes_from_the_file(tmp_path):
    from pipeline.config import validate_config

    write_npz(tmp_path / "mine.npz", n_train=30, shape=(16, 16))
    config = validate_config(tiny_config({"dataset": "npz", "path": str(tmp_path / "mine.npz"),
                                          "augment": {"crop_padding": 2, "flip": False}}))
    assert config["data"]["path"] == str(tmp_path / "mine.npz") and "image_size" not in config["data"]
    # the old datasets' data sections gain no key (their jobs' specs are unchanged)
    assert set(validate_config(tiny_config({"dataset": "fashion_mnist"}))["data"]) == {
        "dataset", "root", "download", "train_limit", "test_limit", "validation_fraction", "validation_seed",
        "validation_stratified"}


@pytest.mark.parametrize("data, message", [
    ({"dataset": "npz"}, r"^config error in data.path: dataset 'npz' needs data.path$"),
    ({"dataset": "npz", "path": "/nowhere.npz"}, r"^npz file /nowhere.npz not found"),
    ({"dataset": "fashion_mnist", "image_size": 32}, r"^config error in data.image_size: dataset 'fashion_mnist' has no image_size"),
    ({"dataset": "npz", "path": "x", "augment": {"crop": 4}}, r"^config error in data.augment: unknown key 'crop'; allowed: crop_padding, flip$"),
    ({"dataset": "npz", "path": "x", "augment": {"crop_padding": -1}}, r"^config error in data.augment.crop_padding: -1 is less than the minimum of 0$"),
    ({"dataset": "image_folder", "path": "x", "image_size": 4}, r"^config error in data.image_size: 4 is less than the minimum of 8$"),
])
def test_config_data_errors_are_one_line(data, message):
    from pipeline.config import validate_config

    with pytest.raises(UserError, match=message):
        validate_config(tiny_config(data))


# ---------------------------------------------------------------- class names


def test_class_names_of_the_fixed_datasets(tmp_path, monkeypatch):
    from pipeline.data import cifar, fashion_mnist

    assert fashion_mnist.CLASSES[0] == "T-shirt/top" and fashion_mnist.CLASSES[9] == "Ankle boot"
    assert cifar.CIFAR10.classes[:2] == ("airplane", "automobile") and len(cifar.CIFAR10.classes) == 10
    import pickle

    (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"apple", b"bee"] + [b"x"] * 98}))
    assert cifar.class_names(tmp_path, cifar.CIFAR100)[:2] == ("apple", "bee")
    assert cifar.class_names(tmp_path / "none", cifar.CIFAR100) == ()


def test_dataset_class_names_must_match_the_classes():
    from pipeline.data import Dataset, TensorSplit

    split = TensorSplit(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]), (0.0,), (1.0,))
    plain = Dataset("d", split, split, 2, 1, Augment())
    named = Dataset("d", split, split, 2, 1, Augment(), classes=("a", "b"))
    assert named.fingerprint == plain.fingerprint  # names are no data
    assert plain.class_names() == ["class 0", "class 1"] and named.class_names() == ["a", "b"]
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        Dataset("d", split, split, 2, 1, Augment(), classes=("a", "b", "c"))


def test_stages_on_npz_data_name_the_classes(tmp_path, monkeypatch):
    """teacher, random scores, a subset, a student and the galleries on a user's arrays: the
    student's per-class table and the gallery rows carry the file's class names."""
    import json

    from pipeline import plots
    from pipeline.io import read_meta, read_table
    from pipeline.results import PER_CLASS
    from pipeline.stages import galleries, scores, students, subsets, teachers

    write_npz(tmp_path / "mine.npz", n_train=30, n_test=9, shape=(16, 16), classes=("ant", "bee", "cow"))
    data = {"dataset": "npz", "root": None, "path": str(tmp_path / "mine.npz")}
    train = {"epochs": 1, "batch_size": 16}
    t = {name: tmp_path / name for name in ("model.pt", "epochs.parquet", "dynamics.parquet", "logits.pt", "class_std.parquet")}
    teachers.main(["--spec", json.dumps({"data": data, "device": "cpu", "name": "t", "teacher": {
        "model": "cnn", "model_args": {"width": 2}, "train": train, "seed": 0}}), "--threads", "1",
        "--model-out", str(t["model.pt"]), "--epochs-out", str(t["epochs.parquet"]), "--dynamics-out",
        str(t["dynamics.parquet"]), "--logits-out", str(t["logits.pt"]), "--class-std-out", str(t["class_std.parquet"])])
    score_file, subset_file = tmp_path / "random.parquet", tmp_path / "subset.parquet"
    scores.main(["--spec", json.dumps({"data": data, "device": "cpu", "scorer": "random", "params": {}, "seed": 0,
                                       "batch_size": 32}), "--threads", "1", "--teacher", str(t["model.pt"]),
                 "--dynamics", str(t["dynamics.parquet"]), "--teacher-logits", str(t["logits.pt"]),
                 "--proxies", str(t["model.pt"]), "--output", str(score_file)])
    subsets.main(["--spec", json.dumps({"scorer": "random", "data": data, "selector": "hardest", "keep_fraction": 0.5,
                                        "class_balanced": True, "seed": 0, "params": {}}),
                  "--scores", str(score_file), "--output", str(subset_file)])
    out = [tmp_path / "student" / name for name in ("epochs.parquet", "run.parquet", "model.pt", "per_class.parquet")]
    students.main(["--spec", json.dumps({"experiment": "x", "data": data, "device": "cpu", "seed": 0,
                                         "student": {"model": "cnn", "model_args": {"width": 2}, "train": train},
                                         "distillation": {"name": "labels", "loss": "ce"}}),
                   "--subset", str(subset_file), "--epochs-out", str(out[0]), "--run-out", str(out[1]),
                   "--model-out", str(out[2]), "--per-class-out", str(out[3])])
    per_class = read_table(out[3])[0]
    assert per_class["class_name"].tolist() == ["ant", "bee", "cow"] and per_class["samples"].tolist() == [3, 3, 3]
    assert list(per_class.columns) == [c for c in PER_CLASS if c in per_class.columns]
    assert read_meta(out[3])["dataset_fingerprint"] == load(data).fingerprint

    shown = {}
    monkeypatch.setattr(plots, "gallery", lambda images, picks, title, path: shown.update(picks=picks, images=images))
    galleries.main(["--spec", json.dumps({"experiment": "x", "data": data}), "--scores", str(score_file),
                    "--subsets", str(subset_file), "--folder", str(tmp_path / "gallery")])
    picks = shown["picks"]
    assert dict(zip(picks["label"], picks["class_name"])) == {0: "ant", 1: "bee", 2: "cow"}
    assert all(image.shape == (16, 16) for image in shown["images"].values())


def test_gallery_rows_are_labelled_by_class_name(tmp_path, monkeypatch):
    import pandas as pd

    from pipeline import plots

    labels = []
    real_subplots = plots.plt.subplots

    def subplots(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        labels.append(axes)
        return fig, axes

    monkeypatch.setattr(plots.plt, "subplots", subplots)
    picks = pd.DataFrame({"label": [0, 1], "group": ["kept", "kept"], "rank": ["hardest", "hardest"],
                          "sample_index": [0, 1], "score": [1.0, 0.5], "scorer": ["el2n", "el2n"]})
    images = {0: np.zeros((4, 4)), 1: np.ones((4, 4))}
    plots.gallery(images, picks.assign(class_name=["T-shirt/top", "Trouser"]), "t", str(tmp_path / "a.png"))
    assert [ax.get_ylabel() for ax in labels[-1][:, 0]] == ["el2n\nT-shirt/top", "el2n\nTrouser"]
    plots.gallery(images, picks, "t", str(tmp_path / "b.png"))  # no names: as before
    assert [ax.get_ylabel() for ax in labels[-1][:, 0]] == ["el2n\nclass 0", "el2n\nclass 1"]


def test_workflow_start_checks_the_users_files(tmp_path):
    """check_files (run when the workflow loads) finds a missing file or tree in one line."""
    from pipeline.data import check_files

    with pytest.raises(UserError, match=r"^npz file .*none.npz not found; set data.path"):
        check_files({"dataset": "npz", "root": None, "path": str(tmp_path / "none.npz"), "augment": {"flip": False}})
    with pytest.raises(UserError, match=r"^image folder .* has no train or test/ folder"):
        check_files({"dataset": "image_folder", "root": None, "path": str(tmp_path), "image_size": 8})
    write_npz(tmp_path / "mine.npz")
    check_files({"dataset": "npz", "root": str(tmp_path), "path": "mine.npz"})
    write_tiny_imagenet(tmp_path / "t")
    check_files({"dataset": "tiny_imagenet", "root": str(tmp_path / "t")})
