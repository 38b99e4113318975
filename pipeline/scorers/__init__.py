"""Scorer registry. A scorer gives every training sample a difficulty score, oriented so that
higher = harder, indexed by canonical sample index (see ``Scorer.score``).

Adding a scorer: one file in this package with a ``Scorer`` subclass registered with
``@SCORERS.register("name")``, and its import below. Its nested frozen dataclass ``Params``
declares its config parameters (registered with it; ``SCORERS.params`` checks a config entry), and
its ``needs`` what the scores stage loads for it into the ``ScoringContext``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from pipeline.data import Dataset
from pipeline.errors import UserError
from pipeline.params import params_dict
from pipeline.registry import Registry
from pipeline.teacher_outputs import augmented_view_logits

SCORERS: Registry = Registry("scorer")


@dataclass
class ScoringContext:
    """What a scorer may use, loaded by the scores stage (``pipeline.stages.scores``): the data, its
    seed, device and batch size, and exactly what the scorer's ``needs`` names; the rest stays
    None (or empty). Scorers read no files."""

    data: Dataset
    seed: int
    device: torch.device
    batch_size: int
    teacher: nn.Module | None = None  # the reference teacher (scoring.teacher)
    # the reference teacher's logits on the un-augmented training set, in canonical order
    teacher_logits: torch.Tensor | None = None
    # the reference teacher's training dynamics (pipeline.dynamics: sample_index, epoch, correct, margin)
    dynamics: pd.DataFrame | None = None
    proxies: list[nn.Module] = field(default_factory=list)  # the R proxy models (config ``proxies``)
    # the reference teacher's penultimate features on the un-augmented training set, canonical
    # order, one row per sample (float16 as stored by the embeddings job)
    embeddings: torch.Tensor | None = None


@dataclass(frozen=True)
class ProxyParams:
    """The parameters of a scorer that reads the shared proxy models."""

    # the proxies at this epoch of their run (one of proxies.score_epochs; 0: at initialisation);
    # None: the fully trained proxies
    epoch: int | None = None


class Scorer:
    # What the scoring job must be given, each a field of ScoringContext: "teacher" (the model), "teacher_logits"
    # (on the training set), "dynamics" (the teacher's recorded training dynamics), "embeddings" (its
    # penultimate features on the training set) and "proxies".
    # The workflow reads it to wire the job's inputs, and the scores stage loads exactly these.
    needs: frozenset[str] = frozenset()
    # Scores that are a seeded random draw (``random``): with selection.random_draws:
    # per_student_seed, each student seed's subset is selected from a fresh draw (``redraw``).
    draws_at_random: bool = False

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, name: str, params: Any = None):
        """``params``: this scorer's Params (its defaults when None); ``build_scorer`` checks a
        config entry into one."""
        self.name = name
        self.params = self.Params() if params is None else params

    def score(self, ctx: ScoringContext) -> np.ndarray:
        """float64 array of length len(ctx.data.train), position = canonical sample index. Only
        the samples not held out for validation (``ctx.data.train_indices``) are kept: the other
        entries may hold anything (NaN included)."""
        raise NotImplementedError

    def params_dict(self) -> dict[str, Any]:
        return params_dict(self.params)


@dataclass(frozen=True)
class ViewParams:
    """The parameters of a scorer of the reference teacher's outputs."""

    # "clean": the teacher's logits on the un-augmented images (computed once by the teacher job);
    # "augmented": on one seeded augmented view of every sample (random crop and flip, the
    # dataset's training augmentation), as MDSLR scores its teacher's CE on one pass of the
    # training loader
    view: str = "clean"
    view_seed: int = 0  # the seed of the augmented view (MDSLR: 10 for trial 1)

    def __post_init__(self):
        if self.view not in ("clean", "augmented"):
            raise UserError(f"view must be 'clean' or 'augmented', got {self.view!r}")


class TeacherOutputScorer(Scorer):
    """A score from the reference teacher's logits (``logits``): on the clean images it reads the
    teacher job's training-set logits, on an augmented view it runs the teacher itself."""

    Params = ViewParams

    def __init__(self, name: str, params: Any = None):
        super().__init__(name, params)
        self.needs = frozenset({"teacher_logits" if self.params.view == "clean" else "teacher"})

    def logits(self, ctx: ScoringContext) -> torch.Tensor:
        if self.params.view == "clean":
            return ctx.teacher_logits
        return augmented_view_logits(ctx.teacher, ctx.data, self.params.view_seed, ctx.batch_size, ctx.device)


def build_scorer(name: str, params: dict[str, Any] | None = None, where: str | None = None) -> Scorer:
    return SCORERS.get(name)(name, SCORERS.params(name, params, where))


from pipeline.scorers import (  # noqa: E402,F401
    aum,
    dual,
    dual_difficulty,
    dyn_unc,
    el2n,
    entropy,
    forgetting,
    grand,
    least_confidence,
    margin,
    moderate,
    random,
    tdds,
    teacher_ce,
)
