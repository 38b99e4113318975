"""How the scorers relate: one long table with the Spearman rank correlation between every pair of
scorers (over all training samples) and each scorer's per-class score statistics, and two plots
of them: the rank correlation matrix and each scorer's score histogram per class.

Columns: ``scorer, other, label, statistic, value``. Correlation rows have ``statistic =
"spearman"`` and the second scorer in ``other`` (label null); per-class rows have ``statistic`` in
count/mean/std/min/median/max and the class in ``label`` (other null).
"""
from __future__ import annotations

import argparse
import json

import pandas as pd

from pipeline import plots
from pipeline.cli import stage
from pipeline.errors import UserError
from pipeline.io import read_table, stable_hash, write_table

CLASS_STATISTICS = ["count", "mean", "std", "min", "median", "max"]


def summarise(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    scores = pd.DataFrame({name: table["score"].to_numpy() for name, table in tables.items()})
    correlation = scores.corr(method="spearman")
    rows = [
        {"scorer": a, "other": b, "label": None, "statistic": "spearman", "value": float(correlation.loc[a, b])}
        for a in correlation.index
        for b in correlation.columns
    ]
    for name, table in tables.items():
        stats = table.groupby("label")["score"].agg(CLASS_STATISTICS)
        rows += [
            {"scorer": name, "other": None, "label": int(label), "statistic": statistic, "value": float(value)}
            for label, row in stats.iterrows()
            for statistic, value in row.items()
        ]
    return pd.DataFrame(rows).astype({"label": "Int64"})


def rank_correlation(summary: pd.DataFrame) -> pd.DataFrame:
    """The Spearman rows of the summary as a scorer x scorer matrix, in the scorers' order there."""
    spearman = summary[summary["statistic"] == "spearman"]
    order = list(dict.fromkeys(spearman["scorer"]))
    return spearman.pivot(index="scorer", columns="other", values="value").loc[order, order]


def read_scores(path: str, scorers: dict) -> tuple[pd.DataFrame, dict]:
    """A score table of one of the experiment's ``scorers`` (as configured), refused in one line
    otherwise: the job reads no data, so the tables' fingerprints are checked against each other."""
    table, meta = read_table(path, "score table", ("sample_index", "label", "score"))
    scorer = meta.get("scorer")
    if scorer not in scorers or (meta.get("spec") or {}).get("params", scorers[scorer]) != scorers[scorer]:
        raise UserError(f"{path} holds the scores of {scorer!r} with parameters {(meta.get('spec') or {}).get('params')}, "
                        f"not of one of this experiment's scorers ({', '.join(scorers)}) as configured; delete it (or run "
                        f"snakemake --forcerun scores) so that it is scored again")
    return table, meta


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=json.loads, help="the experiment and its scorers as JSON")
    p.add_argument("--scores", nargs="+", required=True, help="score tables, one per scorer")
    p.add_argument("--output", required=True)
    p.add_argument("--correlation-plot-out", required=True)
    p.add_argument("--histograms-out", required=True)
    args = p.parse_args(argv)
    tables, fingerprints = {}, set()
    for path in args.scores:
        table, meta = read_scores(path, args.spec["scorers"])
        tables[meta["scorer"]] = table
        fingerprints.add(meta["dataset_fingerprint"])
    if len(fingerprints) != 1:
        raise UserError(f"score tables come from different data (fingerprints {sorted(fingerprints)})")
    summary = summarise(tables)
    write_table(summary, args.output, {"stage": "scores_summary", "spec": args.spec, "config_hash": stable_hash(args.spec),
                                       "scorers": sorted(tables), "dataset_fingerprint": fingerprints.pop()})
    correlation = rank_correlation(summary)
    correlation.columns.name = "scorer"
    plots.heatmaps({"Spearman rank correlation over all training samples": correlation},
                   f"{args.spec['experiment']}: how the scorers rank the samples", "Spearman rho",
                   args.correlation_plot_out, ".2f", limit=1.0)
    plots.score_histograms(tables, args.histograms_out)
    print(correlation.round(3))


if __name__ == "__main__":
    main()
