"""Moderate-DS (Xia et al., ICLR 2023): a sample's Euclidean distance, in the scoring teacher's
embedding space (its penultimate features on the un-augmented image), to the mean embedding of its
class, the mean taken over the class's samples not held out. Far from the class mean scores high
(atypical = harder). With the ``medium`` selector, which keeps the window around the median score,
this is Moderate-DS's selection of the samples of moderate distance; per class by default, over
the whole set (the paper's single ranking) with ``class_balanced: false``.
Cost: one pass over the stored embeddings, O(N d), no model run (the embeddings job ran the teacher).
"""
from __future__ import annotations

import numpy as np

from pipeline.scorers import SCORERS, Scorer


@SCORERS.register("moderate")
class Moderate(Scorer):
    needs = frozenset({"embeddings"})

    def score(self, ctx):
        labels = ctx.data.train.labels
        scored = ctx.data.train_indices
        scores = np.full(len(labels), np.nan)  # (held-out samples stay NaN: never kept)
        for label in labels[scored].unique():
            members = scored[labels[scored] == label]
            features = ctx.embeddings[members].double()  # one class at a time: float64 of n_c x d
            scores[members.numpy()] = (features - features.mean(0)).norm(dim=1).cpu().numpy()
        return scores
