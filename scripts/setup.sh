#!/usr/bin/env bash
# Set up everything the pipeline and its tests need, on a fresh Debian-like machine or an existing
# checkout (each step is skipped when already done):
#   - the Fashion-MNIST files from Debian's dataset-fashion-mnist package, when missing and apt may install;
#   - a virtual environment in .venv with torch, torchvision, snakemake and the project (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# A torch/torchvision pair that imports together (installs from the local disk on the dev machines).
TORCH_PINS=${TORCH_PINS:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ ! -d data/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian package dataset-fashion-mnist"
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null \
      || echo "setup: could not install dataset-fashion-mnist; set data.download: true or put the IDX files in data/fashion-mnist"
  else
    echo "setup: Fashion-MNIST not found; as root run 'apt-get install dataset-fashion-mnist', or set data.download: true"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.prune-distill-installed
wanted=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing dependencies into .venv"
  # (the filter drops pip's warnings about local package mirrors that lack a package)
  .venv/bin/python -m pip install -q --disable-pip-version-check $TORCH_PINS -e ".[test]" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$wanted" > "$stamp"
fi
.venv/bin/python -c "import torch, torchvision, snakemake, pipeline" \
  || { echo "setup: the environment in .venv does not import; remove .venv and run again"; exit 1; }
