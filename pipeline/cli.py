"""What every stage's command line shares: the ``--spec`` JSON (the job's resolved slice of the
config, passed by the Snakemake rule so that changing it reruns the job), threads, the data and
the device, and one-line errors for mistakes the user can fix."""
from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any, Callable, Sequence

import torch

from pipeline.data import Dataset, load_dataset
from pipeline.errors import UserError
from pipeline.train import resolve_device


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--spec", required=True, type=json.loads, help="the job's config as JSON")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return p


def stage(main: Callable[[Sequence[str] | None], None]) -> Callable[[Sequence[str] | None], None]:
    """Wrap a stage's main: a ``UserError`` becomes one line on stderr and exit status 2."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> None:
        try:
            main(argv)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return run


def setup(args: argparse.Namespace) -> tuple[dict[str, Any], Dataset, torch.device]:
    # A job's stdout is its log file: one line per epoch should reach it when printed, not at exit.
    sys.stdout.reconfigure(line_buffering=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.spec
    device = resolve_device(spec.get("device", "auto"))
    data = spec["data"]
    dataset = load_dataset(data["dataset"], data.get("root"), data.get("download", False),
                           data.get("train_limit"), data.get("test_limit"))
    print(f"data {dataset.name} ({len(dataset.train)} train, {len(dataset.test)} test, "
          f"fingerprint {dataset.fingerprint}); device {device}; threads {torch.get_num_threads()}")
    return spec, dataset, device


def data_meta(dataset: Dataset) -> dict[str, Any]:
    return {"dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint}
