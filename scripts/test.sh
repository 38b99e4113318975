#!/usr/bin/env bash
# Set up (scripts/setup.sh), check the workflow (Snakemake's linter on the default experiment,
# snakefmt's formatting of workflow/; seconds), then run the test suite; extra arguments go to
# pytest. CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --lint --configfile config/config.yaml
snakefmt --check workflow/
exec python -m pytest -q "$@"
