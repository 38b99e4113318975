"""The per-sample training dynamics that forgetting and AUM read, recorded by the training loop
from its own forward passes."""
from __future__ import annotations

import pandas as pd
import torch

from pipeline.devices import ranks, sum_across_ranks


class Dynamics:
    """Correctness and margin z_y - max_{k != y} z_k of every sample at every presentation,
    taken from the training forward pass itself (augmented view, train mode), as forgetting
    (Toneva et al. 2019) and AUM (Pleiss et al. 2020) define them."""

    def __init__(self, num_samples: int, epochs: int, device: torch.device):
        self.correct = torch.zeros(epochs, num_samples, dtype=torch.bool, device=device)
        self.margin = torch.full((epochs, num_samples), float("nan"), device=device)
        self.seen = torch.zeros(epochs, num_samples, dtype=torch.bool, device=device)

    @torch.no_grad()
    def update(self, epoch: int, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
        self.correct[epoch, indices] = logits.argmax(1) == labels
        self.margin[epoch, indices] = margins(logits.float(), labels)
        self.seen[epoch, indices] = True

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"correct": self.correct, "margin": self.margin, "seen": self.seen}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            getattr(self, name).copy_(value)

    def sum_across_ranks(self) -> None:
        """Under torchrun each rank saw its share of the samples: gather every rank's records."""
        if not ranks().enabled:
            return
        seen = sum_across_ranks(self.seen.to(torch.uint8))
        self.correct = sum_across_ranks(self.correct.to(torch.uint8)).bool()
        self.margin = sum_across_ranks(torch.where(self.seen, self.margin, 0.0)).where(seen.bool(), float("nan"))
        self.seen = seen.bool()

    def to_frame(self) -> pd.DataFrame:
        epoch, index = torch.nonzero(self.seen.cpu(), as_tuple=True)
        return pd.DataFrame(
            {
                "sample_index": index.numpy(),
                "epoch": epoch.numpy().astype("int32") + 1,  # 1-based, as in the per-epoch metrics
                "correct": self.correct.cpu()[epoch, index].numpy(),
                "margin": self.margin.cpu()[epoch, index].numpy(),
            }
        )


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y - max_{k != y} z_k per row."""
    target = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return target - others.max(1).values
