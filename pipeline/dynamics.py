"""The per-sample training dynamics that forgetting, AUM, dynamic uncertainty, TDDS and DUAL read,
recorded by the training loop from its own forward passes; and the scorers' side: the per-epoch
matrix of one recorded column (``per_epoch``) and its sliding windows (``windows``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.devices import ranks, sum_across_ranks
from pipeline.errors import UserError

EPS = 1e-8  # inside the logarithms of ``prob_change``, as TDDS's released code


class Dynamics:
    """Of every sample at every presentation, taken from the training forward pass itself
    (augmented view, train mode): correctness and margin z_y - max_{k != y} z_k, as forgetting
    (Toneva et al. 2019) and AUM (Pleiss et al. 2020) define them; the softmax probability of the
    true class p_y (``true_prob``: dynamic uncertainty, DUAL); and ``prob_change``
    sum_c |p_c (log(p_c + eps) - log(p'_c + eps))| between this presentation's softmax p and the
    sample's presentation in the previous epoch p' (NaN at the first epoch, and where the previous
    epoch did not present it), TDDS's per-epoch contribution as its released code computes it.

    ``prob_change`` keeps every sample's last softmax (num_samples x classes float32 on the device:
    2 MB for CIFAR-10, 5.1 GB for ImageNet-1k). Under torchrun a rank knows the previous softmax of
    the samples it presented itself only, so most changes stay NaN there (TDDS then refuses)."""

    def __init__(self, num_samples: int, epochs: int, device: torch.device):
        self.correct = torch.zeros(epochs, num_samples, dtype=torch.bool, device=device)
        self.margin = torch.full((epochs, num_samples), float("nan"), device=device)
        self.true_prob = torch.full((epochs, num_samples), float("nan"), device=device)
        self.prob_change = torch.full((epochs, num_samples), float("nan"), device=device)
        self.seen = torch.zeros(epochs, num_samples, dtype=torch.bool, device=device)
        self.last_epoch = torch.full((num_samples,), -1, dtype=torch.int64, device=device)
        self.last_probs: torch.Tensor | None = None  # (num_samples, classes), made at the first update

    @torch.no_grad()
    def update(self, epoch: int, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
        logits = logits.float()
        probs = logits.softmax(1)
        if self.last_probs is None:
            self.last_probs = torch.zeros(self.seen.shape[1], logits.shape[1], device=logits.device)
        change = (probs * (torch.log(probs + EPS) - torch.log(self.last_probs[indices] + EPS))).abs().sum(1)
        self.correct[epoch, indices] = logits.argmax(1) == labels
        self.margin[epoch, indices] = margins(logits, labels)
        self.true_prob[epoch, indices] = probs.gather(1, labels[:, None]).squeeze(1)
        last = self.last_epoch[indices]
        self.prob_change[epoch, indices] = change.where((last == epoch - 1) & (last >= 0), float("nan"))
        self.seen[epoch, indices] = True
        self.last_probs[indices] = probs
        self.last_epoch[indices] = epoch

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"correct": self.correct, "margin": self.margin, "true_prob": self.true_prob,
                 "prob_change": self.prob_change, "seen": self.seen, "last_epoch": self.last_epoch}
        if self.last_probs is not None:
            state["last_probs"] = self.last_probs
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """A state saved before ``true_prob`` was recorded leaves it NaN for the epochs before the
        resume (the scorers that read it then refuse the table as incomplete)."""
        for name, value in state.items():
            if name == "last_probs" and self.last_probs is None:
                self.last_probs = value.to(self.seen.device, copy=True)
            else:
                getattr(self, name).copy_(value)

    def sum_across_ranks(self) -> None:
        """Under torchrun each rank saw its share of the samples: gather every rank's records."""
        if not ranks().enabled:
            return
        seen = sum_across_ranks(self.seen.to(torch.uint8))
        self.correct = sum_across_ranks(self.correct.to(torch.uint8)).bool()
        self.margin = sum_across_ranks(torch.where(self.seen, self.margin, 0.0)).where(seen.bool(), float("nan"))
        self.true_prob = sum_across_ranks(torch.where(self.seen, self.true_prob, 0.0)).where(seen.bool(), float("nan"))
        known = self.seen & ~self.prob_change.isnan()
        change = sum_across_ranks(torch.where(known, self.prob_change, 0.0))
        self.prob_change = change.where(sum_across_ranks(known.to(torch.uint8)).bool(), float("nan"))
        self.seen = seen.bool()

    def to_frame(self) -> pd.DataFrame:
        epoch, index = torch.nonzero(self.seen.cpu(), as_tuple=True)
        return pd.DataFrame(
            {
                "sample_index": index.numpy(),
                "epoch": epoch.numpy().astype("int32") + 1,  # 1-based, as in the per-epoch metrics
                "correct": self.correct.cpu()[epoch, index].numpy(),
                "margin": self.margin.cpu()[epoch, index].numpy(),
                "true_prob": self.true_prob.cpu()[epoch, index].numpy(),
                "prob_change": self.prob_change.cpu()[epoch, index].numpy(),
            }
        )


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y - max_{k != y} z_k per row."""
    target = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return target - others.max(1).values


def per_epoch(frame: pd.DataFrame, column: str, scored: np.ndarray, num_samples: int, scorer: str,
              epochs: int | None = None, first: int = 1) -> np.ndarray:
    """``column`` of the dynamics table ``frame`` as float64 (num_samples, T - first + 1): row =
    canonical sample index, columns epochs ``first`` .. T, T = ``epochs`` (None: every recorded
    epoch). Rows not in ``scored`` (held out: the teacher never saw them) are NaN. One line where
    the table is from before ``column`` was recorded (naming its file, ``frame.attrs["path"]``, set
    by the scores stage's reader), has fewer than T epochs, or lacks a scored sample's value at one
    of them."""
    where = frame.attrs.get("path", "the teacher's training dynamics")
    if column not in frame.columns:
        raise UserError(f"{where} has no column {column}, which {scorer} reads: it was written before the teacher "
                        f"recorded it; rerun the teacher (snakemake --forcerun teachers)")
    recorded = int(frame["epoch"].max()) if len(frame) else 0
    epochs = recorded if epochs is None else epochs
    if recorded < epochs or epochs < first:
        raise UserError(f"{scorer} needs {epochs} epochs of the teacher's training dynamics, but {where} has {recorded}")
    values = (frame.pivot(index="sample_index", columns="epoch", values=column)
              .reindex(index=range(num_samples), columns=range(first, epochs + 1)).to_numpy(dtype=np.float64))
    incomplete = scored[np.isnan(values[scored]).any(axis=1)]
    if len(incomplete):
        shown = ", ".join(str(i) for i in incomplete[:10]) + (", ..." if len(incomplete) > 10 else "")
        raise UserError(f"{scorer} needs every sample's {column} at each of epochs {first}-{epochs} of the teacher's "
                        f"training, but {where} lacks it for {len(incomplete)} samples: {shown}")
    return values


def windows(values: np.ndarray, window: int) -> np.ndarray:
    """The sliding windows of ``window`` consecutive epochs of a (num_samples, T) matrix:
    (num_samples, T - window + 1, window), window k = epochs k+1 .. k+window."""
    return np.lib.stride_tricks.sliding_window_view(values, window, axis=1)
