"""Moderate-DS (Xia et al., ICLR 2023): a sample's Euclidean distance, in the scoring teacher's
embedding space (its penultimate features on the un-augmented image), to the centre of its class,
taken over the class's samples not held out. The centre is, as the released code computes it
(``get_median`` in its selection.py), the coordinate-wise median of the class's embeddings
(``center: median``, the default; the middle two averaged for an even count); ``center: mean``
takes the class mean instead. Far from the centre scores high (atypical = harder).

With the ``medium`` selector, which keeps the window around the median score, this is
Moderate-DS's selection of the samples of moderate distance: per class by default; with
``class_balanced: false`` all samples are ranked together, as the released code ranks them (its
window, [round(n (1 - f) / 2), round(n (1 + f) / 2)), can differ from ``medium``'s by one position
at each end: the budget here is exact).
Cost: one pass over the stored embeddings, O(N d) (plus a per-class median), no model run (the
embeddings job ran the teacher).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError
from pipeline.scorers import SCORERS, Scorer


@SCORERS.register("moderate")
class Moderate(Scorer):
    needs = frozenset({"embeddings"})

    @dataclass(frozen=True)
    class Params:
        center: str = "median"  # the class centre: "median" (coordinate-wise, the released code's) or "mean"

        def __post_init__(self):
            if self.center not in ("median", "mean"):
                raise UserError(f"moderate center must be 'median' or 'mean', got {self.center!r}")

    def score(self, ctx):
        labels = ctx.data.train.labels
        scored = ctx.data.train_indices
        scores = np.full(len(labels), np.nan)  # (held-out samples stay NaN: never kept)
        center = np.median if self.params.center == "median" else np.mean
        for label in labels[scored].unique():
            members = scored[labels[scored] == label]
            features = ctx.embeddings[members].double().cpu().numpy()  # one class at a time: n_c x d
            scores[members.numpy()] = np.linalg.norm(features - center(features, axis=0), axis=1)
        return scores
