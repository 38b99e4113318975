"""What each job and each result cost, measured.

Snakemake's benchmark of every job (``benchmarks/<place>.tsv``: the wall time of the job's command,
start-up included, its CPU time and peak resident memory) becomes one row of ``costs.parquet``, with
the job's rule, wildcards and FLOPs (``pipeline.jobs``). Each student's summary row then gets:

- ``student_seconds``: its own job's wall time;
- ``pipeline_seconds``: that plus the wall time of every job upstream of it (its teacher and the
  teachers it was pruned from, cached views, its subset, the scoring job of its scorer and what that
  read, the proxies), each counted in full: what producing this one result costs from nothing;
- ``full_data_seconds``: what the labels-only student on all the data with the same schedule costs:
  measured (the mean wall time of the labels-only students at keep fraction 1) when the experiment
  has them; else estimated, and ``full_data_seconds_estimated`` is true: from the labels-only
  students of the largest keep fraction, their training time (``train_seconds``) scaled to every
  sample plus the rest of their wall time (start-up, data, evaluation) as it was; without a
  labels-only setting, from each row's own job, its training time scaled by the FLOP model.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import UserError
from pipeline.jobs import Experiment, Job

# The wildcard columns of costs.parquet, in the order they are shown.
WILDCARDS = ["dataset", "teacher", "pruned", "views", "view_std", "embeddings", "proxy", "scores", "scorer", "selector",
             "keep", "draw", "distill", "seed"]


def read_benchmark(path: str | Path) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak resident memory (MB) of a Snakemake benchmark file (the
    mean over its rows, one per repetition)."""
    try:
        table = pd.read_csv(path, sep="\t")
        return {"wall_seconds": float(table["s"].mean()), "cpu_seconds": float(table["cpu_time"].mean()),
                "peak_rss_mb": float(table["max_rss"].mean())}
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as error:
        raise UserError(f"{path} is no Snakemake benchmark ({error}); delete it and run the job again") from None


def jobs_by_benchmark(experiment: Experiment, jobs: list[Job], paths: list[str]) -> dict[Job, str]:
    """Each job's benchmark among ``paths``, matched by path: the rule lists them in the order of the
    Snakefile's config, which can differ from the spec's (its keys sorted), so never by position."""
    expected = {experiment.benchmark(job): job for job in jobs}
    foreign = [path for path in paths if path not in expected]
    if foreign or len(set(paths)) != len(jobs):
        raise UserError(f"{len(paths)} benchmarks for the experiment's {len(jobs)} jobs"
                        + (f"; {foreign[0]} is no job's" if foreign else ""))
    return {expected[path]: path for path in paths}


def job_costs(experiment: Experiment, benchmarks: dict[Job, str | Path], records: dict[Job, dict]) -> pd.DataFrame:
    """One row per job: rule, place, what the config calls a shared job (``config_name``: the
    teacher's or scorer's name, the proxy's run; empty for the experiment's own jobs), its
    wildcards, device (where its outputs' ``records`` name one, else "cpu" for the jobs that read
    tables), how it started (``warm``: forked from a local run's server, ``cold``, or unknown for
    a job whose outputs record nothing), wall and CPU seconds, peak memory and FLOPs. A warm job's
    benchmark measured its launcher, not its work: its CPU seconds and memory are left blank."""
    rows = []
    for job, path in benchmarks.items():
        wildcards = dict(job.wildcards)
        name = experiment.config_name(job) if job.shared else None
        record = records.get(job)
        started = None if record is None else record.get("started", "cold")
        measured = read_benchmark(path)
        if started == "warm":
            measured.update(cpu_seconds=float("nan"), peak_rss_mb=float("nan"))
        rows.append({"rule": job.rule, "place": job.place, "config_name": None if name is None else str(name),
                     **{w: wildcards.get(w) for w in WILDCARDS},
                     "device": (record or {}).get("device", "cpu" if experiment.flops(job) == 0 else None),
                     "started": started, **measured, "flops": float(experiment.flops(job))})
    return pd.DataFrame(rows).astype({w: "string" for w in ["config_name", *WILDCARDS, "device", "started"]})


def add_costs(summary: pd.DataFrame, costs: pd.DataFrame, experiment: Experiment, jobs: list[Job]) -> pd.DataFrame:
    """``summary`` with student_seconds, pipeline_seconds, full_data_seconds and
    full_data_seconds_estimated; ``jobs``: each row's student job."""
    seconds = dict(zip(costs["place"], costs["wall_seconds"]))
    own = pd.Series([seconds.get(job.place, float("nan")) for job in jobs], index=summary.index)
    upstream = pd.Series([sum(seconds.get(j.place, float("nan")) for j in experiment.upstream(job)) for job in jobs],
                         index=summary.index)
    out = summary.assign(student_seconds=own, pipeline_seconds=own + upstream)
    labels = out["teacher"].isna() & out["infobatch_ratio"].isna()
    full = out[labels & (out["keep_fraction"] == 1.0)]
    if len(full):
        return out.assign(full_data_seconds=float(full["student_seconds"].mean()), full_data_seconds_estimated=False)
    if labels.any():  # the labels-only students of the largest keep fraction, scaled to every sample
        largest = out[labels & (out["keep_fraction"] == out.loc[labels, "keep_fraction"].max())]
        estimates = largest["student_seconds"] + largest["train_seconds"] * (1 / largest["cost_fraction"] - 1)
        return out.assign(full_data_seconds=float(estimates.mean()), full_data_seconds_estimated=True)
    # no labels-only student: each row's own, its training time scaled by the FLOPs of the labels-only
    # student on every sample (the row's sample_steps / cost_fraction) over its own
    full_images = out["sample_steps"] / out["cost_fraction"]
    labels_flops = [experiment.student_flops_per_image(None) * images for images in full_images]
    row_flops = [experiment.student_flops_per_image(d) * s for d, s in zip(out["distillation"], out["sample_steps"])]
    ratio = pd.Series(labels_flops, index=out.index) / pd.Series(row_flops, index=out.index)
    full_data = out["student_seconds"] + out["train_seconds"] * (ratio - 1)
    return out.assign(full_data_seconds=full_data, full_data_seconds_estimated=True)
