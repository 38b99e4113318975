"""Galleries of what the selectors keep: one image per selector, at one keep fraction, with a row
per (scorer the selector draws from, class) of the hardest, medium and easiest samples by score
among the kept samples and among the pruned ones, each under its sample index and score; a row is
labelled by its class's name where the data names its classes."""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from pipeline import plots
from pipeline.cli import load_data, stage
from pipeline.data import Split
from pipeline.io import read_table

GALLERY_CLASSES = 3  # classes shown in each gallery (the first ones)


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
                    experiment: str, class_names: Sequence[str] = (), noisy: torch.Tensor | None = None) -> None:
    """One image per selector: a row per (scorer, class) for each scorer the selector draws from,
    labelled by ``class_names[label]`` (by label; "class <label>" where none is given); with
    ``noisy`` (a mask over the training set, data.label_noise) the samples whose label was
    corrupted are marked."""
    for selector, group in pd.concat(subsets).groupby("selector", sort=False):
        picks = []
        for scorer, kept in group.groupby("scorer", sort=False):
            table = scores[scorer]
            classes = sorted(table["label"].unique())[:GALLERY_CLASSES]
            picks.append(gallery_picks(table, kept["sample_index"].to_numpy(), classes).assign(scorer=scorer))
        picks = pd.concat(picks, ignore_index=True)
        picks["class_name"] = [class_names[c] if 0 <= c < len(class_names) else f"class {c}" for c in picks["label"]]
        if noisy is not None:
            picks["noisy"] = noisy[torch.tensor(picks["sample_index"].to_numpy())].numpy()
        title = (f"{experiment}: selector {selector}, keep fraction {group['keep_fraction'].iloc[0]:g}; "
                 "under each image its sample index and score (higher = harder)")
        plots.gallery(display_images(split, sorted(set(picks["sample_index"]))), picks, title,
                      f"{folder}/{selector}.png")


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=json.loads, help="the experiment and its data section as JSON")
    p.add_argument("--scores", nargs="+", required=True, help="the score tables of the scorers the subsets come from")
    p.add_argument("--subsets", nargs="+", required=True, help="the subsets to show, one keep fraction")
    p.add_argument("--folder", required=True, help="writes <selector>.png there for every selector")
    args = p.parse_args(argv)
    spec = args.spec
    dataset = load_data(spec["data"])
    scores = {}
    for path in args.scores:
        table = read_scores(path, dataset.fingerprint)
        scores[table["scorer"].iloc[0]] = table
    write_galleries([read_subset(path, dataset.fingerprint) for path in args.subsets], scores, dataset.train,
                    args.folder, spec["experiment"], dataset.class_names(),
                    dataset.noisy if dataset.clean_labels is not None else None)


def read_scores(path: str, fingerprint: str) -> pd.DataFrame:
    return read_table(path, "score table", ("sample_index", "label", "score", "scorer"), fingerprint)[0]


def read_subset(path: str, fingerprint: str) -> pd.DataFrame:
    return read_table(path, "subset", ("sample_index", "label", "scorer", "selector", "keep_fraction"), fingerprint)[0]


if __name__ == "__main__":
    main()
