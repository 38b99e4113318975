"""What every stage's command line shares: the ``--spec`` JSON (the job's resolved slice of the
config, passed by the Snakemake rule so that changing it reruns the job), threads, the data and
the device (joining the process group when started by torchrun), resumable training state, and
one-line errors for mistakes the user can fix."""
from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any, Callable, Sequence

import torch

from pipeline import devices
from pipeline.data import Dataset, data_options, load_dataset
from pipeline.devices import resolve_device
from pipeline.errors import UserError
from pipeline.resume import PREEMPTED_EXIT_STATUS, Preempted, ResumeFolder


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--spec", required=True, type=json.loads, help="the job's config as JSON")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return p


def add_resume_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="folder for the job's saved training state: continue from it if present, remove it when done")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N", help="save the state every N epochs")


def resume_folder(args: argparse.Namespace, spec: dict[str, Any], inputs: list[str | None]) -> ResumeFolder | None:
    if args.resume is None:
        return None
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    return ResumeFolder(args.resume, spec, [p for p in inputs if p], args.checkpoint_every)


def stage(main: Callable[[Sequence[str] | None], None]) -> Callable[[Sequence[str] | None], None]:
    """Wrap a stage's main: a ``UserError`` becomes one line on stderr and exit status 2; a
    training stopped by SIGTERM (state saved) exits with 143, as if killed by it."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> None:
        try:
            main(argv)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        except Preempted as stopped:
            print(f"preempted: {stopped}", file=sys.stderr)
            raise SystemExit(PREEMPTED_EXIT_STATUS) from None
        finally:
            devices.stop()

    return run


def setup(args: argparse.Namespace) -> tuple[dict[str, Any], Dataset, torch.device]:
    # A job's stdout is its log file: one line per epoch should reach it when printed, not at exit.
    sys.stdout.reconfigure(line_buffering=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.spec
    device = devices.start(resolve_device(spec.get("device", "auto")))
    dataset = load_data(spec["data"])
    print(f"data {dataset.name} ({len(dataset.train)} train, {len(dataset.held_out)} of them held out for validation, "
          f"{len(dataset.test)} test, "
          f"fingerprint {dataset.fingerprint}); device {device}; threads {torch.get_num_threads()}"
          + (f"; rank {devices.ranks().rank} of {devices.ranks().world}" if devices.ranks().enabled else ""))
    return spec, dataset, device


# Datasets a local run's warm server read before forking its jobs (pipeline.warm), by their spec
_PRELOADED: dict[str, Dataset] = {}


def _data_key(data: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in data.items() if k != "download"}, sort_keys=True, default=str)


def preload_data(data: dict[str, Any]) -> None:
    """Read the dataset of ``data`` now, for every later ``load_data`` of it in this process and
    in the processes forked from it."""
    _PRELOADED[_data_key(data)] = load_data(data)


def load_data(data: dict[str, Any]) -> Dataset:
    """The dataset a spec's ``data`` section names."""
    if _data_key(data) in _PRELOADED:
        return _PRELOADED[_data_key(data)]
    return load_dataset(data["dataset"], data.get("root"), data.get("download", False),
                        data.get("train_limit"), data.get("test_limit"), data.get("validation_fraction", 0.0),
                        data.get("validation_seed", 0), data.get("validation_stratified", True), data_options(data),
                        data.get("label_noise"))


def data_meta(dataset: Dataset) -> dict[str, Any]:
    return {"dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint}
