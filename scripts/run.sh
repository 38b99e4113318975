#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the Snakemake workflow; extra arguments go to snakemake
# (e.g. --configfile config/other.yaml, -n, --profile slurm). Default: the embedded experiment
# in config/config.yaml on all local cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# --rerun-incomplete: a job interrupted with Snakemake is done again, never taken as finished.
exec snakemake --cores "${CORES:-all}" --rerun-incomplete "$@"
