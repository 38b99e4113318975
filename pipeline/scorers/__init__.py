"""Scorer registry. A scorer gives every training sample a difficulty score, oriented so that
higher = harder, indexed by canonical sample index (see ``Scorer.score``).

Adding a scorer: one file in this package with a ``Scorer`` subclass registered with
``@SCORERS.register("name")``, and its import below. Its ``Params`` dataclass is its config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from pipeline.checkpoints import load_model, load_train_logits
from pipeline.data import Dataset
from pipeline.errors import UserError
from pipeline.io import read_table, require_same_data
from pipeline.params import parse_params
from pipeline.registry import Registry

SCORERS: Registry = Registry("scorer")


@dataclass
class ScoringContext:
    """What a scorer may use: the data, its seed and device, the reference teacher's checkpoint
    and recorded training dynamics, and the shared proxy models' checkpoints (each loaded only
    when a scorer asks; the workflow provides only what the scorer's ``needs`` names)."""

    data: Dataset
    seed: int
    device: torch.device
    batch_size: int
    teacher_path: Path | None = None
    dynamics_path: Path | None = None
    teacher_logits_path: Path | None = None
    proxy_paths: list[Path] = field(default_factory=list)

    def teacher(self) -> nn.Module:
        if self.teacher_path is None:
            raise UserError("this scorer needs a trained teacher, but none was given")
        return load_model(self.teacher_path, self.data.fingerprint)[0]

    def dynamics(self) -> pd.DataFrame:
        if self.dynamics_path is None:
            raise UserError("this scorer needs the teacher's training dynamics, but none were given")
        frame, meta = read_table(self.dynamics_path)
        require_same_data(self.dynamics_path, meta.get("dataset_fingerprint"), self.data.fingerprint)
        return frame

    def teacher_logits(self) -> torch.Tensor:
        """The trained teacher's logits on the un-augmented training set, in canonical order."""
        if self.teacher_logits_path is None:
            raise UserError("this scorer needs the teacher's training-set logits, but none were given")
        return load_train_logits(self.teacher_logits_path, self.data.fingerprint)

    def proxies(self) -> list[nn.Module]:
        """The R proxy models trained from scratch on the full data (config ``proxies``)."""
        if not self.proxy_paths:
            raise UserError("this scorer needs the proxy models, but none were given")
        return [load_model(path, self.data.fingerprint)[0] for path in self.proxy_paths]


class Scorer:
    # What the scoring job must be given: any of "teacher" (checkpoint), "teacher_logits" (on the
    # training set), "dynamics" (the teacher's recorded training dynamics) and "proxies". The
    # workflow reads it to wire the job's inputs.
    needs: frozenset[str] = frozenset()

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


from pipeline.scorers import aum, el2n, entropy, forgetting, grand, least_confidence, margin, random, teacher_ce  # noqa: E402,F401
