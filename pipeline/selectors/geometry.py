"""Distances for the selectors that pick by the embeddings' geometry (herding, kcenter), computed
on the embeddings' own device a block of rows at a time: an N x d fp16 embedding set is never
copied whole into float32, so ImageNet's 1.28 M x 512 fits beside one block's float32 copy."""
from __future__ import annotations

import torch

# rows per block: 65,536 x 512 float32 values are 128 MiB of scratch (the block's copy and its
# differences to the centre)
CHUNK_ROWS = 65536


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
