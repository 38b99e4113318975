"""Stage 5: gather every student's result row into ``summary.parquet`` and plot final test
accuracy against keep fraction: one colour per (scorer, selector), labels-only training dashed,
teacher-based training solid, mean and standard deviation over seeds."""
from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.cli import stage  # noqa: E402
from pipeline.io import atomic_write, read_table, write_table  # noqa: E402

KEYS = ["scorer", "selector", "distillation", "keep_fraction"]


def mean_std_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Final test accuracy per (scorer, selector, distillation, keep fraction), over seeds."""
    return (
        summary.groupby(KEYS)["final_test_acc"]
        .agg(mean="mean", std="std", seeds="count")
        .reset_index()
    )


def plot(summary: pd.DataFrame, path: str) -> None:
    stats = mean_std_table(summary)
    losses = summary.drop_duplicates("distillation").set_index("distillation")["loss"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {}
    for (scorer, selector, distillation), group in stats.groupby(KEYS[:3]):
        colour = colours.setdefault((scorer, selector), f"C{len(colours) % 10}")
        ax.errorbar(group["keep_fraction"], 100 * group["mean"], yerr=100 * group["std"].fillna(0),
                    color=colour, linestyle="--" if losses[distillation] == "ce" else "-", marker="o",
                    capsize=3, label=f"{scorer}/{selector}, {distillation}")
    ax.set_xscale("log")
    ticks = sorted(summary["keep_fraction"].unique())
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("keep fraction f (share of the training set kept)")
    ax.set_ylabel("final-epoch test accuracy (%)")
    ax.set_title(f"{summary['experiment'].iloc[0]}: {summary['student'].iloc[0]} student, mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", nargs="+", required=True, help="the students' run.parquet files")
    p.add_argument("--summary-out", required=True)
    p.add_argument("--plot-out", required=True)
    args = p.parse_args(argv)
    summary = pd.concat([read_table(path)[0] for path in args.runs], ignore_index=True)
    summary = summary.sort_values(KEYS + ["seed"], ignore_index=True)
    write_table(summary, args.summary_out, {
        "stage": "aggregate", "experiment": summary["experiment"].iloc[0],
        "dataset_fingerprints": sorted(summary["dataset_fingerprint"].unique()),
    })
    plot(summary, args.plot_out)
    table = mean_std_table(summary)
    table[["mean", "std"]] *= 100
    print(table.pivot_table(index=["scorer", "selector", "keep_fraction"], columns="distillation",
                            values="mean").round(2).to_string())


if __name__ == "__main__":
    main()
