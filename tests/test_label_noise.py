"""data.label_noise: a seeded share of the training labels corrupted at load, the clean ones kept,
the fingerprint changed; the students' noisy_share; the gallery marks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.data import TensorSplit, load_dataset
from pipeline.data.imagenet import FolderSplit
from pipeline.data.noise import LabelNoise, corrupt, with_labels
from pipeline.errors import UserError

TINY = Path(__file__).parent / "configs" / "tiny.yaml"


def write_npz(path, n_train=40, n_test=8, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 8, 8), dtype=np.uint8), y_train=np.arange(n_train) % classes,
             x_test=rng.integers(0, 256, (n_test, 8, 8), dtype=np.uint8), y_test=np.arange(n_test) % classes)


def noisy_data(tmp_path, **noise):
    write_npz(tmp_path / "d.npz")
    return load_dataset("npz", options={"path": str(tmp_path / "d.npz")}, label_noise=noise or None)


def test_symmetric_noise_flips_exactly_its_share_to_other_classes():
    labels = torch.arange(100) % 5
    noisy = corrupt(labels, 5, LabelNoise(0.3, "symmetric", seed=1))
    changed = noisy != labels
    assert int(changed.sum()) == 30  # floor(0.3 x 100), each to another class
    assert noisy.min() >= 0 and noisy.max() <= 4
    assert torch.equal(corrupt(labels, 5, LabelNoise(0.3, "symmetric", seed=1)), noisy)  # seeded
    assert not torch.equal(corrupt(labels, 5, LabelNoise(0.3, "symmetric", seed=2)), noisy)
    # several other classes are used (uniform over the K - 1 others, not one fixed confusion)
    assert len(set(((noisy[changed] - labels[changed]) % 5).tolist())) > 1


def test_asymmetric_noise_moves_to_the_next_class():
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
    noisy = corrupt(labels, 3, LabelNoise(0.5, "asymmetric", seed=0))
    changed = noisy != labels
    assert int(changed.sum()) == 5
    assert torch.equal(noisy[changed], (labels[changed] + 1) % 3)  # 2 -> 0 wraps


def test_rate_zero_and_bad_noise():
    labels = torch.arange(10) % 2
    assert torch.equal(corrupt(labels, 2, LabelNoise(0.0)), labels)
    with pytest.raises(ValueError, match="0 <= rate < 1"):
        LabelNoise(1.0)
    with pytest.raises(ValueError, match="kind in"):
        LabelNoise(0.1, "pairwise")


def test_noise_at_load_keeps_the_clean_labels_and_changes_the_fingerprint(tmp_path):
    clean = noisy_data(tmp_path)
    data = noisy_data(tmp_path, rate=0.25, kind="symmetric", seed=3)
    assert clean.clean_labels is None and not clean.noisy.any()
    assert torch.equal(data.clean_labels, clean.train.labels)
    assert int(data.noisy.sum()) == 10 and torch.equal(data.noisy, data.train.labels != clean.train.labels)
    assert torch.equal(data.test.labels, clean.test.labels)  # only training labels
    assert torch.equal(data.train.images, clean.train.images)
    assert data.fingerprint != clean.fingerprint
    assert noisy_data(tmp_path, rate=0.25, kind="symmetric", seed=3).fingerprint == data.fingerprint
    assert noisy_data(tmp_path, rate=0.25, kind="symmetric", seed=4).fingerprint != data.fingerprint
    assert noisy_data(tmp_path, rate=0.25, kind="asymmetric", seed=3).fingerprint != data.fingerprint
    assert noisy_data(tmp_path, rate=0.0).fingerprint == clean.fingerprint
    # the hold-out is drawn on the clean labels: the same samples as without noise
    kwargs = {"options": {"path": str(tmp_path / "d.npz")}, "validation_fraction": 0.25}
    assert torch.equal(load_dataset("npz", label_noise={"rate": 0.5}, **kwargs).held_out,
                       load_dataset("npz", **kwargs).held_out)


def test_relabelled_splits_keep_their_samples(tmp_path):
    split = TensorSplit(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0]), (0.0,), (1.0,))
    other = with_labels(split, torch.tensor([1, 1, 0]))
    assert other.labels.tolist() == [1, 1, 0] and other.images is split.images and split.labels.tolist() == [0, 1, 0]
    folder = FolderSplit([("a.png", 0), ("b.png", 1)], ["x", "y"], image_size=8, num_workers=0)
    relabelled = with_labels(folder, torch.tensor([1, 0]))
    assert relabelled.samples == [("a.png", 1), ("b.png", 0)] and relabelled.labels.tolist() == [1, 0]
    assert relabelled.image_size == 8 and relabelled.num_workers == 0


def tiny_config(data):
    config = yaml.safe_load(TINY.read_text())
    config["data"] = data
    return config


def test_config_label_noise(tmp_path):
    from pipeline.config import validate_config

    config = validate_config(tiny_config({"dataset": "fashion_mnist", "label_noise": {"rate": 0.2, "kind": "asymmetric"}}))
    assert config["data"]["label_noise"] == {"rate": 0.2, "kind": "asymmetric"}
    assert "label_noise" not in validate_config(tiny_config({"dataset": "fashion_mnist"}))["data"]
    for noise, message in [({"rate": 1}, r"data.label_noise.rate: 1 is greater than or equal to the maximum of 1"),
                           ({"rate": 0.1, "kind": "pair"}, r"data.label_noise.kind: 'pair' is not one of"),
                           ({"kind": "symmetric"}, r"data.label_noise: 'rate' is a required property")]:
        with pytest.raises(UserError, match=f"^config error in {message}"):
            validate_config(tiny_config({"dataset": "fashion_mnist", "label_noise": noise}))


def test_students_report_the_noisy_share_and_the_gallery_marks_noisy_samples(tmp_path, monkeypatch):
    from pipeline import plots
    from pipeline.io import read_table, write_table
    from pipeline.stages import galleries, students

    write_npz(tmp_path / "d.npz", n_train=40, n_test=8, classes=4)
    data_spec = {"dataset": "npz", "root": None, "path": str(tmp_path / "d.npz"),
                 "label_noise": {"rate": 0.25, "seed": 0}}
    data = load_dataset("npz", options={"path": data_spec["path"]}, label_noise=data_spec["label_noise"])
    noisy = torch.nonzero(data.noisy).flatten().tolist()
    clean = torch.nonzero(~data.noisy).flatten().tolist()
    kept = sorted(noisy[:3] + clean[:9])  # 3 noisy of 12: noisy_share 0.25
    subset = tmp_path / "subset.parquet"
    import pandas as pd

    write_table(pd.DataFrame({"sample_index": kept, "label": data.train.labels[kept].numpy(), "scorer": "random",
                              "selector": "hardest", "keep_fraction": 0.3}), subset,
                {"stage": "subsets", "dataset": "npz", "dataset_fingerprint": data.fingerprint, "scorer": "random",
                 "selector": "hardest", "keep_fraction": 0.3, "scores_hash": "x", "kind": "subset"})
    out = [tmp_path / "student" / name for name in ("epochs.parquet", "run.parquet", "model.pt", "per_class.parquet")]
    students.main(["--spec", json.dumps({"experiment": "x", "data": data_spec, "device": "cpu", "seed": 0,
                                         "student": {"model": "cnn", "model_args": {"width": 2},
                                                     "train": {"epochs": 1, "batch_size": 8}},
                                         "distillation": {"name": "labels", "loss": "ce"}}),
                   "--subset", str(subset), "--epochs-out", str(out[0]), "--run-out", str(out[1]),
                   "--model-out", str(out[2]), "--per-class-out", str(out[3])])
    run = read_table(out[1])[0]
    assert run["noisy_share"].iloc[0] == pytest.approx(0.25) and run["dataset_fingerprint"].iloc[0] == data.fingerprint

    scores = tmp_path / "scores.parquet"
    write_table(pd.DataFrame({"sample_index": range(40), "label": data.train.labels.numpy(),
                              "score": np.linspace(0, 1, 40), "scorer": "random"}), scores,
                {"stage": "scores", "dataset": "npz", "dataset_fingerprint": data.fingerprint, "scorer": "random",
                 "kind": "score table"})
    shown = {}
    monkeypatch.setattr(plots, "gallery", lambda images, picks, title, path: shown.update(picks=picks))
    galleries.main(["--spec", json.dumps({"experiment": "x", "data": data_spec}), "--scores", str(scores),
                    "--subsets", str(subset), "--folder", str(tmp_path / "gallery")])
    picks = shown["picks"]
    assert picks["noisy"].tolist() == [i in noisy for i in picks["sample_index"]]


def test_gallery_marks_noisy_samples_in_red(tmp_path, monkeypatch):
    import pandas as pd

    from pipeline import plots

    made = []
    real = plots.plt.subplots
    monkeypatch.setattr(plots.plt, "subplots", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    picks = pd.DataFrame({"label": [0, 0], "group": ["kept", "pruned"], "rank": ["hardest", "hardest"],
                          "sample_index": [3, 5], "score": [1.0, 0.5], "scorer": ["random", "random"],
                          "noisy": [True, False]})
    plots.gallery({3: np.zeros((4, 4)), 5: np.ones((4, 4))}, picks, "t", str(tmp_path / "g.png"))
    axes = made[-1][1]
    assert [ax.get_xlabel() for ax in axes[0]] == ["#3 1 noisy", "#5 0.5"]
    assert axes[0, 0].xaxis.label.get_color() == "red"
