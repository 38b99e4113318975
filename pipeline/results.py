"""A finished experiment's results folder as pandas tables.

Every function takes the folder ``results/<experiment>`` and returns one DataFrame with the
documented columns below (pandas dtypes; ``str`` is pandas' string dtype, ``Int64`` an integer
that may be missing). Each table is also one plain ``pd.read_parquet`` call away: ``subsets/``
holds one file per job whose keys are columns of the file itself (the folders are not
``key=value`` partitions: pyarrow would read such keys back as categorical strings, and refuses a
partition that repeats a column of the files), and the aggregate stage gathers the students'
per-job tables into ``summary.parquet`` and ``epochs.parquet``. The teachers and scores an
experiment used live in ``results/shared/`` (``pipeline.jobs``), shared with every experiment of
the same spec; ``scores`` and ``teacher_epochs`` find the experiment's own there from the config
the aggregate recorded (``shared_files``).

Every file carries its provenance (the job's config, code version, dataset fingerprint):
``provenance(path)``.

>>> from pipeline import results
>>> summary = results.summary("results/fashion_mnist_default")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.comparisons import gain_table
from pipeline.io import read_meta
from pipeline.jobs import SHARED, Experiment

# What tells one student run from another: the subset (scorer, selector, keep fraction), the
# distillation setting and the seed.
RUN_KEYS = {"scorer": "str", "selector": "str", "keep_fraction": "float64", "distillation": "str", "seed": "int64"}

SCORES = {"sample_index": "int64", "label": "int64", "score": "float64", "scorer": "str"}
# ``draw``: the student seed a random draw's subset was drawn for (selection.random_draws), else empty
SUBSETS = {"sample_index": "int64", "label": "int64", "scorer": "str", "selector": "str", "keep_fraction": "float64",
           "draw": "Int64"}
SCORES_SUMMARY = {"scorer": "str", "other": "str", "label": "Int64", "statistic": "str", "value": "float64"}
# Plus one float64 ``train_<term>`` column per term of any student's loss (``train_ce``,
# ``train_kd``, ...), missing in the rows of runs whose loss has no such term.
EPOCHS = {**RUN_KEYS, "epoch": "int64", "lr": "float64", "steps": "int64", "sample_steps": "int64",
          "train_loss": "float64", "train_acc": "float64", "test_acc": "float64", "test_loss": "float64",
          "val_acc": "float64", "val_loss": "float64", "seconds": "float64", "images_per_second": "float64"}
# class_name: the data's name of the class ("class <label>" where it names none; absent in tables
# written before class names)
PER_CLASS = {**RUN_KEYS, "label": "int64", "class_name": "str", "samples": "int64", "accuracy": "float64"}
SUMMARY = {
    "experiment": "str", "dataset": "str", "teacher": "str", "teacher_test_acc": "float64",
    "teacher_sparsity": "float64", "student": "str", "student_params": "int64", "teacher_outputs": "str",
    **RUN_KEYS, "loss": "str",
    "alpha": "float64", "temperature": "float64", "loss_params": "str", "budget": "str", "epochs": "int64",
    "steps": "int64", "final_test_acc": "float64", "best_test_acc": "float64", "best_val_epoch": "Int64",
    "best_val_acc": "float64", "test_acc_at_best_val": "float64", "n_train": "int64",
    "init_seed": "int64", "order_seed": "int64", "augment_seed": "int64",
    "infobatch_ratio": "float64", "infobatch_delta": "float64", "sample_steps": "int64", "cost_fraction": "float64",
    "train_seconds": "float64", "precision": "str", "device": "str", "dataset_fingerprint": "str", "subset_scores_hash": "str",
    "config_hash": "str", "config": "str", "code_version": "str",
    # each setting's gain over the random subset and over the labels only, with its 95 % interval
    # (``pipeline.comparisons.add_gains``; shares, as final_test_acc)
    "gain_over_random": "float64", "gain_over_random_low": "float64", "gain_over_random_high": "float64",
    "gain_over_labels": "float64", "gain_over_labels_low": "float64", "gain_over_labels_high": "float64",
    "worst_class_acc": "float64", "student_seconds": "float64", "pipeline_seconds": "float64",
    "full_data_seconds": "float64", "full_data_seconds_estimated": "boolean", "teacher_outputs_bytes": "Int64",
    "subset_draw": "Int64",
    "noisy_share": "float64",  # share of the subset with a corrupted label (data.label_noise); NaN on clean data
}


def summary(results: str | Path) -> pd.DataFrame:
    """One row per student run (``SUMMARY``); ``final_test_acc`` is the result, a share in [0, 1]."""
    return _typed(pd.read_parquet(Path(results) / "summary.parquet"), SUMMARY)


def compare(results: str | Path, baseline: str = "random", metric: str = "final_test_acc") -> pd.DataFrame:
    """One row per (scorer, selector, distillation, keep_fraction): its mean ``metric`` over seeds,
    the baseline's (``baseline_mean``), the difference (``gain``, a share) with its 95 % interval
    (``low``, ``high``; paired by seed when both ran the same seeds, Welch's otherwise), the seed
    counts (``seeds``, ``baseline_seeds``) and ``paired``. ``baseline``: "random" (the random subset
    at the same keep fraction and distillation setting) or "labels" (the labels-only setting on the
    same subset); see ``pipeline.comparisons.gain_table``.

    >>> results.compare("results/fashion_mnist_default", baseline="labels")
    """
    return gain_table(summary(results), baseline, metric)


def epochs(results: str | Path) -> pd.DataFrame:
    """One row per student run and epoch (``EPOCHS``); ``test_acc`` is missing in epochs not
    evaluated (``train.eval_every``)."""
    return _typed(pd.read_parquet(Path(results) / "epochs.parquet"), EPOCHS)


def per_class(results: str | Path) -> pd.DataFrame:
    """One row per student run and class (``PER_CLASS``): the final model's test accuracy on the
    class's ``samples`` (NaN for a class without test samples)."""
    return _typed(pd.read_parquet(Path(results) / "per_class.parquet"), PER_CLASS)


def scores(results: str | Path) -> pd.DataFrame:
    """One row per scorer and training sample (``SCORES``): higher = harder."""
    files = shared_files(results, "scores", "{place}.parquet")
    return _typed(pd.concat([pd.read_parquet(path) for path in files.values()], ignore_index=True), SCORES)


def subsets(results: str | Path) -> pd.DataFrame:
    """One row per subset and kept sample (``SUBSETS``). Read file by file: a folder read would take
    its columns from the first file and drop the ``draw`` column of the drawn subsets."""
    files = sorted((Path(results) / "subsets").rglob("*.parquet"))
    return _typed(pd.concat([pd.read_parquet(path) for path in files], ignore_index=True), SUBSETS)


def scores_summary(results: str | Path) -> pd.DataFrame:
    """How the scorers relate (``SCORES_SUMMARY``): Spearman rows (``statistic = "spearman"``,
    ``other`` the second scorer, no label) and per-class rows (``count, mean, std, min, median,
    max`` of the scores in class ``label``, no other)."""
    return _typed(pd.read_parquet(Path(results) / "scores_summary.parquet"), SCORES_SUMMARY)


def teacher_epochs(results: str | Path) -> pd.DataFrame:
    """Every teacher's and pruned teacher's per-epoch metrics, with its name in ``teacher`` (a
    pruned teacher's rows also have the pruning ``round`` they retrain after)."""
    files = {**shared_files(results, "teachers", "{place}/epochs.parquet"),
             **shared_files(results, "pruned_teachers", "{place}/epochs.parquet")}
    return pd.concat([pd.read_parquet(path).assign(teacher=name) for name, path in files.items()], ignore_index=True)


def shared_files(results: str | Path, rule: str, file: str) -> dict[str, Path]:
    """The files (``file``, below the job's place) of the experiment's shared jobs of ``rule``, by
    what its config calls them, from the config its aggregate recorded in ``summary.parquet``."""
    results = Path(results)
    experiment = Experiment(read_meta(results / "summary.parquet")["spec"])
    used = set(experiment.jobs())
    return {str(experiment.config_name(job)): results.parent / SHARED / file.format(place=job.place)
            for job in experiment.shared(rule) if job in used}


def provenance(path: str | Path) -> dict[str, Any]:
    """What made a table: stage, the job's config (``spec``), its hash, dataset and fingerprint,
    device, code version."""
    return read_meta(path)


def _typed(table: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The documented columns in their documented types (the loss terms and any newer columns as
    they are), so that code written against these tables does not depend on how Parquet stored them."""
    return table.astype({name: dtype for name, dtype in columns.items() if name in table.columns})
