"""Stage 0 (with ``data.download: true``): the dataset's files, downloaded once.

The one job every job that loads the data waits for: it finds the dataset's folder as the loaders
do (``data.root`` first, then the system locations), downloads the files there when they are
missing, and writes where they are and what they are (names and sizes), so that no two jobs
download at once on compute nodes. The workflow runs it where Snakemake runs (a ``localrule``):
on a cluster that is the login node, the one with internet.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.cli import parser, stage
from pipeline.data import DATASET_FOLDERS
from pipeline.io import atomic_write


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--output", required=True, help="the JSON record of the dataset's folder and files")
    args = p.parse_args(argv)
    spec = args.spec
    root = spec["root"]
    folder = DATASET_FOLDERS.get(spec["dataset"])(Path(root) if root else None, True)
    files = {str(path.relative_to(folder)): path.stat().st_size for path in sorted(folder.rglob("*")) if path.is_file()}
    record = {"dataset": spec["dataset"], "folder": str(folder), "files": files}
    atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    print(f"{spec['dataset']}: {len(files)} files in {folder}")


if __name__ == "__main__":
    main()
