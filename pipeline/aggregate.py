"""Stage 5: gather every student's result row into ``summary.parquet``, plot final test accuracy
against keep fraction for every setting, and write the study's own table and plot: final test
accuracy per keep fraction (rows) and compared setting (columns, the config's ``report.compare``),
mean ± std over seeds, the best setting of each keep fraction marked, beside the teacher and
student each setting used."""
from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.cli import stage  # noqa: E402
from pipeline.io import atomic_write, read_table, write_table  # noqa: E402

KEYS = ["scorer", "selector", "distillation", "keep_fraction"]
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


def plot(table: pd.DataFrame, compare: list[str], title: str, path: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (key, group) in enumerate(table.groupby(compare, dropna=False, sort=False)):
        labels_only = group["teacher"].isna().all()
        ax.errorbar(group["keep_fraction"], group["mean"], yerr=group["std"].fillna(0), color=f"C{i % 10}",
                    linestyle="--" if labels_only else "-", marker="o", capsize=3,
                    label=setting_label(group.iloc[0], compare))
    ax.set_xscale("log")
    ticks = sorted(table["keep_fraction"].unique())
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("keep fraction f (share of the training set kept)")
    ax.set_ylabel("final-epoch test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, title=" / ".join(compare), title_fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


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


def _value(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", nargs="+", required=True, help="the students' run.parquet files")
    p.add_argument("--report", type=json.loads, default={}, help="the config's report section as JSON")
    p.add_argument("--summary-out", required=True)
    p.add_argument("--plot-out", required=True)
    p.add_argument("--study-table-out", required=True)
    p.add_argument("--study-markdown-out", required=True)
    p.add_argument("--study-plot-out", required=True)
    args = p.parse_args(argv)
    summary = pd.concat([read_table(path)[0] for path in args.runs], ignore_index=True)
    summary = summary.sort_values(KEYS + ["seed"], ignore_index=True)
    experiment = summary["experiment"].iloc[0]
    meta = {"stage": "aggregate", "experiment": experiment, "report": args.report,
            "dataset_fingerprints": sorted(summary["dataset_fingerprint"].unique())}
    write_table(summary, args.summary_out, meta)
    everything = study_table(summary, KEYS[:3])
    plot(everything, KEYS[:3], f"{experiment}: every setting, mean ± std over seeds", args.plot_out)

    compare = args.report.get("compare") or KEYS[:3]
    title = args.report.get("title") or f"{experiment}: final test accuracy by {', '.join(compare)}"
    table = study_table(summary, compare)
    write_table(table, args.study_table_out, meta)
    text = markdown(table, compare, title)
    atomic_write(args.study_markdown_out, lambda tmp: tmp.write_text(text))
    plot(table, compare, title, args.study_plot_out)
    print(text)


if __name__ == "__main__":
    main()
