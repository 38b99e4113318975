#!/usr/bin/env bash
# Set up (scripts/setup.sh), check the workflow (Snakemake's linter on the default experiment,
# snakefmt's formatting of workflow/; seconds), then run the test suite; extra arguments go to
# pytest, which ends with its 15 slowest tests (where CI time goes). CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --lint --configfile config/config.yaml
snakefmt --check workflow/
exec python -m pytest -q --durations=15 "$@"
