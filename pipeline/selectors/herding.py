"""Herding (Welling, ICML 2009), as DeepCore's ``Herding`` selects: greedily, each step adds the
sample that brings the mean of the kept set closest to the mean of the whole group.

With the group's embeddings x_j, their mean mu and S the sum of the t samples kept so far, step t
keeps the not yet kept j minimising ||(t + 1) mu - S - x_j|| (= (t + 1) times the distance of the
new mean (S + x_j) / (t + 1) to mu); equal distances keep the lowest sample index. Deterministic:
no random draw, no score (the scores of the scorer it is listed with are ignored, so no
``ties_at_cutoff``). Cost: k steps, each one pass over the group's n embeddings, O(k n d), on the
embeddings' device.
"""
import numpy as np
import torch

from pipeline.selectors import NO_PARAMS, SELECTORS, Picked
from pipeline.selectors.geometry import row_mean, squared_distances


@SELECTORS.register("herding")
def herding(scores, indices, k, rng, params=NO_PARAMS, *, embeddings: torch.Tensor):
    mean = row_mean(embeddings)
    kept_sum = torch.zeros_like(mean)
    taken = torch.zeros(len(indices), dtype=torch.bool, device=embeddings.device)
    for step in range(k):
        target = (step + 1) * mean - kept_sum
        distances = squared_distances(embeddings, target).masked_fill_(taken, float("inf"))
        chosen = int(torch.argmin(distances))  # (the first of equal minima: the lowest index)
        taken[chosen] = True
        kept_sum += embeddings[chosen].double()
    return Picked(np.asarray(indices)[taken.cpu().numpy()])


# the registry passes it the group's embeddings (select_subset's ``embeddings``)
herding.needs_embeddings = True
