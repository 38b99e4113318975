"""InfoBatch (Qin et al., ICLR 2024): dynamic data pruning, the baseline MDSLR (seed 001) measures
static subsets against. It needs the whole training set during training.

Every epoch before the last (1 - delta) share of epochs, each "well-learned" sample (last loss
below the mean last loss) is dropped with probability ``ratio``; the well-learned samples that stay
have their loss scaled by 1 / (1 - ratio) so the expected gradient is unchanged. The last epochs
train on every sample with weight 1. A sample's last loss starts at 1 for all (so nothing is
pruned in the first epoch) and is updated whenever it is trained on.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.errors import UserError


@dataclass(frozen=True)
class InfoBatchConfig:
    ratio: float = 0.5  # r: probability of dropping a well-learned sample in a pruned epoch
    delta: float = 0.875  # prune during the first delta share of epochs; the rest use all samples

    def __post_init__(self):
        if not 0 <= self.ratio < 1:
            raise UserError(f"infobatch ratio must be in [0, 1), got {self.ratio}")
        if not 0 <= self.delta <= 1:
            raise UserError(f"infobatch delta must be in [0, 1], got {self.delta}")


class InfoBatch:
    def __init__(self, cfg: InfoBatchConfig, num_samples: int, epochs: int, device: torch.device):
        self.cfg, self.epochs = cfg, epochs
        self.last_loss = torch.ones(num_samples, device=device)
        self.weight = torch.ones(num_samples, device=device)

    def plan(self, epoch: int, indices: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """The indices to train on this epoch; sets their loss weights."""
        self.weight.fill_(1.0)
        if epoch >= self.cfg.delta * self.epochs or self.cfg.ratio == 0:
            return indices
        losses = self.last_loss[indices.to(self.last_loss.device)].cpu()
        well_learned = losses < losses.mean()
        dropped = well_learned & (torch.rand(len(indices), generator=rng) < self.cfg.ratio)
        kept_well_learned = indices[well_learned & ~dropped]
        self.weight[kept_well_learned.to(self.weight.device)] = 1.0 / (1.0 - self.cfg.ratio)
        return indices[~dropped]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"last_loss": self.last_loss, "weight": self.weight}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.last_loss.copy_(state["last_loss"])
        self.weight.copy_(state["weight"])

    def update(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        self.last_loss[idx] = losses.detach().float()
