"""The study: what a run of students says, as tables the user reads. The reported accuracy (%; the
config's ``report.metric``, final-epoch test accuracy by default) per compared setting (the
config's ``report.compare``) and keep fraction, mean ± std over seeds, beside
the teacher and student each setting used, as a table, Markdown (best setting of each keep
fraction marked) and an HTML page; and the KD gain of each teacher setting over training on the
labels only. Computed from ``summary.parquet`` (one row per student run); drawn by
``pipeline.plots``."""
from __future__ import annotations

import pandas as pd

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
    ``std``, ``seeds``), with the final-epoch test accuracy beside it when another metric is
    reported (``final_mean``, ``final_std``), and the teacher and student of each setting."""
    groups = summary.groupby([*compare, "keep_fraction"], dropna=False)
    table = groups[metric].agg(mean="mean", std="std", seeds="count") * [100, 100, 1]
    if metric != "final_test_acc":
        table = table.join(groups["final_test_acc"].agg(final_mean="mean", final_std="std") * 100)
    settings = groups[[c for c in SETTING_COLUMNS if c not in compare]].first()
    return table.join(settings).reset_index()


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
    lines += ["", _caption(metric), "",
              "| setting | " + " | ".join(SETTING_COLUMNS) + " |", "|---" * (len(SETTING_COLUMNS) + 1) + "|"]
    for s in settings:
        row = table[table["setting"] == s].iloc[0]
        lines.append(f"| {s} | " + " | ".join(_value(row.get(c)) for c in SETTING_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def html(table: pd.DataFrame, compare: list[str], title: str, metric: str = "final_test_acc") -> str:
    """The study table as an HTML page for the report: mean ± std (%) per keep fraction and setting."""
    cells = table.assign(setting=[setting_label(r, compare) for _, r in table.iterrows()],
                         accuracy=[_cell(r, False) for _, r in table.iterrows()])
    wide = cells.pivot(index="keep_fraction", columns="setting", values="accuracy")
    wide = wide[list(dict.fromkeys(cells["setting"]))].fillna("")
    return (f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h3>{title}</h3>"
            + wide.to_html(border=1) + f"<p>{_caption(metric)}</p></body></html>")


def _caption(metric: str) -> str:
    final = "" if metric == "final_test_acc" else "; [in brackets: the final-epoch test accuracy]"
    return f"{METRICS[metric]} (%), mean ± std over seeds (n = number of seeds){final}."


def _cell(row, best: bool) -> str:
    text = f"{row['mean']:.2f} ± {row['std']:.2f} (n={row['seeds']})" if row["seeds"] > 1 else f"{row['mean']:.2f} (n=1)"
    if "final_mean" in row:
        text += f" [{row['final_mean']:.2f}]"
    return f"**{text}**" if best else text


def _value(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
