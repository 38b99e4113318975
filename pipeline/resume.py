"""Resumable jobs: training state saved atomically while a job runs, and picked up when the job is
started again after a kill, a time limit or a preemption.

A job's states live in one folder (``--resume DIR``), each file tagged with the job's ``key``: a
hash of its spec, the code version and its input files' sizes and modification times. A state
made by another config, other code or other inputs is ignored (and replaced at the next save), so
a resumed run is always the run that was interrupted. The folder is removed when the job has
written its outputs.

SIGTERM (what SLURM sends at a time limit or preemption, before SIGKILL) and SIGUSR1 only raise a
flag: the training loop finishes its current step, saves its state and raises ``Preempted``,
which the stage turns into exit status 143.
"""
from __future__ import annotations

import copy
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoints import load_torch, save_torch
from pipeline.io import code_version, stable_hash

PREEMPTED_EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(Exception):
    """Training stopped on a signal after saving its state."""


class ResumeFolder:
    def __init__(self, folder: str | Path, spec: dict[str, Any], inputs: list[str | Path] = (), every: int = 1,
                 part: str = ""):
        self.folder = Path(folder)
        self.every = every  # save at the start of every n-th epoch
        self.part = part  # which part of the job saves here (a pruning round); "" for the whole job
        files = {str(p): _stat(p) for p in inputs}
        self.key = stable_hash({"spec": spec, "code_version": code_version(), "inputs": files})

    def for_part(self, part: str) -> "ResumeFolder":
        """The same folder, for one part of the job: a state saved by another part is ignored."""
        other = copy.copy(self)
        other.part = part
        return other

    def load(self, name: str) -> dict[str, Any] | None:
        """The saved state ``name`` of this job's part, if any. Saved states hold tensors and plain
        values only, so they load with ``weights_only=True`` (no pickled objects run); a damaged one,
        or one changed after it was saved, is one line (``load_torch``)."""
        path = self.folder / f"{name}.pt"
        if not path.exists():
            return None
        state = load_torch(path, "saved training state", ("key", "part", "state"))
        if state.get("key") != self.key or state.get("part") != self.part:
            print(f"resume: ignoring {path}, saved by another run or part of this job")
            return None
        print(f"resume: continuing from {path}")
        return state["state"]

    def save(self, name: str, state: dict[str, Any]) -> None:
        path = self.folder / f"{name}.pt"
        save_torch(path, {"key": self.key, "part": self.part, "state": state})

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _stat(path: str | Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


class StopSignal:
    """While active, SIGTERM and SIGUSR1 set ``requested`` instead of killing the process."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, _frame) -> None:
        print(f"received signal {signal.Signals(signum).name}: saving state after this step")
        self.requested = True

    def __enter__(self) -> "StopSignal":
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def capture(parts: dict[str, Any]) -> dict[str, Any]:
    """The state of every named part of a training run (None parts skipped): ``state_dict()`` of
    modules, optimizers and records, ``get_state()`` of generators, and torch's global streams."""
    state = {name: part.get_state() if isinstance(part, torch.Generator) else part.state_dict()
             for name, part in parts.items() if part is not None}
    return {**state, "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore(state: dict[str, Any], parts: dict[str, Any]) -> None:
    """Put back what ``capture`` took into the same parts."""
    for name, part in parts.items():
        if part is None:
            continue
        if isinstance(part, torch.Generator):
            part.set_state(state[name])
        else:
            part.load_state_dict(state[name])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
