"""InfoBatch (Qin et al., ICLR 2024): dynamic data pruning, the baseline MDSLR (seed 001) measures
static subsets against. It needs the whole training set during training.

In each of the first ``pruned_epochs(delta, epochs)`` epochs, the "well-learned" samples (last loss
below the mean last loss) are thinned out: a share ``ratio`` of them is dropped, and the
well-learned samples that stay have their loss scaled by 1 / keep share so the expected gradient is
unchanged. The keep share is 1 - ratio, clamped at 0.1 for ratio > 0.9 (the reference's
``max(0.1, 1 - prune_ratio)``). The remaining epochs train on every sample with weight 1. A
sample's last loss starts equal for all (so nothing is pruned in the first epoch) and is updated
whenever it is trained on.

Two ways to drop, both from the seeded generator that ``plan`` receives:

- ``exact: false`` (default, this project's original rule): each well-learned sample is dropped
  independently with probability min(ratio, 0.9) (``torch.rand`` per sample of the epoch's
  indices, in their order), so the count varies around ratio x the number of well-learned ones.
- ``exact: true`` (the reference's ``InfoBatch.prune``): exactly ``kept_count(ratio, n)`` of the n
  well-learned samples are kept, floor(keep share x n) as the reference's ``int()`` gives, and the
  other n - floor(keep share x n) dropped; the kept ones are the first of a ``torch.randperm(n)``
  of the well-learned samples (taken in the order of the epoch's indices).

Where this differs from the reference code (NUS-HPC-AI-Lab/InfoBatch, ``infobatch/infobatch.py``):
the reference never resets the weights after its last pruned epoch when delta x epochs is not an
integer (it resets only when the epoch counter equals ``stop_prune + 1`` exactly), so the samples
it kept in that epoch stay up-weighted for the rest of training; here every unpruned epoch trains
with weight 1. Products delta x epochs and keep share x n are taken in exact decimal arithmetic,
as the subset budgets are, so they can be one higher than the reference's floats where the exact
product is an integer (delta 0.29 x 100 epochs prunes 29 epochs, the reference's
28.999999999999996 gives 28; ratio 0.8 keeps 2 of 10 well-learned samples, the reference's
int(0.19999999999999996 x 10) keeps 1). Draws come from the training run's own generator, not
numpy's global one (the reference reseeds that with the epoch number).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from pipeline.errors import UserError

MAX_DROP = 0.9  # the reference clamps the keep share at 0.1, so at most 90 % of the well-learned are dropped


def _exact(x: float) -> Fraction:
    return Fraction(str(x))  # the decimal the user wrote, not its binary neighbour


def pruned_epochs(delta: float, epochs: int) -> int:
    """How many leading epochs InfoBatch prunes: epochs 0 .. n - 1 (0-based) with

        n = min(epochs, floor(delta x epochs)),

    delta x epochs in exact decimal arithmetic. This is the reference's rule: its sampler counts
    ``iterations`` from 0, the constructor's own ``reset()`` takes 0, so epoch e (0-based) is
    planned with iterations = e + 1 and pruned while ``iterations <= num_epochs * delta``, i.e.
    e + 1 <= delta x epochs, i.e. e < floor(delta x epochs). With delta x epochs an integer that is
    the first delta share of the epochs (0.5 x 4 prunes epochs 0, 1); otherwise it rounds down
    (0.875 x 10 = 8.75 prunes epochs 0..7, eight; the rule ``epoch < delta x epochs`` pruned
    nine). Epoch 0 counts even though it drops nothing (all last losses are equal then)."""
    return min(epochs, math.floor(_exact(delta) * epochs))


def keep_share(ratio: float) -> Fraction:
    """The share of the well-learned samples an epoch keeps, exactly: 1 - ratio, at least 1/10
    (the reference's ``max(0.1, 1 - prune_ratio)``)."""
    return max(Fraction(1, 10), 1 - _exact(ratio))


def kept_count(ratio: float, well_learned: int) -> int:
    """How many of ``well_learned`` samples an exact-mode epoch keeps: floor(keep share x n), the
    reference's ``int(self.keep_ratio * len(well_learned_indices))``; the rest are dropped."""
    return math.floor(keep_share(ratio) * well_learned)


@dataclass(frozen=True)
class InfoBatchConfig:
    ratio: float = 0.5  # r: share of the well-learned samples dropped in a pruned epoch (clamped at 0.9)
    delta: float = 0.875  # prune during the first floor(delta x epochs) epochs; the rest use all samples
    exact: bool = False  # drop exactly the reference's count (floor) each epoch instead of each with probability r

    def __post_init__(self):
        if not 0 <= self.ratio < 1:
            raise UserError(f"infobatch ratio must be in [0, 1), got {self.ratio}")
        if not 0 <= self.delta <= 1:
            raise UserError(f"infobatch delta must be in [0, 1], got {self.delta}")
        if not isinstance(self.exact, bool):
            raise UserError(f"infobatch exact must be true or false, got {self.exact!r}")

    @property
    def drop_probability(self) -> float:
        """Bernoulli mode: each well-learned sample is dropped with this probability."""
        return min(self.ratio, MAX_DROP)

    @property
    def kept_weight(self) -> float:
        """The loss weight of a well-learned sample that stays: 1 / keep share (1 / (1 - ratio) in
        floats, as before the clamp; 10 when clamped, as the reference's 1 / 0.1)."""
        return 1.0 / (1.0 - self.ratio) if self.ratio <= MAX_DROP else 1.0 / float(keep_share(self.ratio))


class InfoBatch:
    def __init__(self, cfg: InfoBatchConfig, num_samples: int, epochs: int, device: torch.device):
        self.cfg, self.epochs = cfg, epochs
        self.stop = pruned_epochs(cfg.delta, epochs)  # the first epoch that trains on every sample
        self.last_loss = torch.ones(num_samples, device=device)
        self.weight = torch.ones(num_samples, device=device)

    def plan(self, epoch: int, indices: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """The indices to train on this epoch (a subset of ``indices``, in their order); sets their
        loss weights (1 for every sample in an epoch that does not prune)."""
        self.weight.fill_(1.0)
        if epoch >= self.stop or self.cfg.ratio == 0:
            return indices
        losses = self.last_loss[indices.to(self.last_loss.device)].cpu()
        well_learned = losses < losses.mean()
        if self.cfg.exact:
            candidates = torch.nonzero(well_learned).flatten()  # positions in indices, ascending
            keep = kept_count(self.cfg.ratio, len(candidates))
            dropped = torch.zeros(len(indices), dtype=torch.bool)
            dropped[candidates[torch.randperm(len(candidates), generator=rng)[keep:]]] = True
        else:
            dropped = well_learned & (torch.rand(len(indices), generator=rng) < self.cfg.drop_probability)
        kept_well_learned = indices[well_learned & ~dropped]
        self.weight[kept_well_learned.to(self.weight.device)] = self.cfg.kept_weight
        return indices[~dropped]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"last_loss": self.last_loss, "weight": self.weight}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.last_loss.copy_(state["last_loss"])
        self.weight.copy_(state["weight"])

    def update(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        self.last_loss[idx] = losses.detach().float()
