"""Iterative global unstructured L1-magnitude pruning of a trained teacher ("prune, then
distill", Park & No 2022; seed 002).

Each round removes ``rate`` of the REMAINING weights of all Conv2d and Linear layers together, the
smallest in absolute value across the whole network (biases and BatchNorm are kept); the masks then
stay fixed while the teacher is retrained. After n rounds at rate 0.2 the sparsity is 1 - 0.8^n.
Pruned weights are exactly zero in the weights themselves (no re-parametrisation, no hooks), so a
pruned checkpoint is an ordinary checkpoint, and pruning it again continues from its zeros.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.errors import UserError


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weight of every Conv2d and Linear layer, by module name."""
    return {name: m.weight for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


class Masks:
    """Which prunable weights are kept. Starts from the model's zeros (a pruned checkpoint's
    pruned weights; an unpruned model has none)."""

    def __init__(self, model: nn.Module):
        self.weights = prunable_weights(model)
        self.kept = {name: w.detach() != 0 for name, w in self.weights.items()}

    def prune(self, rate: float) -> None:
        """Remove ``round(rate * remaining)`` of the remaining weights, smallest |w| first (ties
        by position in module order, then flat index)."""
        if not 0 < rate < 1:
            raise UserError(f"pruning rate must be in (0, 1), got {rate}")
        magnitudes = torch.cat([w.detach().abs().flatten()[self.kept[n].flatten()] for n, w in self.weights.items()])
        count = round(rate * len(magnitudes))
        # stable sort: equal magnitudes go in order of position, so the result never depends on the device
        removed = torch.zeros(len(magnitudes), dtype=torch.bool, device=magnitudes.device)
        removed[torch.sort(magnitudes, stable=True).indices[:count]] = True
        offset = 0
        for name, kept in self.kept.items():
            flat = kept.flatten()
            positions = torch.nonzero(flat).flatten()
            flat[positions[removed[offset:offset + len(positions)]]] = False
            offset += len(positions)
            self.kept[name] = flat.view_as(kept)
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights (after every optimizer step: momentum and weight decay would
        otherwise move them)."""
        for name, w in self.weights.items():
            w.mul_(self.kept[name].to(w.device))

    def to(self, device: torch.device) -> "Masks":
        self.kept = {n: k.to(device) for n, k in self.kept.items()}
        return self

    def sparsity(self) -> float:
        """Share of prunable weights that are zero now, measured on the weights."""
        zeros = sum(int((w == 0).sum()) for w in self.weights.values())
        return zeros / sum(w.numel() for w in self.weights.values())
