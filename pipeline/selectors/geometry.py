"""Distances for the selectors that pick by the embeddings' geometry (herding, kcenter, d2),
computed on the embeddings' own device a block of rows at a time: an N x d fp16 embedding set is
never copied whole into float32, so ImageNet's 1.28 M x 512 fits beside one block's float32 copy
(for the nearest-neighbour search, two blocks' and one tile of distances: never an N x N matrix)."""
from __future__ import annotations

import torch

# rows per block: 65,536 x 512 float32 values are 128 MiB of scratch (the block's copy and its
# differences to the centre)
CHUNK_ROWS = 65536
# rows and columns of a nearest-neighbour tile: 4,096 x 4,096 float64 distances, their float32
# rounding, its int64 keys and a boolean mask are 336 MiB of scratch
KNN_TILE = 4096


def squared_distances(points: torch.Tensor, center: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """||points[i] - center||^2 for every row, float32 on ``points``' device, by direct differences
    (not ||x||^2 - 2 x.c + ||c||^2, whose cancellation can reorder near ties)."""
    center = center.to(points.device, torch.float32)
    out = torch.empty(len(points), dtype=torch.float32, device=points.device)
    for start in range(0, len(points), chunk_rows):
        block = points[start:start + chunk_rows].float()
        out[start:start + chunk_rows] = (block - center).square().sum(1)
    return out


def row_mean(points: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """The mean row, summed in float64 a block at a time (float64 on ``points``' device)."""
    total = torch.zeros(points.shape[1], dtype=torch.float64, device=points.device)
    for start in range(0, len(points), chunk_rows):
        total += points[start:start + chunk_rows].double().sum(0)
    return total / len(points)


def pair_distances(points: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                   chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """||points[first[e]] - points[second[e]]|| (Euclidean) for every pair e, float32 on ``points``'
    device, by direct differences, so a pair's distance is the same in either order."""
    out = torch.empty(len(first), dtype=torch.float32, device=points.device)
    for start in range(0, len(first), chunk_rows):
        stop = start + chunk_rows
        block = points[first[start:stop]].float()
        out[start:stop] = block.sub_(points[second[start:stop]].float()).square_().sum(1).sqrt_()
    return out


def nearest_neighbors(points: torch.Tensor, k: int, chunk_rows: int = KNN_TILE) -> torch.Tensor:
    """The k nearest other rows of every row (Euclidean; a row is not its own neighbour, an equal
    row is), an n x k int64 tensor on ``points``' device, nearest first, distances equal in float32
    in ascending row index. Exact search over tiles of ``chunk_rows`` rows by ``chunk_rows``
    columns, whose k nearest per row are merged with the row's k best so far: scratch is one tile,
    memory n k int64, time O(n^2 d). Squared distances ||x||^2 + ||y||^2 - 2 x.y in float64, whose
    cancellation is then far below float32's precision (a float16 embedding's products are exact),
    rounded to float32 for the order."""
    n = len(points)
    if not 0 <= k < n:
        raise ValueError(f"internal error: {k} nearest neighbours among {n} rows")
    nearest = torch.empty((n, k), dtype=torch.int64, device=points.device)
    for r0 in range(0, n, chunk_rows):
        rows = points[r0:r0 + chunk_rows].double()
        row_norms = rows.square().sum(1, keepdim=True)
        best = torch.empty((len(rows), 0), dtype=torch.int64, device=points.device)
        for c0 in range(0, n, chunk_rows):
            cols = points[c0:c0 + chunk_rows].double()
            tile = (row_norms + cols.square().sum(1)).addmm_(rows, cols.T, alpha=-2).float()
            tile.masked_fill_(tile <= 0, 0.0)  # rounding's negatives, and -0.0, whose bits would sort first
            if c0 == r0:
                tile.fill_diagonal_(float("inf"))  # (a square tile: rows and columns share the block size)
            # a non-negative float32's bits order as its value: bits * 2^32 + column is a unique key
            # in the order (distance, index), so topk's choice among equal distances is the lowest
            # index on every device
            columns = torch.arange(c0, c0 + len(cols), device=points.device)
            keys = tile.view(torch.int32).long().mul_(2 ** 32).add_(columns)
            best = torch.cat([best, keys.topk(min(k, len(cols)), 1, largest=False, sorted=False).values], 1)
            best = best.topk(min(k, best.shape[1]), 1, largest=False, sorted=False).values
        nearest[r0:r0 + len(rows)] = best.sort(1).values & (2 ** 32 - 1)
    return nearest
