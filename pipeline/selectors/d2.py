"""D2 pruning (Maharana, Yadav & Bansal, "D2 Pruning: Message Passing for Balancing Diversity and
Difficulty in Data Pruning", ICLR 2024; code github.com/adymaharana/d2pruning): a graph over the
group's embeddings whose node values are the difficulty scores; forward message passing lets each
sample take in its neighbours' difficulty, then graph-based sampling keeps the highest value and
lowers its neighbours' (reverse message passing), so the subset is hard and spread out.

Within the group of n samples (one class when class-balanced), with s_i the scores (higher =
harder, of the scorer the selector is listed with), e_i the scoring teacher's embeddings and
d_ij = ||e_i - e_j|| (Euclidean):

1. Graph: N(i) = kNN(i) | {j : i in kNN(j)}, kNN(i) the ``neighbors`` nearest other samples of i
   (equal distances: the lowest index): undirected, each sample linked to its k nearest and to
   those that have it among theirs, as the released code symmetrises ``kneighbors_graph``.
   A group of at most ``neighbors`` samples is the complete graph.
2. Values: x_i = s_i - min(0, min_j s_j): scores used as given when none is negative (forgetting,
   el2n, entropy; the released code uses them so), else shifted so the lowest is 0, as the released
   code shifts its one signed score (AUM) by its minimum. (A negative value would raise, not lower,
   its neighbours' values when picked.)
3. Forward message passing, once: x_i <- x_i + sum_{j in N(i)} exp(-gamma_forward d_ij) x_j
   (the released code's ``--graph-mode sum``; its weight is exp(-d), i.e. gamma_forward = 1).
4. Sampling, k times: keep the not yet kept i with the highest current x_i; each not yet kept
   j in N(i) gets x_j <- x_j - exp(-gamma_reverse d_ij) x_i, x_i the kept sample's current value
   (``--graph-sampling-mode weighted``, gamma_reverse its ``--gamma``). Equal values: ``ties``,
   as the ordering selectors: ``index`` keeps the lowest sample index (the released code's
   ``np.argmax``); ``random`` (default) orders every tie of the pass by one permutation of the
   group drawn from the selection's generator, drawn only when the values of step 3 have equal
   values (e.g. the many zeros of forgetting with zero-score neighbours); without them no draw,
   and a tie met later (the same value reached by two samples' updates) goes to the lowest index.

Defaults are the released commands' (``--n-neighbor 5 --gamma 0.1 --graph-mode sum
--graph-sampling-mode weighted``). ``ties_at_cutoff``: the samples tied at the budget's cut: when
samples left out have the current value that the last kept one had when kept, those plus the kept
samples kept at that value; 0 otherwise (ties met earlier in the pass, which change whose values
the reverse messages lower, are not counted).

Not taken from the released code: its hard cutoff before D2 (``--mis-ratio 0.4``: the hardest 40 %
by AUM dropped first, CCS's beta), which is a separate step, not D2's message passing and sampling;
its random subset for a group of at most ``neighbors`` samples (here the complete graph); its
floor max(s_j, 1e-7) on the forward messages, there only to keep zero-score neighbours as edges of
its dense matrix (edges are explicit here); its directed graph from precomputed neighbours
(``--precomputed-neighbors``, an option of its ImageNet and DataComp runs).

Cost: the kNN search is exact, brute force: all n^2 distances, O(n^2 d) time on the embeddings'
device (``geometry.nearest_neighbors``, float64 products), n k int64 indices and one tile of
scratch (~336 MiB, ``geometry.KNN_TILE``), never an n x n matrix; the graph and the sampling run
on the CPU in float64: at most 2 n k directed edges (24 B each with the weights) and a heap of
about n entries, O(n log n + k_kept neighbors log n) steps. ImageNet per class (n = 1,300,
d = 512) takes ~0.05 s on 2 CPU cores (measured), ~1 minute for its 1,000 classes. Over the whole
set (n = 1.28 M) the search is n^2 d ~ 8 x 10^14 float64 multiply-adds: on paper minutes on a
data-centre GPU (fast float64), hours on a consumer GPU or 2 CPU cores (not measured), and the
graph ~300 MB.
"""
import heapq
from dataclasses import dataclass
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.selectors import SELECTORS, OrderParams, Picked
from pipeline.selectors.geometry import nearest_neighbors, pair_distances


@dataclass(frozen=True)
class Params(OrderParams):
    neighbors: int = 5  # k of the kNN graph (the released commands' --n-neighbor 5)
    gamma_forward: float = 1.0  # forward message weight exp(-gamma d) (the released code's exp(-d))
    gamma_reverse: float = 0.1  # reverse message weight exp(-gamma d) (the released commands' --gamma 0.1)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.neighbors, bool) or not isinstance(self.neighbors, Integral) or self.neighbors < 1:
            raise UserError(f"d2: neighbors must be an integer >= 1, got {self.neighbors!r}")
        for name in ("gamma_forward", "gamma_reverse"):
            gamma = getattr(self, name)
            if isinstance(gamma, bool) or not isinstance(gamma, Real) or not 0 <= gamma < float("inf"):
                raise UserError(f"d2: {name} must be a finite number >= 0, got {gamma!r}")


class Graph(NamedTuple):
    """The undirected graph in compressed rows: sample i's neighbours are
    ``neighbor[start[i]:start[i + 1]]`` (ascending), at distances ``distance[...]``."""

    start: np.ndarray
    neighbor: np.ndarray
    distance: np.ndarray  # float64


def knn_graph(embeddings: torch.Tensor, neighbors: int) -> Graph:
    """Step 1: kNN(i) searched on the embeddings' device, each undirected edge's distance computed
    once, directly."""
    n = len(embeddings)
    nearest = nearest_neighbors(embeddings, min(neighbors, n - 1)).cpu().numpy()
    source = np.repeat(np.arange(n), nearest.shape[1])
    pairs = np.unique(np.minimum(source, nearest.ravel()) * n + np.maximum(source, nearest.ravel()))
    low, high = pairs // n, pairs % n  # (a pair that is in both kNN lists is one edge)
    device = embeddings.device
    distance = pair_distances(embeddings, torch.from_numpy(low).to(device), torch.from_numpy(high).to(device))
    rows, cols = np.concatenate([low, high]), np.concatenate([high, low])
    order = np.lexsort((cols, rows))
    start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return Graph(start, cols[order], np.tile(distance.cpu().double().numpy(), 2)[order])


def forward(values: np.ndarray, graph: Graph, gamma: float) -> np.ndarray:
    """Step 3: x_i + sum_{j in N(i)} exp(-gamma d_ij) x_j for every i."""
    rows = np.repeat(np.arange(len(values)), np.diff(graph.start))
    messages = np.exp(-gamma * graph.distance) * values[graph.neighbor]
    return values + np.bincount(rows, weights=messages, minlength=len(values))


def sample(values: np.ndarray, graph: Graph, gamma: float, k: int, rank: np.ndarray) -> tuple[np.ndarray, int]:
    """Step 4: the positions of the k kept samples in the order kept, and the ties at the cut.
    ``rank[i]``: sample i's place among equal values (lower first)."""
    x = np.array(values, dtype=np.float64)
    weight = np.exp(-gamma * graph.distance)
    # a max-heap of (-value, rank, i). A lowered value leaves its entry as an upper bound, put back
    # at its value when it surfaces; a raised one (after keeping a negative value) is pushed at once.
    # So every sample not kept has an entry >= its value, and an entry that surfaces at its value
    # is the highest value, the lowest rank among equal ones.
    heap = list(zip((-x).tolist(), rank.tolist(), range(len(x))))
    heapq.heapify(heap)
    taken = np.zeros(len(x), dtype=bool)
    kept, kept_at = [], []
    while len(kept) < k:
        negative, place, i = heapq.heappop(heap)
        if taken[i] or -negative < x[i]:  # kept already, or an entry below a raise pushed since
            continue
        if -negative > x[i]:  # lowered since
            heapq.heappush(heap, (float(-x[i]), place, i))
            continue
        taken[i] = True
        kept.append(i)
        kept_at.append(x[i])
        around = slice(graph.start[i], graph.start[i + 1])
        open_ = ~taken[graph.neighbor[around]]
        targets = graph.neighbor[around][open_]
        x[targets] -= weight[around][open_] * x[i]
        if x[i] < 0:
            for j in targets.tolist():
                heapq.heappush(heap, (float(-x[j]), int(rank[j]), j))
    left_out = np.count_nonzero(x[~taken] == kept_at[-1])
    kept_tied = np.count_nonzero(np.asarray(kept_at) == kept_at[-1]) if left_out else 0
    return np.asarray(kept, dtype=np.int64), int(left_out + kept_tied)


@SELECTORS.register("d2", Params)
def d2(scores, indices, k, rng, params: Params = Params(), *, embeddings: torch.Tensor):
    indices = np.asarray(indices)
    if k in (0, len(indices)):  # nothing to choose: no graph, no draw
        return Picked(indices[:k])
    scores = np.asarray(scores, dtype=np.float64)
    graph = knn_graph(embeddings, params.neighbors)
    values = forward(scores - min(scores.min(), 0.0), graph, params.gamma_forward)
    tied = params.ties == "random" and len(np.unique(values)) < len(values)
    rank = rng.permutation(len(indices)) if tied else np.arange(len(indices))
    kept, ties = sample(values, graph, params.gamma_reverse, k, rank)
    return Picked(indices[np.sort(kept)], ties)


# the registry passes it the group's embeddings (select_subset's ``embeddings``)
d2.needs_embeddings = True
