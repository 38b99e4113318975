"""EL2N (Paul et al. 2021): the mean over R proxy runs of || softmax(z(x)) - e_y ||_2, scored
forward-only on the un-augmented samples. The R proxies (config ``proxies``: architecture, R, T
epochs) are trained once from scratch on the full data by their own rule and shared with GraNd.
Paul et al. score them early inside a long run (epoch 20 of 200): ``proxies.score_epochs: [20]``
with ``epoch: 20`` here; by default the fully trained proxies.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.inference import predict
from pipeline.scorers import SCORERS, ProxyParams, Scorer


def el2n(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    probs = F.softmax(logits.double(), dim=1)
    return (probs - F.one_hot(labels, probs.shape[1]).double()).norm(dim=1)


@SCORERS.register("el2n")
class EL2N(Scorer):
    needs = frozenset({"proxies"})
    Params = ProxyParams

    def score(self, ctx):
        labels = ctx.data.train.labels
        runs = [el2n(predict(proxy, ctx.data.train, ctx.batch_size, ctx.device), labels) for proxy in ctx.proxies]
        return torch.stack(runs).mean(0).numpy()
