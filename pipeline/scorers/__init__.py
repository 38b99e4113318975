"""Scorer registry. A scorer gives every training sample a difficulty score, oriented so that
higher = harder, indexed by canonical sample index (see ``Scorer.score``).

Adding a scorer: one file in this package with a ``Scorer`` subclass registered with
``@SCORERS.register("name")``, and its import below. Its ``Params`` dataclass is its config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from pipeline.checkpoints import load_model
from pipeline.data import Dataset
from pipeline.errors import UserError
from pipeline.io import read_table
from pipeline.params import parse_params
from pipeline.registry import Registry

SCORERS: Registry = Registry("scorer")


@dataclass
class ScoringContext:
    """What a scorer may use: the data, its seed and device, and the reference teacher's
    checkpoint and recorded training dynamics (loaded only when a scorer asks)."""

    data: Dataset
    seed: int
    device: torch.device
    batch_size: int
    teacher_path: Path | None = None
    dynamics_path: Path | None = None

    def teacher(self) -> nn.Module:
        if self.teacher_path is None:
            raise UserError("this scorer needs a trained teacher, but none was given")
        return load_model(self.teacher_path, self.data.fingerprint)[0]

    def dynamics(self) -> pd.DataFrame:
        if self.dynamics_path is None:
            raise UserError("this scorer needs the teacher's training dynamics, but none were given")
        frame, meta = read_table(self.dynamics_path)
        if meta.get("dataset_fingerprint") != self.data.fingerprint:
            raise UserError(
                f"{self.dynamics_path} records data {meta.get('dataset_fingerprint')}, "
                f"this run's data is {self.data.fingerprint}"
            )
        return frame


class Scorer:
    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        self.name = name
        self.params = parse_params(self.Params, params, f"scorer {name!r}")

    def score(self, ctx: ScoringContext) -> np.ndarray:
        """float64 array of length len(ctx.data.train), position = canonical sample index."""
        raise NotImplementedError

    def params_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.params)


def build_scorer(name: str, params: dict[str, Any] | None = None) -> Scorer:
    return SCORERS.get(name)(name, params)


from pipeline.scorers import el2n, forgetting, random, teacher_ce  # noqa: E402,F401
