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

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import torch

from pipeline.io import atomic_write, code_version, stable_hash

PREEMPTED_EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(Exception):
    """Training stopped on a signal after saving its state."""


class ResumeFolder:
    def __init__(self, folder: str | Path, spec: dict[str, Any], inputs: list[str | Path] = (), every: int = 1):
        self.folder = Path(folder)
        self.every = every  # save at the start of every n-th epoch
        files = {str(p): _stat(p) for p in inputs}
        self.key = stable_hash({"spec": spec, "code_version": code_version(), "inputs": files})

    def load(self, name: str, part: str = "") -> dict[str, Any] | None:
        """The saved state ``name`` of this job (and ``part``, e.g. a pruning round), if any."""
        path = self.folder / f"{name}.pt"
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("key") != self.key or state.get("part") != part:
            print(f"resume: ignoring {path}, saved by another run or part of this job")
            return None
        print(f"resume: continuing from {path}")
        return state["state"]

    def save(self, name: str, state: dict[str, Any], part: str = "") -> None:
        path = self.folder / f"{name}.pt"
        atomic_write(path, lambda tmp: torch.save({"key": self.key, "part": part, "state": state}, tmp))

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
