"""Every figure the pipeline draws, from tables the stages computed: test accuracy against keep
fraction, the KD gain heatmap, the gain over the random subset with its intervals, accuracy against
wall time, score histograms, the scorers' rank correlations and the gallery
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


def gain_over_random(summary: pd.DataFrame, title: str, path: str) -> None:
    """Each setting's gain over the random subset (``comparisons.add_gains``) as a heatmap in points:
    a row per scorer / selector / distillation, a column per keep fraction, each cell annotated with
    the gain and its 95 % interval, and boxed in bold where the interval excludes 0."""
    settings = summary.drop_duplicates(["scorer", "selector", "distillation", "keep_fraction"])
    settings = settings[settings["gain_over_random"].notna()]
    if settings.empty:
        return _message(title, "no random subset to compare with", path)
    rows = ["scorer", "selector", "distillation"]
    grids = [settings.pivot(index=rows, columns="keep_fraction", values=c) * 100
             for c in ["gain_over_random", "gain_over_random_low", "gain_over_random_high"]]
    gains, lows, highs = (g.to_numpy(float) for g in grids)
    fig, ax = plt.subplots(figsize=(2.5 + 1.1 * gains.shape[1], 1.5 + 0.5 * gains.shape[0]))
    limit = max(np.nanmax(np.abs(gains)), 1e-9)
    image = ax.imshow(gains, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_xticks(range(gains.shape[1]), [_label(c) for c in grids[0].columns])
    ax.set_yticks(range(gains.shape[0]), [_label(r) for r in grids[0].index])
    ax.set_xlabel("keep fraction f")
    for (r, c), gain in np.ndenumerate(gains):
        if np.isnan(gain):
            continue
        excludes_zero = excludes_0(lows[r, c], highs[r, c])
        ax.text(c, r, gain_label(gain, lows[r, c], highs[r, c]), ha="center", va="center", fontsize=7,
                fontweight="bold" if excludes_zero else "normal",
                color="white" if abs(gain) > 0.6 * limit else "black")  # readable on the darkest blues and reds
        if excludes_zero:
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
    fig.colorbar(image, ax=ax, label="gain over random (points)")
    ax.set_title(f"{title}\nboxed: the 95 % interval excludes 0", fontsize=9)
    save(fig, path)


def gain_label(gain: float, low: float, high: float) -> str:
    """A gain and its interval as a heatmap cell says them; the gain alone without an interval."""
    return f"{gain:+.1f}" if np.isnan(low) else f"{gain:+.1f}\n[{low:+.1f}, {high:+.1f}]"


def excludes_0(low: float, high: float) -> bool:
    """Whether an interval lies wholly above or below 0 (False without one)."""
    return bool(low > 0 or high < 0)


def accuracy_vs_cost(summary: pd.DataFrame, title: str, path: str) -> None:
    """Final test accuracy (%) of every run against its pipeline wall time (log scale): colour by
    scorer, circles for static subsets, triangles for InfoBatch, stars for full-data training
    (keep fraction 1). Runs without a measured ``pipeline_seconds`` are left out."""
    runs = summary[summary["pipeline_seconds"].notna()] if "pipeline_seconds" in summary else summary.iloc[:0]
    if runs.empty:
        return _message(title, "no run with a measured pipeline time", path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    scorers = sorted(runs["scorer"].unique())
    for run in runs.itertuples():
        ax.scatter(run.pipeline_seconds, run.final_test_acc * 100, color=f"C{scorers.index(run.scorer) % 10}",
                   marker=_marker(run.keep_fraction, run.infobatch_ratio), s=90 if run.keep_fraction == 1 else 30,
                   edgecolors="black", linewidths=0.4)
    handles = [plt.Line2D([], [], color=f"C{i % 10}", marker="o", linestyle="", label=s) for i, s in enumerate(scorers)]
    kinds = [(0.5, np.nan, "static subset"), (0.5, 0.5, "InfoBatch"), (1.0, np.nan, "full data")]
    handles += [plt.Line2D([], [], color="grey", marker=_marker(f, ratio), linestyle="", label=label)
                for f, ratio, label in kinds]
    if "full_data_seconds" in runs and runs["full_data_seconds"].notna().any():
        # what one labels-only student on every sample costs: the line a pruned result must beat
        estimated = bool(runs["full_data_seconds_estimated"].any()) if "full_data_seconds_estimated" in runs else False
        label = "labels only, all data" + (" (estimated)" if estimated else "")
        handles.append(ax.axvline(float(runs["full_data_seconds"].mean()), color="grey", linestyle="--", label=label))
    ax.legend(handles=handles, fontsize=7, title="scorer; kind of run", title_fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("pipeline wall time (s, log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    save(fig, path)


def _marker(keep_fraction: float, infobatch_ratio: float) -> str:
    return "*" if keep_fraction == 1 else "o" if np.isnan(infobatch_ratio) else "^"


def _message(title: str, text: str, path: str) -> None:
    """A figure that only says why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    ax.set_title(title, fontsize=10)
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
    their order there; ``images`` maps sample_index to an (H, W) or (H, W, 3) array in [0, 1]. A
    row is labelled by its class's name where ``picks`` has a ``class_name`` column, else "class <label>";
    where ``picks`` has a ``noisy`` column, samples with a corrupted label are marked "noisy" in red."""
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
        noisy = getattr(pick, "noisy", False)  # a corrupted label (data.label_noise): marked in red
        ax.set_xlabel(f"#{pick.sample_index} {pick.score:.3g}" + (" noisy" if noisy else ""), fontsize=6,
                      color="red" if noisy else "black")
    for ax, (group, rank) in zip(axes[0], columns):
        ax.set_title(f"{group}\n{rank}", fontsize=8)
    names = dict(zip(picks["label"], picks["class_name"])) if "class_name" in picks else {}
    for ax, (scorer, label) in zip(axes[:, 0], rows):
        ax.set_ylabel(f"{scorer}\n{names.get(label) or f'class {label}'}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    save(fig, path)
