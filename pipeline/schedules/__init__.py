"""Learning-rate schedules (config ``train.schedule: {name: ..., <its parameters>}``).

A schedule gives the learning rate of each optimizer step from the base rate (``train.lr``) and
where the step stands (``Clock``): the share of training done, the epoch, and the epochs done once
the step is taken, so that epochs of varying length (InfoBatch) and a steps budget keep the
schedule. Every schedule takes ``warmup_epochs``: a linear warm-up that multiplies the rate by the
epochs done after the step over ``warmup_epochs`` until it reaches 1 (the first step of an epoch of
n steps with a one-epoch warm-up runs at base / n).

Adding a schedule: one file in this package with a ``Schedule`` subclass registered with
``@SCHEDULES.register("name")`` (its ``Params`` dataclass, with ``warmup_epochs``, is its config),
and its import below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pipeline.errors import UserError
from pipeline.params import params_dict
from pipeline.registry import Registry

SCHEDULES: Registry = Registry("schedule")


class Clock(NamedTuple):
    """Where an optimizer step stands in training."""

    progress: float  # share of the whole training done before this step, in [0, 1)
    epoch: int  # the current epoch (pass), 0-based
    epochs_done: float  # epochs done once this step is taken (epoch + (step + 1) / steps of the epoch)


@dataclass(frozen=True)
class WarmupParams:
    warmup_epochs: float = 0.0  # linear warm-up over this many epochs (0: none)

    def __post_init__(self):
        if self.warmup_epochs < 0:
            raise UserError(f"schedule warmup_epochs must be >= 0, got {self.warmup_epochs}")


class Schedule:
    Params = WarmupParams

    def __init__(self, params: Any):
        self.params = params

    def lr(self, base: float, clock: Clock) -> float:
        warmup = self.params.warmup_epochs
        factor = min(1.0, clock.epochs_done / warmup) if warmup else 1.0
        return factor * self.rate(base, clock)

    def rate(self, base: float, clock: Clock) -> float:
        """The rate without the warm-up."""
        raise NotImplementedError


def schedule_entry(entry: dict[str, Any] | None, where: str = "train.schedule") -> dict[str, Any]:
    """A config's ``schedule`` entry checked, with every parameter of its schedule filled in."""
    entry = dict(entry or {"name": "onecycle"})
    if "name" not in entry:
        raise UserError(f"config error in {where}: a schedule needs a name; known: {', '.join(SCHEDULES.names())}")
    name = entry.pop("name")
    return {"name": name, **params_dict(SCHEDULES.params(name, entry, where))}


def build_schedule(entry: dict[str, Any]) -> Schedule:
    entry = dict(entry)
    name = entry.pop("name")
    return SCHEDULES.get(name)(SCHEDULES.params(name, entry))


from pipeline.schedules import cosine, multistep, onecycle  # noqa: E402,F401
