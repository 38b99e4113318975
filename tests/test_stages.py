"""The stage command lines on a slice of real Fashion-MNIST: the same config and seed give
identical outputs, and inputs made on other data are refused with one line."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.stages import scores, students, subsets, teacher_view_std, teachers
from pipeline.checkpoints import load_class_logit_std, load_model
from pipeline.data import load_dataset
from pipeline.io import read_meta, read_table, write_table
from pipeline.losses.kd import class_logit_std
from pipeline.models import build_model
from pipeline.schedules.onecycle import one_cycle_lr
from pipeline.seeding import seeded_init
from pipeline.teacher_outputs import augmented_view_logits

pytestmark = pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
    reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)",
)
DATA = {"dataset": "fashion_mnist", "root": None, "train_limit": 60, "test_limit": 20}
TRAIN = {"epochs": 1, "batch_size": 16}


def train_teacher(folder: Path, seed: int = 0) -> dict[str, Path]:
    out = {name: folder / name for name in ("model.pt", "epochs.parquet", "dynamics.parquet", "logits.pt", "class_std.parquet")}
    spec = {"data": DATA, "device": "cpu", "name": "t",
            "teacher": {"model": "cnn", "model_args": {"width": 2}, "train": TRAIN, "seed": seed}}
    teachers.main(["--spec", json.dumps(spec), "--threads", "1", "--model-out", str(out["model.pt"]),
                  "--epochs-out", str(out["epochs.parquet"]), "--dynamics-out", str(out["dynamics.parquet"]),
                  "--logits-out", str(out["logits.pt"]), "--class-std-out", str(out["class_std.parquet"])])
    return out


def run_score(scorer: str, output: Path, files: dict[str, Path]) -> pd.DataFrame:
    return run_score_params(scorer, {}, output, files)


def run_score_params(scorer: str, params: dict, output: Path, files: dict[str, Path], seed: int = 0) -> pd.DataFrame:
    spec = {"data": DATA, "device": "cpu", "scorer": scorer, "params": params, "seed": seed, "batch_size": 32}
    scores.main(["--spec", json.dumps(spec), "--threads", "1", "--teacher", str(files["model.pt"]),
                "--dynamics", str(files["dynamics.parquet"]), "--teacher-logits", str(files["logits.pt"]),
                "--proxies", str(files["model.pt"]), "--output", str(output)])
    return read_table(output)[0]


def run_subset(scores: Path, output: Path, selector: str = "hardest", seed: int = 0, **draw) -> pd.DataFrame:
    spec = {"scorer": read_meta(scores)["scorer"], "data": DATA, "selector": selector, "keep_fraction": 0.5,
            "class_balanced": True, "seed": seed, "params": {}, **draw}
    subsets.main(["--spec", json.dumps(spec), "--scores", str(scores), "--output", str(output)])
    return read_table(output)[0]


def test_same_config_and_seed_give_identical_scores_and_subsets(tmp_path):
    a, b = train_teacher(tmp_path / "a"), train_teacher(tmp_path / "b")
    assert torch.equal(torch.load(a["logits.pt"])["logits"], torch.load(b["logits.pt"])["logits"])
    dynamics = pd.read_parquet(a["dynamics.parquet"])
    assert len(dynamics) == 60 and list(dynamics["epoch"].unique()) == [1]
    for scorer in ["el2n", "grand", "forgetting", "aum", "teacher_ce", "random"]:
        scores_a = run_score(scorer, tmp_path / f"{scorer}_a.parquet", a)
        scores_b = run_score(scorer, tmp_path / f"{scorer}_b.parquet", b)
        pd.testing.assert_frame_equal(scores_a, scores_b)
        assert list(scores_a["sample_index"]) == list(range(60))
        assert scores_a.dtypes.map(str).to_dict() == {"sample_index": "int64", "label": "int64", "score": "float64",
                                                      "scorer": "str"}
        assert set(scores_a["scorer"]) == {scorer}
        kept_a = run_subset(tmp_path / f"{scorer}_a.parquet", tmp_path / f"{scorer}_subset_a.parquet")
        kept_b = run_subset(tmp_path / f"{scorer}_b.parquet", tmp_path / f"{scorer}_subset_b.parquet")
        pd.testing.assert_frame_equal(kept_a, kept_b)
        assert len(kept_a) == 30
        # the subset's keys are columns too, so that the subsets/ folder reads as one table
        assert kept_a.dtypes.map(str).to_dict() == {"sample_index": "int64", "label": "int64", "scorer": "str",
                                                    "selector": "str", "keep_fraction": "float64"}
        assert set(map(tuple, kept_a[["scorer", "selector", "keep_fraction"]].values)) == {(scorer, "hardest", 0.5)}
    other = train_teacher(tmp_path / "c", seed=1)
    assert not torch.equal(torch.load(a["logits.pt"])["logits"], torch.load(other["logits.pt"])["logits"])


def test_student_refuses_a_subset_of_other_data(tmp_path, capsys):
    files = train_teacher(tmp_path / "teacher")
    scores = tmp_path / "scores.parquet"
    run_score("random", scores, files)
    kept = tmp_path / "subset.parquet"
    run_subset(scores, kept)
    table, meta = read_table(kept)
    write_table(table, kept, {**meta, "dataset_fingerprint": "0123456789abcdef"})
    spec = {"experiment": "x", "data": DATA, "device": "cpu", "seed": 0,
            "student": {"model": "cnn", "model_args": {"width": 2}, "train": TRAIN},
            "distillation": {"name": "labels", "loss": "ce"}}
    outputs = [tmp_path / "student" / name for name in ("epochs.parquet", "run.parquet", "model.pt", "per_class.parquet")]
    with pytest.raises(SystemExit) as exit_info:
        students.main(["--spec", json.dumps(spec), "--subset", str(kept), "--epochs-out", str(outputs[0]),
                      "--run-out", str(outputs[1]), "--model-out", str(outputs[2]), "--per-class-out", str(outputs[3])])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "0123456789abcdef" in error and "\n" not in error
    assert not any(path.exists() for path in outputs)
    assert read_meta(kept)["dataset_fingerprint"] == "0123456789abcdef"  # the input is untouched


def test_proxies_scored_early_train_part_of_their_schedule_and_keep_the_models_at_those_epochs(tmp_path):
    """score_epochs [0, 1] of a 3-epoch schedule: one epoch trained with the 3-epoch learning rates,
    the initialisation and the epoch-1 model written."""
    spec = {"data": DATA, "device": "cpu", "name": "proxy0",
            "teacher": {"model": "cnn", "model_args": {"width": 2}, "train": {"epochs": 3, "batch_size": 16},
                        "seed": 0, "score_epochs": [0, 1]}}
    out = [tmp_path / name for name in ("model.pt", "epochs.parquet", "epoch0.pt", "epoch1.pt")]
    teachers.main(["--spec", json.dumps(spec), "--threads", "1", "--model-out", str(out[0]), "--epochs-out",
                   str(out[1]), "--epoch-models-out", str(out[2]), str(out[3])])
    history = read_table(out[1])[0]
    steps = 4  # 60 samples in batches of 16
    assert history["epoch"].tolist() == [1]
    assert history["lr"].iloc[0] == pytest.approx(one_cycle_lr((steps - 1) / steps / 3, 0.1))  # a 3-epoch schedule
    init, init_spec = load_model(out[2])
    with seeded_init(0, "init"):
        expected = build_model("cnn", 10, 1, width=2)
    assert all(torch.equal(a, b) for a, b in zip(init.state_dict().values(), expected.state_dict().values()))
    assert init_spec["epoch"] == 0
    final, _ = load_model(out[0])
    at_one, spec_one = load_model(out[3])
    assert spec_one["epoch"] == 1 and spec_one["test_acc"] == history["test_acc"].iloc[0]
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(), at_one.state_dict().values()))


def test_class_statistics_of_the_augmented_pass_teacher_ce_scores_and_students_check_the_view(tmp_path, capsys):
    """MDSLR takes its reshaping statistics from the pass it scores: the view-std file of seed 10
    is s[c] of the logits whose CE teacher_ce {view: augmented, view_seed: 10} gives, not of the
    clean images; a student refuses a file of another view than its setting names."""

    files = train_teacher(tmp_path / "teacher")
    output = tmp_path / "class_logit_std_view10.parquet"
    spec = {"data": DATA, "device": "cpu", "teacher": "t", "view_seed": 10, "batch_size": 32}
    teacher_view_std.main(["--spec", json.dumps(spec), "--threads", "1", "--teacher", str(files["model.pt"]),
                           "--output", str(output)])
    table, meta = read_table(output)
    assert (meta["view"], meta["view_seed"]) == ("augmented", 10) and table["samples"].sum() == 60
    scored = run_score_params("teacher_ce", {"view": "augmented", "view_seed": 10}, tmp_path / "ce.parquet", files)
    # the CE the scorer gave is that of the logits the statistics come from
    model, _ = load_model(files["model.pt"], meta["dataset_fingerprint"])
    data = load_dataset("fashion_mnist", train_limit=60, test_limit=20)
    logits = augmented_view_logits(model, data, 10, 32, torch.device("cpu"))
    ce = torch.nn.functional.cross_entropy(logits.double(), data.train.labels, reduction="none")
    assert scored["score"].to_numpy() == pytest.approx(ce.numpy(), rel=1e-6)
    expected = class_logit_std(logits, data.train.labels, 10)
    assert torch.allclose(load_class_logit_std(output, meta["dataset_fingerprint"], 10), expected)
    clean = load_class_logit_std(files["class_std.parquet"], meta["dataset_fingerprint"])
    assert not torch.allclose(clean, expected)

    scores = tmp_path / "scores.parquet"
    run_score("random", scores, files)
    kept = tmp_path / "subset.parquet"
    run_subset(scores, kept)
    student = {"experiment": "x", "data": DATA, "device": "cpu", "seed": 0,
               "student": {"model": "cnn", "model_args": {"width": 2}, "train": TRAIN},
               "distillation": {"name": "kd", "loss": "kd", "teacher": "t", "reshape": True, "reshape_view_seed": 10}}
    outputs = [tmp_path / "student" / name for name in ("epochs.parquet", "run.parquet", "model.pt", "per_class.parquet")]
    with pytest.raises(SystemExit) as exit_info:
        students.main(["--spec", json.dumps(student), "--subset", str(kept), "--teacher", str(files["model.pt"]),
                      "--teacher-class-std", str(files["class_std.parquet"]), "--epochs-out", str(outputs[0]),
                      "--run-out", str(outputs[1]), "--model-out", str(outputs[2]), "--per-class-out", str(outputs[3])])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"error: {files['class_std.parquet']} holds the class statistics of the un-augmented images, not "
                     f"of the augmented view of seed 10; give the file the setting's reshape_view_seed names")
    assert not any(path.exists() for path in outputs)


def test_a_drawn_subset_is_the_subset_of_the_random_scores_of_its_seed(tmp_path):
    """A draw for student seed 10 from the random scorer's file (scored with seed 0) keeps exactly
    what the random scores of seed 10 select with selection seed 10; another seed draws another
    subset; the random selector's draw is seeded by the draw too."""
    files = train_teacher(tmp_path / "teacher")
    scored_0, scored_10 = tmp_path / "random0.parquet", tmp_path / "random10.parquet"
    run_score_params("random", {}, scored_0, files, seed=0)
    run_score_params("random", {}, scored_10, files, seed=10)
    drawn = run_subset(scored_0, tmp_path / "draw10.parquet", seed=10, draw=10)
    expected = run_subset(scored_10, tmp_path / "seed10.parquet", seed=10)
    assert drawn["sample_index"].tolist() == expected["sample_index"].tolist()
    assert set(drawn["draw"]) == {10} and read_meta(tmp_path / "draw10.parquet")["draw"] == 10
    other = run_subset(scored_0, tmp_path / "draw20.parquet", seed=20, draw=20)
    assert other["sample_index"].tolist() != drawn["sample_index"].tolist() and len(other) == len(drawn) == 30
    # the random selector on any scores: the draw's seed, not the scores, decides
    el2n = tmp_path / "el2n.parquet"
    run_score("el2n", el2n, files)
    picked = run_subset(el2n, tmp_path / "el2n_draw10.parquet", selector="random", seed=10, draw=10)
    again = run_subset(scored_0, tmp_path / "random_draw10.parquet", selector="random", seed=10, draw=10)
    assert picked["sample_index"].tolist() == again["sample_index"].tolist()


def test_a_student_refuses_a_subset_other_than_its_spec_names(tmp_path, capsys):
    files = train_teacher(tmp_path / "teacher")
    scores = tmp_path / "scores.parquet"
    run_score("random", scores, files)
    kept = tmp_path / "subset.parquet"
    run_subset(scores, kept)  # hardest by random, f = 0.5, no draw
    spec = {"experiment": "x", "data": DATA, "device": "cpu", "seed": 0,
            "student": {"model": "cnn", "model_args": {"width": 2}, "train": TRAIN},
            "distillation": {"name": "labels", "loss": "ce"},
            "subset": {"scorer": "random", "selector": "hardest", "keep_fraction": 0.3, "draw": None}}
    outputs = [tmp_path / "student" / name for name in ("epochs.parquet", "run.parquet", "model.pt", "per_class.parquet")]
    with pytest.raises(SystemExit) as exit_info:
        students.main(["--spec", json.dumps(spec), "--subset", str(kept), "--epochs-out", str(outputs[0]),
                      "--run-out", str(outputs[1]), "--model-out", str(outputs[2]), "--per-class-out", str(outputs[3])])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: {kept} is the subset with keep_fraction 0.5, not this "
                                               f"student's 0.3; delete it (or run snakemake --forcerun subsets) so "
                                               f"that it is selected again")
    assert not any(path.exists() for path in outputs)
