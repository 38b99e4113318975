"""EL2N (Paul et al. 2021): the mean over R proxy runs of || softmax(z(x)) - e_y ||_2, each proxy
trained from scratch on the full training set for a few epochs and scored forward-only on the
un-augmented samples.

Deviation: a proxy's learning-rate schedule spans its own ``train.epochs`` (Paul et al. stop a
full-length schedule early, at epoch ~20 of 200). The proxies' architecture, R and T are config.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.params import parse_params
from pipeline.scorers import SCORERS, Scorer
from pipeline.seeding import derive_seed, seeded_init
from pipeline.train import TrainConfig, fit, predict


def el2n(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    probs = F.softmax(logits.double(), dim=1)
    return (probs - F.one_hot(labels, probs.shape[1]).double()).norm(dim=1)


@SCORERS.register("el2n")
class EL2N(Scorer):
    @dataclass(frozen=True)
    class Params:
        runs: int = 2  # R independent proxies
        model: str = "cnn"
        model_args: dict = field(default_factory=lambda: {"width": 16})
        train: dict = field(default_factory=lambda: {"epochs": 2})  # TrainConfig of each proxy; epochs = T

    def score(self, ctx):
        cfg = parse_params(TrainConfig, self.params.train, "el2n train")
        data, total = ctx.data, np.zeros(len(ctx.data.train))
        for run in range(self.params.runs):
            seed = derive_seed(ctx.seed, "el2n-proxy", str(run))
            with seeded_init(seed, "init"):
                proxy = build_model(self.params.model, data.num_classes, data.in_channels, **self.params.model_args)
            fit(proxy, data, torch.arange(len(data.train)), cfg, seed=seed, device=ctx.device,
                loss=build_loss("ce"), log=lambda line: print(f"el2n proxy {run + 1}/{self.params.runs}: {line}"))
            logits = predict(proxy, data.train, ctx.batch_size, ctx.device)
            total += el2n(logits, data.train.labels).numpy()
        return total / self.params.runs
