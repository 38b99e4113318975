"""Every kind of artifact, read where it is read: a truncated, empty, random or foreign file is one
line that names it and says what to do, never a traceback from deep inside torch or pyarrow."""
import os

import pandas as pd
import pytest
import torch
from tiny import make_model

from pipeline.checkpoints import load_model, load_train_logits, save_model, save_train_logits
from pipeline.errors import UserError
from pipeline.io import read_table, write_table
from pipeline.resume import ResumeFolder
from pipeline.teacher_outputs import CachedViews, load_cached_views, save_cached_views

FINGERPRINT = "0123456789abcdef"


def write_model(path):
    save_model(path, make_model(), {"model": "cnn", "model_args": {"width": 2}, "num_classes": 3, "in_channels": 1,
                                    "dataset_fingerprint": FINGERPRINT})


def write_logits(path):
    save_train_logits(path, torch.zeros(6, 3), {"dataset_fingerprint": FINGERPRINT})


def write_views(path):
    views = CachedViews(torch.zeros(2, 6, 2, dtype=torch.long), torch.zeros(2, 6, dtype=torch.bool),
                        torch.zeros(2, 6, 3, dtype=torch.float16))
    save_cached_views(path, views, {"dataset_fingerprint": FINGERPRINT})


def write_state(path):
    ResumeFolder(path.parent, {"a": 1}).save(path.stem, {"epoch": torch.tensor(3)})


def write_parquet(path):
    write_table(pd.DataFrame({"sample_index": range(6), "score": 0.5}), path, {"dataset_fingerprint": FINGERPRINT})


# kind: (its file name, writer, reader)
KINDS = {
    "model checkpoint": ("model.pt", write_model, lambda path: load_model(path, FINGERPRINT)),
    "file of training-set logits": ("train_logits.pt", write_logits, lambda path: load_train_logits(path, FINGERPRINT)),
    "file of cached teacher views": ("views2.pt", write_views, lambda path: load_cached_views(path, FINGERPRINT)),
    "saved training state": ("fit.pt", write_state, lambda path: ResumeFolder(path.parent, {"a": 1}).load(path.stem)),
    "Parquet table": ("scores.parquet", write_parquet, read_table),
}
DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "random bytes": lambda data: os.urandom(len(data)),
}


def one_line(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_file_is_one_line_naming_it(tmp_path, kind, damage):
    name, write, read = KINDS[kind]
    path = tmp_path / name
    write(path)
    read(path)  # the intact file reads
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    with pytest.raises(UserError) as error:
        read(path)
    message = one_line(error, path)
    assert f"is not a readable {kind}" in message and "delete it and run the workflow again" in message


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "Parquet table"])
def test_a_torch_file_of_another_kind_is_one_line_naming_what_it_lacks(tmp_path, kind):
    name, _, read = KINDS[kind]
    path = tmp_path / name
    other = write_logits if kind != "file of training-set logits" else write_model
    other(path)
    with pytest.raises(UserError) as error:
        read(path)
    message = one_line(error, path)
    assert f"is not a {kind}: it has no " in message


def test_a_missing_file_says_the_workflow_makes_it(tmp_path):
    with pytest.raises(UserError) as error:
        load_model(tmp_path / "model.pt")
    assert one_line(error, tmp_path / "model.pt").endswith("does not exist; run the workflow, which makes it")
