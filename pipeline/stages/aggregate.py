"""Stage 5: gather every student's result row into ``summary.parquet`` and every student's
per-epoch metrics into ``epochs.parquet`` (each row with its run's keys), then write what the user
reads of them: final test accuracy against keep fraction per scorer, the KD gain over labels-only
training as a heatmap, and the study's table (Parquet, Markdown, HTML) and plot
(``pipeline.study``: the reported accuracy, ``report.metric``, per keep fraction and compared
setting, mean ± std over seeds). The galleries of kept and pruned samples are the ``galleries`` stage's."""
from __future__ import annotations

import argparse
import json

import pandas as pd

from pipeline import plots, results, study
from pipeline.cli import stage
from pipeline.errors import UserError
from pipeline.io import atomic_write, read_table, stable_hash, write_table

KEYS = ["scorer", "selector", "distillation", "keep_fraction"]
RUN_KEYS = list(results.RUN_KEYS)


def every_epoch(runs: list[pd.DataFrame], histories: list[pd.DataFrame]) -> pd.DataFrame:
    """Each run's per-epoch metrics with the run's keys in front; the loss-term columns of all
    losses (a ``train_kd`` only KD has), empty where a run's loss has no such term."""
    tables = [history.assign(**run[RUN_KEYS].iloc[0].to_dict())[RUN_KEYS + list(history.columns)]
              for run, history in zip(runs, histories)]
    return pd.concat(tables, ignore_index=True).sort_values(RUN_KEYS + ["epoch"], ignore_index=True)


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=json.loads, help="the experiment, its data and report sections as JSON")
    p.add_argument("--runs", nargs="+", required=True, help="the students' run tables")
    p.add_argument("--epochs", nargs="+", required=True, help="the students' per-epoch tables, in the order of --runs")
    p.add_argument("--summary-out", required=True)
    p.add_argument("--epochs-out", required=True)
    p.add_argument("--accuracy-plot-out", required=True)
    p.add_argument("--kd-gain-plot-out", required=True)
    p.add_argument("--study-table-out", required=True)
    p.add_argument("--study-markdown-out", required=True)
    p.add_argument("--study-html-out", required=True)
    p.add_argument("--study-plot-out", required=True)
    args = p.parse_args(argv)
    if len(args.runs) != len(args.epochs):
        raise UserError(f"{len(args.runs)} run tables but {len(args.epochs)} per-epoch tables")
    spec, report = args.spec, args.spec["report"]
    runs = [read_table(path)[0] for path in args.runs]
    summary = pd.concat(runs, ignore_index=True).sort_values(KEYS + ["seed"], ignore_index=True)
    fingerprints = sorted(summary["dataset_fingerprint"].unique())
    if len(fingerprints) != 1:
        raise UserError(f"the students were trained on different data (fingerprints {fingerprints})")
    meta = {"stage": "aggregate", "experiment": spec["experiment"], "spec": spec, "config_hash": stable_hash(spec),
            "dataset": summary["dataset"].iloc[0], "dataset_fingerprint": fingerprints[0]}
    write_table(summary, args.summary_out, meta)
    write_table(every_epoch(runs, [read_table(path)[0] for path in args.epochs]), args.epochs_out, meta)

    experiment = spec["experiment"]
    plots.accuracy_per_scorer(study.study_table(summary, study.DEFAULT_COMPARE),
                              f"{experiment}: mean ± std over seeds; labels only dashed", args.accuracy_plot_out)
    plots.heatmaps(study.kd_gain(summary), f"{experiment}: KD gain, final test accuracy of KD minus labels only (points)",
                   "accuracy gain (points)", args.kd_gain_plot_out, "+.1f",
                   empty="no pair of a labels-only setting and a setting with a teacher")

    compare, title, metric = study.compared(report), study.title(report, experiment), study.metric(report)
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
