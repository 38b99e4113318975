"""The study: what a run of students says, as tables the user reads. The reported accuracy (%; the
config's ``report.metric``, final-epoch test accuracy by default) per compared setting (the
config's ``report.compare``) and keep fraction, mean ± std over seeds with the 95 % t-interval of
the mean, beside the teacher and student each setting used, as a table, Markdown (the best setting
of each keep fraction marked only where its interval overlaps no other's, else the settings tied
for the top named) and an HTML page; and the KD gain of each teacher setting over training on the
labels only. Computed from ``summary.parquet`` (one row per student run); drawn by
``pipeline.plots``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.comparisons import half_width

# The columns that tell the students' settings apart by default (report.compare unset).
DEFAULT_COMPARE = ["scorer", "selector", "distillation"]
# What each compared setting trained with, shown beside its accuracy.
SETTING_COLUMNS = ["teacher", "teacher_test_acc", "teacher_sparsity", "student", "student_params"]
# The numbers a study can report (report.metric), as its table's caption says them: each paper's own.
METRICS = {
    "final_test_acc": "Final-epoch test accuracy",
    "best_test_acc": "Best test accuracy over the evaluated epochs (chosen on the test set, as RepDistiller and MDSLR report)",
    "test_acc_at_best_val": "Test accuracy at the epoch of the best validation accuracy (as prune-then-distill reports)",
}
# ... and as a title or an axis says them
METRIC_NAMES = {"final_test_acc": "final test accuracy", "best_test_acc": "best test accuracy",
                "test_acc_at_best_val": "test accuracy at the best validation epoch"}


def study_table(summary: pd.DataFrame, compare: list[str], metric: str = "final_test_acc") -> pd.DataFrame:
    """The reported accuracy (%) per compared setting and keep fraction over seeds (``mean``,
    ``std``, ``seeds``), the 95 % t-interval of the mean (``ci_low``, ``ci_high``; NaN with one
    seed), the ``verdict`` of its keep fraction (``verdicts``), the final-epoch test accuracy beside
    it when another metric is reported (``final_mean``, ``final_std``), and the teacher and student
    of each setting."""
    groups = summary.groupby([*compare, "keep_fraction"], dropna=False)
    table = groups[metric].agg(mean="mean", std="std", seeds="count") * [100, 100, 1]
    half = [half_width(std, n) if n >= 2 else np.nan for std, n in zip(table["std"], table["seeds"])]
    table = table.assign(ci_low=table["mean"] - half, ci_high=table["mean"] + half)
    table["verdict"] = verdicts(table.reset_index()).to_numpy()
    if metric != "final_test_acc":
        table = table.join(groups["final_test_acc"].agg(final_mean="mean", final_std="std") * 100)
    settings = groups[[c for c in SETTING_COLUMNS if c not in compare]].first()
    return table.join(settings).reset_index()


def verdicts(table: pd.DataFrame) -> pd.Series:
    """Per row of a study table: "best" for the setting with the highest mean in its keep fraction
    when its interval overlaps no other setting's there, "tied" for that setting and every setting
    whose interval overlaps its interval otherwise, "" for the rest. A setting without an interval
    (one seed) cannot be told apart: it overlaps every interval, so the top one with one seed is
    never best."""
    verdict = pd.Series("", index=table.index)
    for _, rows in table.dropna(subset=["mean"]).groupby("keep_fraction"):
        top = rows.loc[rows["mean"].idxmax()]
        tied = [i for i, row in rows.iterrows() if i != top.name and _overlaps(row, top)]
        best = not tied and not np.isnan(top["ci_low"])
        verdict[[top.name, *tied]] = "best" if best else "tied"
    return verdict


def _overlaps(row, other) -> bool:
    bounds = [row["ci_low"], row["ci_high"], other["ci_low"], other["ci_high"]]
    return bool(np.isnan(bounds).any() or (row["ci_low"] <= other["ci_high"] and other["ci_low"] <= row["ci_high"]))


def compared(report: dict) -> list[str]:
    """The summary columns the study compares: the config's ``report.compare``, or the default."""
    return report.get("compare") or DEFAULT_COMPARE


def title(report: dict, experiment: str) -> str:
    """The study's title: the config's ``report.title``, or one naming what it compares."""
    return report.get("title") or f"{experiment}: {METRIC_NAMES[metric(report)]} by {', '.join(compared(report))}"


def metric(report: dict) -> str:
    """The summary column the study reports: the config's ``report.metric``, or final_test_acc."""
    return report.get("metric") or "final_test_acc"


def setting_label(row, compare: list[str]) -> str:
    return " / ".join(str(row[c]) for c in compare)


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


def markdown(table: pd.DataFrame, compare: list[str], title: str, metric: str = "final_test_acc") -> str:
    """The study as Markdown: accuracy per keep fraction and setting (the best in bold), the best
    setting or the settings tied for the top per keep fraction (``verdicts``), and what each setting
    trained with."""
    table = table.assign(setting=[setting_label(r, compare) for _, r in table.iterrows()])
    settings = list(dict.fromkeys(table["setting"]))
    lines = [f"### {title}", "", "| keep fraction | " + " | ".join(settings) + " | best |",
             "|---" * (len(settings) + 2) + "|"]
    for f, rows in table.groupby("keep_fraction"):
        rows = rows.set_index("setting")
        cells = [_cell(rows.loc[s], rows.loc[s, "verdict"] == "best") if s in rows.index else "" for s in settings]
        lines.append(f"| {f:g} | " + " | ".join(cells) + f" | {_best(rows)} |")
    lines += ["", _caption(metric), "",
              "| setting | " + " | ".join(SETTING_COLUMNS) + " |", "|---" * (len(SETTING_COLUMNS) + 1) + "|"]
    for s in settings:
        row = table[table["setting"] == s].iloc[0]
        lines.append(f"| {s} | " + " | ".join(_value(row.get(c)) for c in SETTING_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def html(table: pd.DataFrame, compare: list[str], title: str, metric: str = "final_test_acc") -> str:
    """The study table as an HTML page for the report: mean ± std [interval] (%) per keep fraction
    and setting, and the best setting or the settings tied for the top per keep fraction."""
    cells = table.assign(setting=[setting_label(r, compare) for _, r in table.iterrows()],
                         accuracy=[_cell(r, False) for _, r in table.iterrows()])
    wide = cells.pivot(index="keep_fraction", columns="setting", values="accuracy")
    wide = wide[list(dict.fromkeys(cells["setting"]))].fillna("")
    wide["best"] = [_best(rows.set_index("setting")) for _, rows in cells.groupby("keep_fraction")]
    return (f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h3>{title}</h3>"
            + wide.to_html(border=1) + f"<p>{_caption(metric)}</p></body></html>")


def _caption(metric: str) -> str:
    final = "" if metric == "final_test_acc" else "; after 'final': the mean final-epoch test accuracy"
    return (f"{METRICS[metric]} (%), mean ± std over seeds [95 % t-interval of the mean] "
            f"(n = number of seeds){final}. A setting is best in its keep fraction (bold) only when its interval overlaps no other setting's; "
            "otherwise the settings whose intervals overlap the top mean's interval are tied. "
            "With one seed there is no interval: such a setting ties with the top one, and is never best.")


def _best(rows: pd.DataFrame) -> str:
    """The best column of one keep fraction (``rows`` indexed by setting): the best setting's name,
    "all tied" when every setting is, or "tied: " and the tied settings, those without an interval
    marked (n=1)."""
    if (rows["verdict"] == "best").any():
        return rows.index[rows["verdict"] == "best"][0]
    tied = rows[rows["verdict"] == "tied"]
    if len(tied) == len(rows) > 2:
        return f"all {len(rows)} tied"
    return "tied: " + ", ".join(s if n > 1 else f"{s} (n={n})" for s, n in tied["seeds"].items())


def _cell(row, best: bool) -> str:
    if row["seeds"] > 1:
        text = f"{row['mean']:.2f} ± {row['std']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] (n={row['seeds']})"
    else:
        text = f"{row['mean']:.2f} (n={row['seeds']})"
    if "final_mean" in row:
        text += f", final {row['final_mean']:.2f}"
    return f"**{text}**" if best else text


def _value(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
