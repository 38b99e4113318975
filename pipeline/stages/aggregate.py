"""Stage 5: gather every student's result row into ``summary.parquet`` and every student's
per-epoch metrics into ``epochs.parquet`` (each row with its run's keys), and draw what the user
reads: final test accuracy against keep fraction per scorer, the KD gain over labels-only training
as a heatmap, and a gallery per selector of the hardest, medium and easiest kept and pruned samples
of a few classes. Then the study's own table (Parquet, Markdown, HTML) and plot: final test
accuracy per keep fraction (rows) and compared setting (columns, the config's ``report.compare``),
mean ± std over seeds, the best setting of each keep fraction marked, beside the teacher and
student each setting used."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import torch

from pipeline import plots, results
from pipeline.cli import load_data, stage
from pipeline.data import Split
from pipeline.errors import UserError
from pipeline.io import atomic_write, read_table, require_same_data, stable_hash, write_table

KEYS = ["scorer", "selector", "distillation", "keep_fraction"]
RUN_KEYS = list(results.RUN_KEYS)
GALLERY_CLASSES = 3  # classes shown in each gallery (the first ones)
SETTING_COLUMNS = ["teacher", "teacher_test_acc", "teacher_sparsity", "student", "student_params"]


def study_table(summary: pd.DataFrame, compare: list[str]) -> pd.DataFrame:
    """Final test accuracy (%) per compared setting and keep fraction over seeds, with the teacher
    and student of each setting."""
    groups = summary.groupby([*compare, "keep_fraction"], dropna=False)
    table = groups["final_test_acc"].agg(mean="mean", std="std", seeds="count") * [100, 100, 1]
    settings = groups[[c for c in SETTING_COLUMNS if c not in compare]].first()
    return table.join(settings).reset_index()


def setting_label(row, compare: list[str]) -> str:
    return " / ".join(str(row[c]) for c in compare)


def every_epoch(runs: list[pd.DataFrame], histories: list[pd.DataFrame]) -> pd.DataFrame:
    """Each run's per-epoch metrics with the run's keys in front; the loss-term columns of all
    losses (a ``train_kd`` only KD has), empty where a run's loss has no such term."""
    tables = [history.assign(**run[RUN_KEYS].iloc[0].to_dict())[RUN_KEYS + list(history.columns)]
              for run, history in zip(runs, histories)]
    return pd.concat(tables, ignore_index=True).sort_values(RUN_KEYS + ["epoch"], ignore_index=True)


def kd_gain(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """For each setting with a teacher: its mean final test accuracy minus that of the labels-only
    setting (no teacher, no InfoBatch; the first by name if several), in points, with a row per
    (scorer, selector) and a column per keep fraction. Empty without both kinds of setting."""
    settings = summary.drop_duplicates("distillation").set_index("distillation")
    labels_only = sorted(settings.index[settings["teacher"].isna() & settings["infobatch_ratio"].isna()])
    if not labels_only:
        return {}
    means = summary.groupby(["distillation", "scorer", "selector", "keep_fraction"])["final_test_acc"].mean() * 100
    baseline = means[labels_only[0]]
    return {f"{setting} minus {labels_only[0]}": (means[setting] - baseline).unstack("keep_fraction")
            for setting in sorted(settings.index[settings["teacher"].notna()])}


def gallery_picks(scores: pd.DataFrame, kept: np.ndarray, classes: list[int]) -> pd.DataFrame:
    """For each class, the hardest, medium (median rank) and easiest sample by score, among the
    kept samples and among the pruned ones (ties broken by sample index)."""
    is_kept = scores["sample_index"].isin(kept)
    rows = []
    for label in classes:
        for group, members in (("kept", is_kept), ("pruned", ~is_kept)):
            ranked = scores[members & (scores["label"] == label)].sort_values(["score", "sample_index"],
                                                                             ascending=[False, True])
            if ranked.empty:
                continue
            for rank, position in (("hardest", 0), ("medium", len(ranked) // 2), ("easiest", len(ranked) - 1)):
                row = ranked.iloc[position]
                rows.append({"label": label, "group": group, "rank": rank,
                             "sample_index": int(row["sample_index"]), "score": float(row["score"])})
    return pd.DataFrame(rows)


def display_images(split: Split, indices: list[int]) -> dict[int, np.ndarray]:
    """The un-augmented training images of ``indices`` as arrays in [0, 1] (each scaled to its own
    range: the split gives normalised inputs), (H, W) for one channel, (H, W, 3) for colour."""
    x, _, _ = next(split.batches(torch.tensor(indices), len(indices), device=torch.device("cpu")))
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    x = (x - low) / (x.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
    x = x.permute(0, 2, 3, 1).numpy()
    return {i: image[..., 0] if image.shape[-1] == 1 else image for i, image in zip(indices, x)}


def write_galleries(subsets: list[pd.DataFrame], scores: dict[str, pd.DataFrame], split: Split, folder: str,
                    experiment: str) -> None:
    """One image per selector: a row per (scorer, class) for each scorer the selector draws from."""
    for selector, group in pd.concat(subsets).groupby("selector", sort=False):
        picks = []
        for scorer, kept in group.groupby("scorer", sort=False):
            table = scores[scorer]
            classes = sorted(table["label"].unique())[:GALLERY_CLASSES]
            picks.append(gallery_picks(table, kept["sample_index"].to_numpy(), classes).assign(scorer=scorer))
        picks = pd.concat(picks, ignore_index=True)
        title = (f"{experiment}: selector {selector}, keep fraction {group['keep_fraction'].iloc[0]:g}; "
                 "under each image its sample index and score (higher = harder)")
        plots.gallery(display_images(split, sorted(set(picks["sample_index"]))), picks, title,
                      f"{folder}/{selector}.png")


def markdown(table: pd.DataFrame, compare: list[str], title: str) -> str:
    """The study as Markdown: accuracy per keep fraction and setting (best in bold), the best
    setting per keep fraction, and what each setting trained with."""
    table = table.assign(setting=[setting_label(r, compare) for _, r in table.iterrows()])
    settings = list(dict.fromkeys(table["setting"]))
    lines = [f"### {title}", "", "| keep fraction | " + " | ".join(settings) + " | best |",
             "|---" * (len(settings) + 2) + "|"]
    for f, rows in table.groupby("keep_fraction"):
        rows = rows.set_index("setting")
        best = rows["mean"].idxmax()
        cells = [_cell(rows.loc[s], s == best) if s in rows.index else "" for s in settings]
        lines.append(f"| {f:g} | " + " | ".join(cells) + f" | {best} |")
    lines += ["", "Final-epoch test accuracy (%), mean ± std over seeds (n = number of seeds).", "",
              "| setting | " + " | ".join(SETTING_COLUMNS) + " |", "|---" * (len(SETTING_COLUMNS) + 1) + "|"]
    for s in settings:
        row = table[table["setting"] == s].iloc[0]
        lines.append(f"| {s} | " + " | ".join(_value(row.get(c)) for c in SETTING_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _cell(row, best: bool) -> str:
    text = f"{row['mean']:.2f} ± {row['std']:.2f} (n={row['seeds']})" if row["seeds"] > 1 else f"{row['mean']:.2f} (n=1)"
    return f"**{text}**" if best else text


def html(table: pd.DataFrame, compare: list[str], title: str) -> str:
    """The study table as an HTML page for the report: mean ± std (%) per keep fraction and setting."""
    cells = table.assign(setting=[setting_label(r, compare) for _, r in table.iterrows()],
                         accuracy=[_cell(r, False) for _, r in table.iterrows()])
    wide = cells.pivot(index="keep_fraction", columns="setting", values="accuracy")
    wide = wide[list(dict.fromkeys(cells["setting"]))].fillna("")
    return (f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h3>{title}</h3>"
            + wide.to_html(border=1) + "<p>Final-epoch test accuracy (%), mean ± std over seeds.</p></body></html>")


def _value(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=json.loads, help="the experiment, its data and report sections as JSON")
    p.add_argument("--runs", nargs="+", required=True, help="the students' run tables")
    p.add_argument("--epochs", nargs="+", required=True, help="the students' per-epoch tables, in the order of --runs")
    p.add_argument("--scores", nargs="+", required=True, help="the score tables of the scorers the subsets come from")
    p.add_argument("--subsets", nargs="+", required=True, help="the subsets to show in the galleries")
    p.add_argument("--summary-out", required=True)
    p.add_argument("--epochs-out", required=True)
    p.add_argument("--accuracy-plot-out", required=True)
    p.add_argument("--kd-gain-plot-out", required=True)
    p.add_argument("--gallery-folder", required=True, help="writes <selector>.png there for every selector")
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
    plots.accuracy_per_scorer(study_table(summary, KEYS[:3]), f"{experiment}: mean ± std over seeds; labels only dashed",
                              args.accuracy_plot_out)
    plots.heatmaps(kd_gain(summary), f"{experiment}: KD gain, final test accuracy of KD minus labels only (points)",
                   "accuracy gain (points)", args.kd_gain_plot_out, "+.1f",
                   empty="no pair of a labels-only setting and a setting with a teacher")
    dataset = load_data(spec["data"])
    require_same_data(f"the dataset of {experiment}", dataset.fingerprint, fingerprints[0])
    scores = {table["scorer"].iloc[0]: table for table in (read_table(path)[0] for path in args.scores)}
    write_galleries([read_table(path)[0] for path in args.subsets], scores, dataset.train, args.gallery_folder,
                    experiment)

    compare = report.get("compare") or KEYS[:3]
    title = report.get("title") or f"{experiment}: final test accuracy by {', '.join(compare)}"
    table = study_table(summary, compare)
    write_table(table, args.study_table_out, meta)
    text = markdown(table, compare, title)
    atomic_write(args.study_markdown_out, lambda tmp: tmp.write_text(text))
    page = html(table, compare, title)
    atomic_write(args.study_html_out, lambda tmp: tmp.write_text(page))
    plots.study_plot(table, compare, title, args.study_plot_out)
    print(text)


if __name__ == "__main__":
    main()
