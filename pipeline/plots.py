"""Every figure the pipeline draws, from tables the stages computed: test accuracy against keep
fraction, the KD gain heatmap, score histograms, the scorers' rank correlations and the gallery
of kept and pruned samples. Each function takes a table and writes one PNG."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.io import atomic_write  # noqa: E402


def save(fig, path: str) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def accuracy_lines(ax, table: pd.DataFrame, settings: list[str]) -> None:
    """One line per setting of mean ± std final test accuracy (%) against keep fraction (log
    scale); settings without a teacher (labels only) dashed."""
    for i, (_, group) in enumerate(table.groupby(settings, dropna=False, sort=False)):
        ax.errorbar(group["keep_fraction"], group["mean"], yerr=group["std"].fillna(0), color=f"C{i % 10}",
                    linestyle="--" if group["teacher"].isna().all() else "-", marker="o", capsize=3,
                    label=" / ".join(str(group[c].iloc[0]) for c in settings))
    ax.set_xscale("log")
    ticks = sorted(table["keep_fraction"].unique())
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("keep fraction f (share of the training set kept)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=" / ".join(settings), title_fontsize=7)


def study_plot(table: pd.DataFrame, compare: list[str], title: str, path: str, ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    accuracy_lines(ax, table, compare)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    save(fig, path)


def accuracy_per_scorer(table: pd.DataFrame, title: str, path: str) -> None:
    """One panel per scorer: a line per (selector, distillation setting), from ``study.study_table``
    grouped by scorer, selector and distillation."""
    scorers = list(dict.fromkeys(table["scorer"]))
    columns = min(len(scorers), 3)
    rows = -(-len(scorers) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.6 * rows), sharey=True, squeeze=False)
    for ax, scorer in zip(axes.flat, scorers):
        accuracy_lines(ax, table[table["scorer"] == scorer], ["selector", "distillation"])
        ax.set_title(f"scorer {scorer}", fontsize=10)
    for ax in axes[:, 0]:
        ax.set_ylabel("final test accuracy (%)")
    for ax in axes.flat[len(scorers):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    save(fig, path)


def heatmaps(tables: dict[str, pd.DataFrame], title: str, colorbar: str, path: str, number_format: str,
             limit: float | None = None, empty: str = "nothing to show") -> None:
    """One annotated heatmap per table (rows and columns as the table's index and columns), on a
    diverging colour scale from -limit to +limit (default: the largest absolute value), so that
    0 is white and the sign reads from the colour."""
    widest = max([t.shape[1] for t in tables.values()] + [3])
    tallest = max([t.shape[0] for t in tables.values()] + [3])
    fig, axes = plt.subplots(1, max(len(tables), 1), squeeze=False,
                             figsize=((2.5 + 0.8 * widest) * max(len(tables), 1), 1.5 + 0.45 * tallest))
    if not tables:
        axes[0, 0].text(0.5, 0.5, empty, ha="center", va="center")
        axes[0, 0].axis("off")
    if limit is None:
        limit = max([np.nanmax(np.abs(t.to_numpy(float))) for t in tables.values()] + [1e-9])
    for ax, (name, table) in zip(axes.flat, tables.items()):
        values = table.to_numpy(float)
        image = ax.imshow(values, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit)
        ax.set_xticks(range(table.shape[1]), [_label(c) for c in table.columns], rotation=45, ha="right")
        ax.set_yticks(range(table.shape[0]), [_label(r) for r in table.index])
        ax.set_xlabel(table.columns.name or "")
        for (r, c), value in np.ndenumerate(values):
            ax.text(c, r, "" if np.isnan(value) else format(value, number_format), ha="center", va="center", fontsize=7)
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, label=colorbar)
    fig.suptitle(title, fontsize=10)
    save(fig, path)


def _label(value) -> str:
    return " / ".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) else str(value)


def score_histograms(scores: dict[str, pd.DataFrame], path: str, bins: int = 30) -> None:
    """One panel per scorer: the histogram of its scores in each class, as outlines over shared bins."""
    columns = min(len(scores), 3)
    rows = -(-len(scores) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3 * rows), squeeze=False)
    for ax, (name, table) in zip(axes.flat, scores.items()):
        edges = np.histogram_bin_edges(table["score"], bins=bins)
        for i, (label, group) in enumerate(table.groupby("label")):
            ax.hist(group["score"], bins=edges, histtype="step", color=f"C{i % 10}", label=str(label))
        ax.set_title(f"{name}", fontsize=10)
        ax.set_xlabel("score (higher = harder)")
        ax.set_ylabel("samples")
    axes.flat[0].legend(fontsize=6, title="class", title_fontsize=6, ncol=2)
    for ax in axes.flat[len(scores):]:
        ax.set_visible(False)
    fig.suptitle("score histograms per class", fontsize=10)
    save(fig, path)


def gallery(images: dict[int, np.ndarray], picks: pd.DataFrame, title: str, path: str) -> None:
    """A grid of samples: a row per (scorer, class) of ``picks``, a column per (group, rank) in
    their order there; ``images`` maps sample_index to an (H, W) or (H, W, 3) array in [0, 1]."""
    rows = list(dict.fromkeys(zip(picks["scorer"], picks["label"])))
    columns = list(dict.fromkeys(zip(picks["group"], picks["rank"])))
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.3 * len(columns) + 1, 1.4 * len(rows) + 0.6),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for pick in picks.itertuples():
        ax = axes[rows.index((pick.scorer, pick.label)), columns.index((pick.group, pick.rank))]
        ax.imshow(images[pick.sample_index], cmap="gray", vmin=0, vmax=1)
        ax.set_xlabel(f"#{pick.sample_index} {pick.score:.3g}", fontsize=6)
    for ax, (group, rank) in zip(axes[0], columns):
        ax.set_title(f"{group}\n{rank}", fontsize=8)
    for ax, (scorer, label) in zip(axes[:, 0], rows):
        ax.set_ylabel(f"{scorer}\nclass {label}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    save(fig, path)
