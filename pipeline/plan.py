"""What an experiment costs before it runs: ``python -m pipeline.plan CONFIG [CONFIG ...]``.

For each config, a dry run of the whole workflow (``snakemake -n --forceall``) lists its jobs; the
table gives their number per rule and the GPU-hours the cluster resources' FLOP model estimates
(``workflow/rules/resources.smk``: model FLOPs x images trained, at the config's ``throughput``, by
default an assumed 2 TFLOP/s). Each job's runtime limit there is ``startup_minutes`` + ``margin`` x
that estimate, so the estimate is read back from the limits as (runtime - startup) / margin minutes
per job and GPU: the same model, to within a minute a job.

With several configs, a last row plans them run together: a job whose outputs another config's
job makes too (a teacher, its cached outputs, proxies or scores of the same spec, kept in
``results/shared/``) counts once.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from pipeline.cli import stage
from pipeline.config import validate_config
from pipeline.errors import UserError

SNAKEFILE = Path(__file__).resolve().parent.parent / "workflow" / "Snakefile"
JOB = re.compile(r"^\s*(?:local)?rule (\w+):$")
RESOURCES = re.compile(r"^\s*resources: (.*)$")
OUTPUT = re.compile(r"^\s*output: (.*)$")


def dry_run(config: str) -> str:
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-n", "--forceall",
                             "--configfile", config], capture_output=True, text=True)
    if result.returncode:
        raise UserError(f"the dry run of {config} failed: {(result.stderr or result.stdout).strip().splitlines()[-1]}")
    return result.stdout


def jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists, the target rule ``all`` left out."""
    return [(rule, resources) for rule, resources, _ in jobs_with_outputs(output)]


def jobs_with_outputs(output: str) -> list[tuple[str, dict[str, str], str]]:
    """(rule, resources, its outputs as listed) of every job a dry run lists but ``all``."""
    found, rule, outputs = [], None, ""
    for line in output.splitlines():
        if m := JOB.match(line):
            rule, outputs = m[1], ""
        elif (m := OUTPUT.match(line)) and rule is not None:
            outputs = m[1]
        elif (m := RESOURCES.match(line)) and rule not in (None, "all"):
            found.append((rule, dict(item.split("=", 1) for item in m[1].split(", ")), outputs))
            rule = None
    return found


def gpu_hours(planned: list[tuple[str, dict[str, str]]], startup_minutes: float = 15, margin: float = 2) -> float:
    """The FLOP model's estimate summed over the jobs that ask for GPUs (their limits less the
    config's ``throughput.startup_minutes``, over its ``margin``)."""
    minutes = sum(int(r.get("gpu", 0)) * max(int(r.get("runtime", startup_minutes)) - startup_minutes, 0) / margin
                  for _, r in planned)
    return minutes / 60


def throughput(config: str) -> dict[str, float]:
    """The startup_minutes and margin of a config's runtime limits."""
    with open(config) as f:
        section = validate_config(yaml.safe_load(f))["throughput"]
    return {"startup_minutes": section["startup_minutes"], "margin": section["margin"]}


def row(name: str, planned: list[tuple[str, dict[str, str]]], limits: dict[str, float]) -> str:
    counts = Counter(rule for rule, _ in planned)
    per_rule = ", ".join(f"{n} {rule}" for rule, n in sorted(counts.items()))
    return f"| {name} | {len(planned)} ({per_rule}) | {gpu_hours(planned, **limits):,.0f} |"


def together(plans: list[list[tuple[str, dict[str, str], str]]]) -> list[tuple[str, dict[str, str]]]:
    """The jobs of several plans run together: each set of outputs once."""
    unique = {outputs: (rule, resources) for planned in plans for rule, resources, outputs in planned}
    return list(unique.values())


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", help="experiment configs")
    args = p.parse_args(argv)
    print("| config | jobs | estimated GPU-hours |\n|---|---|---|")
    plans, limits = [], [throughput(config) for config in args.configs]
    for config, config_limits in zip(args.configs, limits):
        plans.append(jobs_with_outputs(dry_run(config)))
        print(row(f"`{config}`", [(rule, resources) for rule, resources, _ in plans[-1]], config_limits), flush=True)
    if len(plans) > 1:
        if any(config_limits != limits[0] for config_limits in limits):
            raise UserError("the configs' throughput.startup_minutes and margin differ: plan them together only when equal")
        print(row(f"all {len(plans)} together (shared jobs once)", together(plans), limits[0]))


if __name__ == "__main__":
    main()
