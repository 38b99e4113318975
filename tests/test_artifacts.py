"""Every kind of artifact, read where it is read: a truncated, empty, random or foreign file, or one
changed after it was written, is one line that names it and says what to do, never a traceback from
deep inside torch or pyarrow."""
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from tiny import make_model

from pipeline.checkpoints import (TEACHER_KEY, load_class_logit_std, load_model, load_train_logits, save_class_logit_std,
                                  save_model, save_torch, save_train_logits)
from pipeline.errors import UserError
from pipeline.io import read_table, scores_hash, write_table
from pipeline.stages import aggregate, galleries, scores, scores_summary, students, subsets
from pipeline.resume import ResumeFolder
from pipeline.stages.embeddings import load_embeddings, save_embeddings
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


def write_embeddings(path):
    save_embeddings(path, torch.zeros(6, 4), {"dataset_fingerprint": FINGERPRINT})


def write_state(path):
    ResumeFolder(path.parent, {"a": 1}).save(path.stem, {"epoch": torch.tensor(3)})


def write_parquet(path):
    write_table(pd.DataFrame({"sample_index": range(6), "score": 0.5}), path, {"dataset_fingerprint": FINGERPRINT})


# kind: (its file name, writer, reader)
KINDS = {
    "model checkpoint": ("model.pt", write_model, lambda path: load_model(path, FINGERPRINT)),
    "file of training-set logits": ("train_logits.pt", write_logits, lambda path: load_train_logits(path, FINGERPRINT)),
    "file of cached teacher views": ("views2.pt", write_views, lambda path: load_cached_views(path, FINGERPRINT)),
    "file of embeddings": ("embeddings.pt", write_embeddings, lambda path: load_embeddings(path, FINGERPRINT)),
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


# A file changed after it was written: each writer records a content hash, each reader checks it.

def change_torch_file(path):
    """Load a torch file as a user would, change one number in its first tensor, save it back (its
    content_hash kept, as a dict edited in place keeps it)."""
    state = torch.load(path, weights_only=True)

    def first_tensor(value):
        if isinstance(value, torch.Tensor):
            return value
        for item in (value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()):
            found = first_tensor(item)
            if found is not None:
                return found
        return None

    tensor = first_tensor({k: v for k, v in state.items() if k != "content_hash"})
    tensor.view(-1)[0] = tensor.view(-1)[0] + 1 if tensor.dtype != torch.bool else ~tensor.view(-1)[0]
    torch.save(state, path)


def change_table(path):
    """Change one score of a table and write it back with its provenance record (content_hash kept)."""
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[0, "score"] += 1
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata), path)


def drop_hash(path):
    """The file as it was written before content hashes were recorded."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        record = json.loads(table.schema.metadata[b"prune_distill"])
        del record["content_hash"]
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"prune_distill": json.dumps(record).encode()}),
                       path)
    else:
        state = torch.load(path, weights_only=True)
        del state["content_hash"]
        torch.save(state, path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_changed_after_it_was_written_is_one_line(tmp_path, kind):
    name, write, read = KINDS[kind]
    path = tmp_path / name
    write(path)
    (change_table if kind == "Parquet table" else change_torch_file)(path)
    with pytest.raises(UserError) as error:
        read(path)
    message = one_line(error, path)
    assert "was changed after it was written" in message and "delete it and run the workflow again" in message


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_written_before_content_hashes_reads_unchecked(tmp_path, kind):
    """Finished results from before content hashes are read as they are: no job has to run again."""
    name, write, read = KINDS[kind]
    path = tmp_path / name
    write(path)
    drop_hash(path)
    read(path)
    (change_table if kind == "Parquet table" else change_torch_file)(path)
    read(path)  # (nothing to check it against)


def test_tables_of_every_column_type_read_back_with_their_hash(tmp_path):
    frame = pd.DataFrame({
        "int": [1, 2, 3], "float": [0.5, float("nan"), -1.0], "bool": [True, False, True], "text": ["a", "b", "c"],
        "nullable": pd.array([1, None, 3], dtype="Int64"), "maybe_text": ["x", None, "z"], "none": [None] * 3,
        "category": pd.Categorical(["u", "v", "u"]), "ints_and_none": [1, None, 3], 4: ["a column", "named", "4"],
    })
    write_table(frame, tmp_path / "t.parquet", {"stage": "test", "nested": {"2": 1, "10": [1.5, None]}})
    back, meta = read_table(tmp_path / "t.parquet")  # (ints with None come back as floats, the name 4 as "4")
    pd.testing.assert_frame_equal(back, frame.astype({"ints_and_none": float}).rename(columns={4: "4"}))
    assert len(meta["content_hash"]) == 16


def test_a_table_without_the_pipeline_record_is_one_line(tmp_path):
    path = tmp_path / "scores.parquet"
    pd.DataFrame({"sample_index": range(6), "score": 0.5}).to_parquet(path)  # written by pandas: no record
    with pytest.raises(UserError) as error:
        read_table(path)
    assert "has no provenance record" in one_line(error, path)


def test_a_saved_training_state_runs_no_pickled_object(tmp_path):
    """Resume states load with weights_only=True: a pickle that would run code is refused unrun."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    path = tmp_path / "fit.pt"
    folder = ResumeFolder(tmp_path, {"a": 1})
    torch.save({"key": folder.key, "part": "", "state": Payload()}, path)
    with pytest.raises(UserError) as error:
        folder.load("fit")
    assert "is not a readable saved training state" in one_line(error, path)
    assert not marker.exists()


# Every reader checks the dataset fingerprint (or, in the jobs that load no data, the data config)
# and the keys and kind it expects against its own job.

OTHER = "fedcba9876543210"
DATA = {"dataset": "tiny", "train_limit": 6}
SCORERS = {"el2n": {"epoch": 2}}


def model_of(stage):
    def write(path, fingerprint=FINGERPRINT):
        save_model(path, make_model(), {"model": "cnn", "model_args": {"width": 2}, "num_classes": 3, "in_channels": 1,
                                        "dataset_fingerprint": fingerprint, "stage": stage})
    return write


def write_scores(path, fingerprint=FINGERPRINT, data=DATA, scorer="el2n"):
    table = pd.DataFrame({"sample_index": range(6), "label": [0, 1, 2] * 2, "score": np.linspace(0, 1, 6), "scorer": scorer})
    write_table(table, path, {"stage": "scores", "scorer": scorer, "scores_hash": scores_hash(table),
                              "spec": {"data": data, "scorer": scorer, "params": SCORERS.get(scorer, {})},
                              "dataset": "tiny", "dataset_fingerprint": fingerprint})


def write_subset(path, fingerprint=FINGERPRINT):
    table = pd.DataFrame({"sample_index": [0, 4], "label": [0, 1], "scorer": "el2n", "selector": "hardest",
                          "keep_fraction": 0.3})
    write_table(table, path, {"stage": "subsets", "scorer": "el2n", "selector": "hardest", "keep_fraction": 0.3,
                              "draw": None, "scores_hash": "x", "dataset_fingerprint": fingerprint})


def write_dynamics(path, fingerprint=FINGERPRINT):
    table = pd.DataFrame({"sample_index": range(6), "epoch": 1, "correct": True, "margin": 0.5})
    write_table(table, path, {"stage": "teacher", "dataset_fingerprint": fingerprint})


def write_class_std(path, fingerprint=FINGERPRINT):
    save_class_logit_std(path, torch.ones(3), torch.tensor([0, 1, 2]), {"dataset_fingerprint": fingerprint})


def fingerprinted(write):
    return lambda path, fingerprint=FINGERPRINT: write(path) if fingerprint == FINGERPRINT else write_other_data(write, path, fingerprint)


def write_other_data(write, path, fingerprint):
    write(path)
    state = torch.load(path, weights_only=True)
    state["dataset_fingerprint"] = fingerprint
    save_torch(path, {k: v for k, v in state.items() if k != "content_hash"})


MADE_FROM = "was made from data with fingerprint"

# reader: (its file name, a writer of what it reads (path, fingerprint), the reader with this job's
# fingerprint and keys, a file of another kind, the words of its refusal of another data's file)
READERS = {
    "checkpoints.load_model": ("model.pt", model_of("teacher"), lambda p: load_model(p, FINGERPRINT), write_logits, MADE_FROM),
    "checkpoints.load_train_logits": ("train_logits.pt", fingerprinted(write_logits),
                                      lambda p: load_train_logits(p, FINGERPRINT), model_of("teacher"), MADE_FROM),
    "checkpoints.load_class_logit_std": ("class_logit_std.parquet", write_class_std,
                                         lambda p: load_class_logit_std(p, FINGERPRINT), write_dynamics, MADE_FROM),
    "teacher_outputs.load_cached_views": ("views2.pt", fingerprinted(write_views),
                                          lambda p: load_cached_views(p, FINGERPRINT), write_logits, MADE_FROM),
    "embeddings.load_embeddings": ("embeddings.pt", fingerprinted(write_embeddings),
                                   lambda p: load_embeddings(p, FINGERPRINT), write_views, MADE_FROM),
    "scores: teacher": ("model.pt", model_of("teacher"), lambda p: scores.LOADERS["teacher"](p, FINGERPRINT),
                        model_of("students"), MADE_FROM),
    "scores: proxies": ("model.pt", model_of("teacher"), lambda p: scores.LOADERS["proxies"]([p], FINGERPRINT),
                        write_views, MADE_FROM),
    "scores: teacher_logits": ("train_logits.pt", fingerprinted(write_logits),
                               lambda p: scores.LOADERS["teacher_logits"](p, FINGERPRINT), write_views, MADE_FROM),
    "scores: dynamics": ("dynamics.parquet", write_dynamics, lambda p: scores.LOADERS["dynamics"](p, FINGERPRINT),
                         write_subset, MADE_FROM),
    "teacher stages: teacher": ("model.pt", model_of("prune_teacher"),
                                lambda p: load_model(p, FINGERPRINT, teacher=True), model_of("students"), MADE_FROM),
    "subsets.read_scores": ("el2n.parquet", lambda p, fingerprint=FINGERPRINT: write_scores(
        p, fingerprint, DATA if fingerprint == FINGERPRINT else {**DATA, "train_limit": 60}),
                            lambda p: subsets.read_scores(p, "el2n", DATA), write_dynamics, "with data"),
    "students.read_subset": ("keep0.3.parquet", write_subset,
                             lambda p: students.read_subset(p, {"scorer": "el2n", "selector": "hardest",
                                                                "keep_fraction": 0.3, "draw": None}, FINGERPRINT),
                             write_scores, MADE_FROM),
    "galleries.read_scores": ("el2n.parquet", write_scores, lambda p: galleries.read_scores(p, FINGERPRINT),
                              write_subset, MADE_FROM),
    "galleries.read_subset": ("keep0.3.parquet", write_subset, lambda p: galleries.read_subset(p, FINGERPRINT),
                              write_dynamics, MADE_FROM),
    "scores_summary.read_scores": ("el2n.parquet", lambda p, fingerprint=FINGERPRINT: write_scores(
        p, fingerprint, scorer="el2n" if fingerprint == FINGERPRINT else "aum"),
                                   lambda p: scores_summary.read_scores(p, SCORERS), write_dynamics,
                                   "not of one of this experiment's scorers"),
    "resume.ResumeFolder.load": ("fit.pt", write_state, lambda p: ResumeFolder(p.parent, {"a": 1}).load(p.stem),
                                 write_logits, None),
}


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_a_file_of_another_kind_or_other_data_in_one_line(tmp_path, reader):
    name, write, read, other_kind, other_data = READERS[reader]
    path = tmp_path / name
    write(path)
    read(path)  # its own kind, of this job's data, reads
    other_kind(path)
    with pytest.raises(UserError) as error:
        read(path)
    message = one_line(error, path)
    assert ("is not a " in message or "not a teacher's" in message) and "delete it" in message
    if other_data is not None:
        write(path, OTHER)
        with pytest.raises(UserError) as error:
            read(path)
        message = one_line(error, path)
        assert other_data in message and "delete it" in message


# Files made from a teacher's outputs are of the teacher the job loads.

def views_of(teacher_hash):
    def write(path):
        views = CachedViews(torch.zeros(2, 6, 2, dtype=torch.long), torch.zeros(2, 6, dtype=torch.bool),
                            torch.zeros(2, 6, 3, dtype=torch.float16))
        save_cached_views(path, views, {"dataset_fingerprint": FINGERPRINT, TEACHER_KEY: teacher_hash})
    return write


def class_std_of(teacher_hash):
    def write(path):
        save_class_logit_std(path, torch.ones(3), torch.tensor([0, 1, 2]),
                             {"dataset_fingerprint": FINGERPRINT, TEACHER_KEY: teacher_hash})
    return write


FROM_TEACHER = {
    "cached views": ("views2.pt", views_of, lambda p, teacher: load_cached_views(p, FINGERPRINT, teacher)),
    "class statistics": ("class_logit_std.parquet", class_std_of,
                         lambda p, teacher: load_class_logit_std(p, FINGERPRINT, None, teacher)),
}


@pytest.mark.parametrize("kind", FROM_TEACHER)
def test_a_file_made_from_another_teacher_is_one_line(tmp_path, kind):
    name, made_by, read = FROM_TEACHER[kind]
    path = tmp_path / name
    made_by("aaaa")(path)
    read(path, "aaaa")  # its own teacher's
    with pytest.raises(UserError) as error:
        read(path, "bbbb")
    assert one_line(error, path) == (f"{path} was made from another teacher (config hash aaaa) than the one this job "
                                     f"loads (bbbb); delete it and run the workflow again, which remakes it")
    made_by(None)(path)  # written before the teacher was recorded: read unchecked
    read(path, "bbbb")


# The aggregate reads each student's three tables as the tables of one students job.

def write_student_tables(folder, config_hash, stage="students"):
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"stage": stage, "config_hash": config_hash, "dataset_fingerprint": FINGERPRINT}
    keys = {"scorer": "el2n", "selector": "hardest", "keep_fraction": 0.3, "distillation": "kd", "seed": 0}
    write_table(pd.DataFrame([{**keys, "final_test_acc": 0.5, "dataset_fingerprint": FINGERPRINT}]),
                folder / "run.parquet", meta)
    write_table(pd.DataFrame({"epoch": [1, 2], "test_acc": [0.4, 0.5]}), folder / "epochs.parquet", meta)
    write_table(pd.DataFrame({"label": [0, 1], "accuracy": [0.5, 0.5]}), folder / "per_class.parquet", meta)
    return [str(folder / f"{name}.parquet") for name in ("run", "epochs", "per_class")]


def test_the_aggregate_reads_each_students_own_tables(tmp_path):
    a, b = write_student_tables(tmp_path / "a", "h1"), write_student_tables(tmp_path / "b", "h2")
    runs, epochs, per_class = aggregate.read_student_tables([a[0], b[0]], [a[1], b[1]], [a[2], b[2]])
    assert [len(t) for t in runs + epochs + per_class] == [1, 1, 2, 2, 2, 2]
    with pytest.raises(UserError) as error:  # b's per-class table in a's place
        aggregate.read_student_tables([a[0], b[0]], [a[1], b[1]], [b[2], a[2]])
    assert one_line(error, b[2]) == (f"{b[2]} is not the student per-class table of the student of {a[0]} (its job's "
                                     f"config hash is h2, the run's h1); delete it and run the workflow again, which "
                                     f"remakes it")
    with pytest.raises(UserError) as error:  # a per-epoch table where a run table goes
        aggregate.read_student_tables([a[1]], [a[1]], [a[2]])
    assert one_line(error, a[1]).startswith(f"{a[1]} is not a student run table: it has no column scorer")
    teacher = write_student_tables(tmp_path / "t", "h3", stage="teacher")
    with pytest.raises(UserError) as error:  # a teacher's epochs in a student's place
        aggregate.read_student_tables([a[0]], [teacher[1]], [a[2]])
    assert "was written by stage 'teacher'" in one_line(error, teacher[1])
