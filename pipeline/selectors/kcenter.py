"""k-center greedy (Sener & Savarese, ICLR 2018, the core-set approach), as DeepCore's
``kCenterGreedy`` selects: one sample of the group drawn at random (from the selection's seeded
generator) is the first centre and counts towards the budget; each further step keeps the sample
farthest (Euclidean, in the embeddings) from its nearest kept centre, until k are kept. Equal
distances keep the lowest sample index.

Only each sample's distance to its nearest centre is held (n floats, updated with the new
centre's distances at each step), not DeepCore's k x n matrix of distances to every centre, so
memory is the embeddings plus one block's float32 copy (``geometry.CHUNK_ROWS``). Cost: k passes
over the group's n embeddings, O(k n d), on the embeddings' device. The scores of the scorer it
is listed with are ignored (no ``ties_at_cutoff``).
"""
import numpy as np
import torch

from pipeline.selectors import NO_PARAMS, SELECTORS, Picked
from pipeline.selectors.geometry import squared_distances


@SELECTORS.register("kcenter")
def kcenter(scores, indices, k, rng, params=NO_PARAMS, *, embeddings: torch.Tensor):
    taken = torch.zeros(len(indices), dtype=torch.bool, device=embeddings.device)
    if k == 0:  # (no draw: a class whose budget is 0 leaves the generator as it was)
        return Picked(np.asarray(indices)[:0])
    center = int(rng.integers(len(indices)))
    nearest = torch.full((len(indices),), float("inf"), device=embeddings.device)
    for _ in range(k - 1):
        taken[center] = True
        # squared distances order like distances; a kept sample's -1 is below every distance
        nearest = torch.minimum(nearest, squared_distances(embeddings, embeddings[center])).masked_fill_(taken, -1.0)
        center = int(torch.argmax(nearest))  # (the first of equal maxima: the lowest index)
    taken[center] = True
    return Picked(np.asarray(indices)[taken.cpu().numpy()])


# the registry passes it the group's embeddings (select_subset's ``embeddings``)
kcenter.needs_embeddings = True
