"""Stage 5: gather every student's result row into ``summary.parquet``, its per-epoch metrics into
``epochs.parquet`` and its per-class test accuracy into ``per_class.parquet`` (each row with its
run's keys), and every job's measured cost into ``costs.parquet`` (``pipeline.costs``). Each summary
row gains what it cost (student_seconds, pipeline_seconds, full_data_seconds) and its gain over the
random subset and over labels only, with 95 % intervals over seeds (``pipeline.comparisons``).
Then write what the user reads of them: final test accuracy against keep fraction per scorer, the
KD gain over labels-only training and the gain over random as heatmaps, accuracy against the whole
pipeline's time, and the study's table (Parquet, Markdown, HTML) and plot (``pipeline.study``: the
reported accuracy, ``report.metric``, per keep fraction and compared setting, mean ± std and its
interval over seeds, best only where the intervals say so). The galleries of kept and pruned samples
are the ``galleries`` stage's."""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pandas as pd

from pipeline import plots, results, study
from pipeline.cli import stage
from pipeline.comparisons import add_gains
from pipeline.costs import add_costs, job_costs, jobs_by_benchmark
from pipeline.errors import UserError
from pipeline.io import REMAKE, atomic_write, read_meta, read_table, stable_hash, write_table
from pipeline.jobs import Experiment, Job

KEYS = ["scorer", "selector", "distillation", "keep_fraction"]
RUN_KEYS = list(results.RUN_KEYS)


def with_run_keys(runs: list[pd.DataFrame], tables: list[pd.DataFrame], row: str) -> pd.DataFrame:
    """Each run's table (per ``row``: epoch, label) with the run's keys in front, as one table; the
    columns of all tables (a ``train_kd`` only KD has), empty where a run's table has no such column."""
    keyed = [table.assign(**run[RUN_KEYS].iloc[0].to_dict())[RUN_KEYS + list(table.columns)]
             for run, table in zip(runs, tables)]
    return pd.concat(keyed, ignore_index=True).sort_values(RUN_KEYS + [row], ignore_index=True)


def read_student_tables(runs: list[str], epochs: list[str], per_class: list[str]) -> tuple[list, list, list]:
    """Each student's run, per-epoch and per-class tables (``--runs``, ``--epochs``, ``--per-class``
    in the same order), each read as a students stage's table of its kind; the three of one run must
    be one job's (its ``config_hash``), so a table put in another's place is one line, not a wrong row."""
    kinds = {"student run table": (runs, (*RUN_KEYS, "final_test_acc", "dataset_fingerprint")),
             "student per-epoch table": (epochs, ("epoch", "test_acc")),
             "student per-class table": (per_class, ("label", "accuracy"))}
    read = {kind: [read_table(path, kind, columns) for path in paths] for kind, (paths, columns) in kinds.items()}
    for kind, (paths, _) in kinds.items():
        for path, (_, record), run, (_, run_record) in zip(paths, read[kind], runs, read["student run table"]):
            if record.get("stage") != "students":
                raise UserError(f"{path} is not a {kind}: it was written by stage {record.get('stage')!r}; {REMAKE}")
            if record.get("config_hash") != run_record.get("config_hash"):
                raise UserError(f"{path} is not the {kind} of the student of {run} (its job's config hash is "
                                f"{record.get('config_hash')}, the run's {run_record.get('config_hash')}); {REMAKE}")
    return tuple([frame for frame, _ in read[kind]] for kind in kinds)


def job_records(results: Path, experiment: Experiment, jobs: list[Job]) -> dict[Job, dict]:
    """The provenance record of each job's main table (below ``results``, the folder of every
    experiment's folder): the device it ran on, and whether it started warm (``pipeline.warm``).
    The galleries write no table."""
    tables = {"teachers": "{place}/epochs.parquet", "pruned_teachers": "{place}/epochs.parquet",
              "proxies": "{place}/epochs.parquet", "scores": "{place}.parquet", "students": "{place}/run.parquet",
              "subsets": "{place}.parquet", "drawn_subsets": "{place}.parquet",
              "scores_summary": "scores_summary.parquet"}
    records = {}
    for job in jobs:
        if job.rule in tables:
            path = results / experiment.folder(job) / tables[job.rule].format(place=job.place)
            if path.exists():
                records[job] = read_meta(path)
    return records


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=json.loads, help="the experiment's validated config as JSON")
    p.add_argument("--runs", nargs="+", required=True, help="the students' run tables")
    p.add_argument("--epochs", nargs="+", required=True, help="the students' per-epoch tables, in the order of --runs")
    p.add_argument("--per-class", nargs="+", required=True, help="the students' per-class tables, in the order of --runs")
    p.add_argument("--benchmarks", nargs="+", required=True,
                   help="the benchmark of every job but the aggregate, in the order of pipeline.jobs.Experiment.jobs")
    p.add_argument("--summary-out", required=True)
    p.add_argument("--epochs-out", required=True)
    p.add_argument("--per-class-out", required=True)
    p.add_argument("--costs-out", required=True)
    p.add_argument("--gain-plot-out", required=True)
    p.add_argument("--cost-plot-out", required=True)
    p.add_argument("--accuracy-plot-out", required=True)
    p.add_argument("--kd-gain-plot-out", required=True)
    p.add_argument("--study-table-out", required=True)
    p.add_argument("--study-markdown-out", required=True)
    p.add_argument("--study-html-out", required=True)
    p.add_argument("--study-plot-out", required=True)
    args = p.parse_args(argv)
    if not len(args.runs) == len(args.epochs) == len(args.per_class):
        raise UserError(f"{len(args.runs)} run tables but {len(args.epochs)} per-epoch and {len(args.per_class)} "
                        f"per-class tables")
    spec, report = args.spec, args.spec["report"]
    runs, epochs, per_class = read_student_tables(args.runs, args.epochs, args.per_class)
    summary = pd.concat(runs, ignore_index=True).sort_values(KEYS + ["seed"], ignore_index=True)
    fingerprints = sorted(summary["dataset_fingerprint"].unique())
    if len(fingerprints) != 1:
        raise UserError(f"the students were trained on different data (fingerprints {fingerprints})")
    meta = {"stage": "aggregate", "experiment": spec["experiment"], "spec": spec, "config_hash": stable_hash(spec),
            "dataset": summary["dataset"].iloc[0], "dataset_fingerprint": fingerprints[0]}

    experiment = Experiment(spec)
    jobs = experiment.jobs()
    benchmarks = jobs_by_benchmark(experiment, jobs, args.benchmarks)
    students = [experiment.student(*row) for row in summary[RUN_KEYS].itertuples(index=False)]
    if Counter(students) != Counter(experiment.students()):
        raise UserError(f"the {len(runs)} run tables are not the experiment's {len(experiment.students())} students")
    results = Path(args.summary_out).parent.parent
    costs = job_costs(experiment, benchmarks, job_records(results, experiment, jobs))
    write_table(costs, args.costs_out, meta)
    summary = add_gains(add_costs(summary, costs, experiment, students), study.metric(report))
    write_table(summary, args.summary_out, meta)
    write_table(with_run_keys(runs, epochs, "epoch"), args.epochs_out, meta)
    write_table(with_run_keys(runs, per_class, "label"), args.per_class_out, meta)

    name = spec["experiment"]
    plots.accuracy_per_scorer(study.study_table(summary, study.DEFAULT_COMPARE),
                              f"{name}: mean ± std over seeds; labels only dashed", args.accuracy_plot_out)
    plots.heatmaps(study.kd_gain(summary), f"{name}: KD gain, final test accuracy of KD minus labels only (points)",
                   "accuracy gain (points)", args.kd_gain_plot_out, "+.1f",
                   empty="no pair of a labels-only setting and a setting with a teacher")

    plots.gain_over_random(summary, f"{name}: gain over random (points)\n{study.METRIC_NAMES[study.metric(report)]}, "
                                     f"95 % interval over seeds", args.gain_plot_out)
    plots.accuracy_vs_cost(summary, f"{name}: accuracy against the whole pipeline's time", args.cost_plot_out)

    compare, title, metric = study.compared(report), study.title(report, name), study.metric(report)
    table = study.study_table(summary, compare, metric)
    write_table(table, args.study_table_out, meta)
    text = study.markdown(table, compare, title, metric)
    atomic_write(args.study_markdown_out, lambda tmp: tmp.write_text(text))
    page = study.html(table, compare, title, metric)
    atomic_write(args.study_html_out, lambda tmp: tmp.write_text(page))
    plots.study_plot(table, compare, title, args.study_plot_out, f"{study.METRIC_NAMES[metric]} (%)")
    print(text)


if __name__ == "__main__":
    main()
