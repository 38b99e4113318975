"""EL2N (Paul et al. 2021): the mean over R proxy runs of || softmax(z(x)) - e_y ||_2, scored
forward-only on the un-augmented samples. The R proxies (config ``proxies``: architecture, R, T
epochs) are trained once from scratch on the full data by their own rule and shared with GraNd.

Deviation: a proxy's learning-rate schedule spans its own T epochs (Paul et al. stop a
200-epoch schedule early, at epoch ~20).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.scorers import SCORERS, Scorer
from pipeline.inference import predict


def el2n(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    probs = F.softmax(logits.double(), dim=1)
    return (probs - F.one_hot(labels, probs.shape[1]).double()).norm(dim=1)


@SCORERS.register("el2n")
class EL2N(Scorer):
    needs = frozenset({"proxies"})

    def score(self, ctx):
        labels = ctx.data.train.labels
        runs = [el2n(predict(proxy, ctx.data.train, ctx.batch_size, ctx.device), labels) for proxy in ctx.proxies]
        return torch.stack(runs).mean(0).numpy()
