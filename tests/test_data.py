"""Dataset loaders on tiny files written in each official format, and TensorSplit batching."""
from __future__ import annotations

import gzip
import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data import DATASETS, Augment, TensorSplit, load_dataset
from pipeline.data import fashion_mnist as fashion_mnist_module
from pipeline.data.imagenet import FolderSplit
from pipeline.data.splits import augment_batch, hold_out
from pipeline.errors import UserError
from pipeline.params import NoParams
from pipeline.seeding import torch_generator

CPU = torch.device("cpu")


def all_batches(split, indices, batch_size, **kwargs):
    return list(split.batches(indices, batch_size, device=CPU, **kwargs))


# ---------------------------------------------------------------- Fashion-MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    train_x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    train_y = np.array([3, 0, 9, 1, 3], dtype=np.uint8)
    test_x = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    test_y = np.array([7, 2, 5], dtype=np.uint8)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(train_x)))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(train_y)))
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(test_x))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(test_y))
    return train_x, train_y, test_x, test_y


@pytest.fixture
def no_system_fashion(tmp_path, monkeypatch):
    missing = tmp_path / "no-system-copy"
    monkeypatch.setattr(fashion_mnist_module, "SYSTEM_DIR", missing)
    return missing


def test_fashion_mnist_reads_idx_files(tmp_path, no_system_fashion):
    train_x, train_y, test_x, test_y = write_fashion(tmp_path, np.random.default_rng(0))
    data = load_dataset("fashion_mnist", root=tmp_path)
    assert (data.name, data.num_classes, data.in_channels) == ("fashion_mnist", 10, 1)
    assert data.train.images.shape == (5, 1, 28, 28) and data.test.images.shape == (3, 1, 28, 28)
    assert data.train.images.dtype == torch.uint8
    assert np.array_equal(data.train.images[:, 0].numpy(), train_x)
    assert np.array_equal(data.test.images[:, 0].numpy(), test_x)
    assert data.train.labels.dtype == torch.int64
    assert data.train.labels.tolist() == train_y.tolist() and data.test.labels.tolist() == test_y.tolist()


def test_fashion_mnist_found_in_subfolder(tmp_path, no_system_fashion):
    train_x, *_ = write_fashion(tmp_path / "FashionMNIST" / "raw", np.random.default_rng(0))
    data = load_dataset("fashion_mnist", root=tmp_path)
    assert np.array_equal(data.train.images[:, 0].numpy(), train_x)


def test_fashion_mnist_limit_and_fingerprint(tmp_path, no_system_fashion):
    train_x, train_y, *_ = write_fashion(tmp_path, np.random.default_rng(0))
    full = load_dataset("fashion_mnist", root=tmp_path)
    assert load_dataset("fashion_mnist", root=tmp_path).fingerprint == full.fingerprint
    small = load_dataset("fashion_mnist", root=tmp_path, train_limit=3)
    assert len(small.train) == 3 and len(small.test) == 3
    assert np.array_equal(small.train.images[:, 0].numpy(), train_x[:3])
    assert small.train.labels.tolist() == train_y[:3].tolist()
    assert small.fingerprint != full.fingerprint


@pytest.mark.parametrize("corrupt", ["magic", "size", "truncated"])
def test_fashion_mnist_corrupt_header(tmp_path, no_system_fashion, corrupt):
    write_fashion(tmp_path, np.random.default_rng(0))
    path = tmp_path / "t10k-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    if corrupt == "magic":
        raw[2] = 0x0D  # float data, not unsigned bytes
    elif corrupt == "size":
        raw[4:8] = (4).to_bytes(4, "big")  # header claims 4 images, file holds 3
    else:
        raw = raw[:10]  # cut inside the three dimension sizes
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte"):
        load_dataset("fashion_mnist", root=tmp_path)


def test_fashion_mnist_missing_files(tmp_path, no_system_fashion):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(UserError) as err:
        load_dataset("fashion_mnist", root=root, download=False)
    message = str(err.value)
    assert str(root) in message and str(root / "fashion-mnist") in message and str(no_system_fashion) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "\n" not in message


def test_unknown_dataset_lists_known():
    with pytest.raises(UserError, match="cifar10.*fashion_mnist.*imagenet.*svhn"):
        load_dataset("cifar11")


def test_datasets_have_no_parameters_of_their_own():
    # a dataset's settings are the config's data section (root, download, limits), checked by the schema
    for name in DATASETS.names():
        assert DATASETS.params_type(name) is NoParams
        assert DATASETS.params(name, {}, f"data.{name}") == NoParams()
    with pytest.raises(UserError, match=r"^unknown parameter 'root' for dataset 'cifar10'; allowed: none$"):
        DATASETS.params("cifar10", {"root": "data"})


# ---------------------------------------------------------------- CIFAR


def write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 3, 32, 32) -> official rows: the red plane, then green, then blue, each row-major."""
    rows = np.zeros((len(images), 3072), dtype=np.uint8)
    for i, image in enumerate(images):
        for c in range(3):
            rows[i, c * 1024 : (c + 1) * 1024] = image[c].ravel()
    return rows


def marked_pixel_row(c, row, col, value=200):
    data = np.zeros(3072, dtype=np.uint8)
    data[c * 1024 + row * 32 + col] = value
    return data


def test_cifar10_batches_in_canonical_order(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    sizes = [2, 3, 1, 2, 2]
    train_x = rng.integers(0, 256, (sum(sizes), 3, 32, 32), dtype=np.uint8)
    train_y = rng.integers(0, 10, sum(sizes)).tolist()
    start = 0
    for i, n in enumerate(sizes, 1):
        batch = {b"batch_label": b"training batch", b"data": cifar_rows(train_x[start : start + n]),
                 b"labels": train_y[start : start + n], b"filenames": [b"x.png"] * n}
        write_pickle(folder / f"data_batch_{i}", batch)
        start += n
    test_rows = np.stack([marked_pixel_row(0, 1, 2), marked_pixel_row(1, 30, 5), marked_pixel_row(2, 7, 31)])
    write_pickle(folder / "test_batch", {b"data": test_rows, b"labels": [4, 0, 9]})

    data = load_dataset("cifar10", root=tmp_path)
    assert (data.name, data.num_classes, data.in_channels) == ("cifar10", 10, 3)
    assert data.augment == Augment(crop_padding=4, flip=True)
    assert data.train.images.shape == (10, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert np.array_equal(data.train.images.numpy(), train_x)
    assert data.train.labels.tolist() == train_y
    test = data.test.images
    assert test.shape == (3, 3, 32, 32) and data.test.labels.tolist() == [4, 0, 9]
    for i, (c, row, col) in enumerate([(0, 1, 2), (1, 30, 5), (2, 7, 31)]):
        assert test[i, c, row, col] == 200 and int(test[i].sum()) == 200


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(2)
    train_x = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    write_pickle(tmp_path / "train", {b"data": cifar_rows(train_x), b"fine_labels": [99, 0, 57, 3],
                                      b"coarse_labels": [19, 0, 11, 1]})
    write_pickle(tmp_path / "test", {b"data": marked_pixel_row(2, 31, 0)[None], b"fine_labels": [42],
                                     b"coarse_labels": [5]})
    data = load_dataset("cifar100", root=tmp_path)
    assert (data.num_classes, data.in_channels) == (100, 3)
    assert np.array_equal(data.train.images.numpy(), train_x)
    assert data.train.labels.tolist() == [99, 0, 57, 3] and data.test.labels.tolist() == [42]
    assert data.test.images[0, 2, 31, 0] == 200 and int(data.test.images.sum()) == 200


def test_cifar_errors(tmp_path):
    with pytest.raises(UserError, match="CIFAR-10 files not found.*cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path)
    write_pickle(tmp_path / "train", {b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [0]})
    (tmp_path / "test").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="test is not a CIFAR-100"):
        load_dataset("cifar100", root=tmp_path)


# ---------------------------------------------------------------- SVHN


def svhn_arrays(rng, n):
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    x = np.ascontiguousarray(images.transpose(2, 3, 1, 0))  # official (row, col, channel, sample)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10
    return images, x, y


def check_svhn(data, train_images, train_y, test_images, test_y):
    assert (data.name, data.num_classes, data.in_channels) == ("svhn", 10, 3)
    assert data.augment == Augment(crop_padding=4, flip=False)
    assert data.train.images.shape == (len(train_images), 3, 32, 32)
    assert np.array_equal(data.train.images.numpy(), train_images)
    assert np.array_equal(data.test.images.numpy(), test_images)
    expected = np.where(train_y[:, 0] == 10, 0, train_y[:, 0])
    assert data.train.labels.tolist() == expected.tolist() and data.train.labels[0] == 0
    assert data.test.labels.tolist() == np.where(test_y[:, 0] == 10, 0, test_y[:, 0]).tolist()


def test_svhn_reads_mat_files(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(3)
    train_images, train_x, train_y = svhn_arrays(rng, 6)
    test_images, test_x, test_y = svhn_arrays(rng, 4)
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": train_x, "y": train_y})
    scipy_io.savemat(tmp_path / "test_32x32.mat", {"X": test_x, "y": test_y})
    check_svhn(load_dataset("svhn", root=tmp_path), train_images, train_y, test_images, test_y)


def test_svhn_layout_with_stub_loadmat(tmp_path, monkeypatch):
    """Runs without scipy: only loadmat is replaced (by np.load of an .npz holding X and y)."""
    rng = np.random.default_rng(4)
    train_images, train_x, train_y = svhn_arrays(rng, 5)
    test_images, test_x, test_y = svhn_arrays(rng, 2)
    for name, x, y in [("train_32x32.mat", train_x, train_y), ("test_32x32.mat", test_x, test_y)]:
        with open(tmp_path / name, "wb") as f:
            np.savez(f, X=x, y=y)
    scipy_stub, io_stub = types.ModuleType("scipy"), types.ModuleType("scipy.io")
    io_stub.loadmat = lambda f: dict(np.load(f))
    scipy_stub.io = io_stub
    monkeypatch.setitem(sys.modules, "scipy", scipy_stub)
    monkeypatch.setitem(sys.modules, "scipy.io", io_stub)
    check_svhn(load_dataset("svhn", root=tmp_path), train_images, train_y, test_images, test_y)


def test_svhn_without_scipy(tmp_path, monkeypatch):
    for name in ["train_32x32.mat", "test_32x32.mat"]:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(UserError, match="install .*scipy"):
        load_dataset("svhn", root=tmp_path)


# ---------------------------------------------------------------- ImageNet


def write_image_folders(root, files: dict[str, list[str]], rng):
    """One solid-colour PNG per file; returns {path: colour}."""
    from PIL import Image

    colours = {}
    for wnid, names in files.items():
        (root / wnid).mkdir(parents=True)
        for name in names:
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            path = root / wnid / name
            Image.new("RGB", (20 + len(colours), 18), colour).save(path)
            colours[str(path)] = colour
    return colours


@pytest.fixture
def imagenet_root(tmp_path):
    rng = np.random.default_rng(5)
    train = {"n02": ["b.png", "a.png", "c.png"], "n01": ["z.png", "y.png"], "n10": ["m.png"]}
    colours = write_image_folders(tmp_path / "train", train, rng)
    write_image_folders(tmp_path / "val", {"n10": ["v.png"], "n01": ["v.png"], "n02": ["v.png", "w.png"]}, rng)
    return tmp_path, colours


def test_imagenet_canonical_order(imagenet_root):
    root, _ = imagenet_root
    data = load_dataset("imagenet", root=root)
    assert (data.name, data.num_classes, data.in_channels) == ("imagenet", 3, 3)
    assert data.train.classes == ["n01", "n02", "n10"]
    expected = ["n01/y.png", "n01/z.png", "n02/a.png", "n02/b.png", "n02/c.png", "n10/m.png"]
    assert [p.split("train/")[1] for p, _ in data.train.samples] == expected
    assert data.train.labels.tolist() == [0, 0, 1, 1, 1, 2] and data.train.labels.dtype == torch.int64
    assert data.test.labels.tolist() == [0, 1, 1, 2]
    assert load_dataset("imagenet", root=root).fingerprint == data.fingerprint
    small = load_dataset("imagenet", root=root, train_limit=2)
    assert small.train.labels.tolist() == [0, 0] and small.fingerprint != data.fingerprint


@pytest.mark.parametrize("num_workers", [0, 1])
def test_folder_split_batches(imagenet_root, num_workers):
    root, colours = imagenet_root
    split = FolderSplit.from_folder(root / "train", image_size=16, num_workers=num_workers)
    indices = torch.tensor([5, 0, 3, 2, 4])
    expected = indices[torch.randperm(5, generator=torch.Generator().manual_seed(7))]
    batches = all_batches(split, indices, 2, order=torch.Generator().manual_seed(7))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    assert torch.equal(torch.cat([b[2] for b in batches]), expected)
    mean, std = torch.tensor(split.mean).view(3, 1, 1), torch.tensor(split.std).view(3, 1, 1)
    for x, y, idx in batches:
        assert x.shape == (len(idx), 3, 16, 16) and x.dtype == torch.float32
        assert torch.equal(y, split.labels[idx])
        for image, i in zip(x, idx.tolist()):  # a solid colour stays solid through resize and crop
            colour = torch.tensor(colours[split.samples[i][0]], dtype=torch.float32).view(3, 1, 1)
            torch.testing.assert_close(image, ((colour / 255 - mean) / std).expand(3, 16, 16), atol=0.03, rtol=0)
    train = all_batches(split, indices, 4, order=torch.Generator().manual_seed(7), augment=Augment(flip=True),
                        augment_rng=torch.Generator().manual_seed(1))
    assert torch.equal(torch.cat([b[2] for b in train]), expected)
    assert all(x.shape == (len(idx), 3, 16, 16) for x, _, idx in train)


def test_imagenet_errors(tmp_path, imagenet_root):
    for download in (False, True):
        with pytest.raises(UserError, match="obtained manually.*train/<wnid>"):
            load_dataset("imagenet", root=tmp_path / "nowhere", download=download)
    root, _ = imagenet_root
    (root / "val" / "n99").mkdir()
    (root / "val" / "n99" / "q.png").write_bytes((root / "val" / "n01" / "v.png").read_bytes())
    with pytest.raises(UserError, match="differ"):
        load_dataset("imagenet", root=root)


# ---------------------------------------------------------------- TensorSplit


def tensor_split(n=10, channels=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    return TensorSplit(images, labels, (0.3, 0.6)[:channels], (0.2, 0.4)[:channels])


def normalised(split, idx):
    mean = torch.tensor(split.mean).view(1, -1, 1, 1)
    std = torch.tensor(split.std).view(1, -1, 1, 1)
    return (split.images[idx].float() / 255 - mean) / std


@pytest.mark.parametrize("augment", [None, Augment(crop_padding=0, flip=False)])
def test_tensor_split_batches_without_augmentation(augment):
    split = tensor_split()
    indices = torch.tensor([7, 1, 3, 8, 2, 9, 0])
    batches = all_batches(split, indices, 3, augment=augment, augment_rng=torch.Generator().manual_seed(0))
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    assert torch.equal(torch.cat([b[2] for b in batches]), indices)  # no order: given order kept
    for x, y, idx in batches:
        torch.testing.assert_close(x, normalised(split, idx))
        assert torch.equal(y, split.labels[idx])


def test_tensor_split_epoch_order():
    split = tensor_split(n=50)
    indices = torch.arange(50)

    def epoch(seed, batch_size=8):
        batches = all_batches(split, indices, batch_size, order=torch.Generator().manual_seed(seed))
        assert [len(b[0]) for b in batches] == [8] * 6 + [2]
        return torch.cat([b[2] for b in batches])

    first = epoch(3)
    assert sorted(first.tolist()) == list(range(50))  # every index exactly once, last batch partial
    assert torch.equal(first, epoch(3))
    assert not torch.equal(first, epoch(4))
    assert not torch.equal(first, indices)
    subset = torch.tensor([4, 9, 11, 30, 42])
    got = torch.cat([b[2] for b in all_batches(split, subset, 2, order=torch.Generator().manual_seed(0))])
    assert sorted(got.tolist()) == subset.tolist()


def test_random_crop_is_a_window_of_the_padded_image():
    split = tensor_split(n=40)
    p = 2
    out = augment_batch(split.images, Augment(crop_padding=p), torch.Generator().manual_seed(0))
    assert out.shape == split.images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(split.images, (p, p, p, p))
    offsets = set()
    for i in range(len(out)):
        matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if torch.equal(out[i], padded[i, :, dy : dy + 28, dx : dx + 28])]
        assert len(matches) == 1, f"sample {i}: {matches}"
        offsets.add(matches[0])
    assert len(offsets) > 5  # the offsets really vary per sample


def test_flip_mirrors_about_half():
    split = tensor_split(n=400, channels=1)
    out = augment_batch(split.images, Augment(flip=True), torch.Generator().manual_seed(0))
    flipped = 0
    for image, original in zip(out, split.images):
        same, mirrored = torch.equal(image, original), torch.equal(image, original.flip(-1))
        assert same != mirrored
        flipped += mirrored
    assert 150 <= flipped <= 250


def test_augmented_batches_repeat_with_seed():
    split = tensor_split(n=12)
    augment = Augment(crop_padding=4, flip=True)

    def run(seed):
        return all_batches(split, torch.arange(12), 5, order=torch.Generator().manual_seed(seed),
                           augment=augment, augment_rng=torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x1, x2) and torch.equal(i1, i2) for (x1, _, i1), (x2, _, i2) in zip(a, b))
    assert not all(torch.equal(x1, x2) for (x1, _, _), (x2, _, _) in zip(a, c))


# ---------------------------------------------------------------- validation split


def test_hold_out_is_seeded_and_per_class_or_plain():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 5)
    held = hold_out(labels, 0.2, torch.Generator().manual_seed(0))
    # floor(0.2 n) of each class: 2 of class 0, 4 of class 1, 1 of class 2
    assert torch.bincount(labels[held], minlength=3).tolist() == [2, 4, 1]
    assert torch.equal(held, held.sort().values) and len(held.unique()) == 7
    assert torch.equal(held, hold_out(labels, 0.2, torch.Generator().manual_seed(0)))
    assert not torch.equal(held, hold_out(labels, 0.2, torch.Generator().manual_seed(1)))
    plain = hold_out(labels, 0.2, torch.Generator().manual_seed(0), stratified=False)
    assert len(plain) == 7  # floor(0.2 x 35) of all, whatever their classes


def test_a_validation_split_holds_out_samples_and_changes_the_fingerprint(tmp_path, no_system_fashion):
    train_x, train_y, *_ = write_fashion(tmp_path, np.random.default_rng(0))
    full = load_dataset("fashion_mnist", root=tmp_path)
    assert len(full.held_out) == 0 and torch.equal(full.train_indices, torch.arange(len(full.train)))
    split = load_dataset("fashion_mnist", root=tmp_path, validation_fraction=0.5, validation_seed=3)
    assert len(split.train) == len(full.train)  # a sample's index stays its position in the official split
    assert torch.equal(split.held_out, hold_out(full.train.labels, 0.5, torch_generator(3, "validation")))
    assert sorted([*split.held_out.tolist(), *split.train_indices.tolist()]) == list(range(len(full.train)))
    assert split.fingerprint != full.fingerprint
    assert load_dataset("fashion_mnist", root=tmp_path, validation_fraction=0.5, validation_seed=3).fingerprint == split.fingerprint
    other = load_dataset("fashion_mnist", root=tmp_path, validation_fraction=0.5, validation_stratified=False)
    assert not torch.equal(other.held_out, split.held_out) and other.fingerprint != split.fingerprint


def test_the_download_job_fetches_missing_files_once_and_records_them(tmp_path, no_system_fashion, monkeypatch):
    """pipeline.stages.datasets (data.download: true): files already in data.root are recorded
    as they are; missing ones are fetched by torchvision's downloader into data.root (here a
    stand-in writing what it would: no internet), then recorded."""
    import torchvision

    from pipeline.stages import datasets as download_stage

    calls = []

    def fake_download(root, train, download):  # torchvision.datasets.FashionMNIST(root, train=..., download=True)
        calls.append((root, train, download))
        write_fashion(Path(root) / "FashionMNIST" / "raw", np.random.default_rng(0))

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake_download)
    root = tmp_path / "data"
    spec = json.dumps({"dataset": "fashion_mnist", "root": str(root)})
    download_stage.main(["--spec", spec, "--output", str(tmp_path / "record.json")])
    record = json.loads((tmp_path / "record.json").read_text())
    assert calls == [(str(root), True, True), (str(root), False, True)]
    assert record["folder"] == str(root / "FashionMNIST" / "raw")
    assert sorted(record["files"]) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                       "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert record["files"]["t10k-labels-idx1-ubyte"] == 8 + 3  # idx header + 3 labels
    download_stage.main(["--spec", spec, "--output", str(tmp_path / "again.json")])
    assert len(calls) == 2  # there now: nothing fetched again
