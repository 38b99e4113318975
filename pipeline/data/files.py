"""Finding a dataset's files: the configured root first, then system locations, then a download
(only when the user allowed it). When all fail, one error line says where we looked and how to
get the data."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.errors import UserError


def locate(
    dataset: str,
    candidates: list[Path],
    required: list[str],
    download: Callable[[], Path] | None,
    how_to_install: str,
) -> Path:
    """Return the first directory in ``candidates`` holding every name in ``required`` (each may
    also be present gzipped, as ``name.gz``); else the directory ``download()`` fills."""
    for folder in candidates:
        if all(_exists(folder / name) for name in required):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    if download is None:
        raise UserError(
            f"{dataset} files not found (looked in {looked}); {how_to_install}, "
            "or set data.download: true to download them into data.root"
        )
    folder = download()
    if not all(_exists(folder / name) for name in required):
        raise UserError(f"{dataset} download into {folder} did not produce {', '.join(required)}")
    return folder


def _exists(path: Path) -> bool:
    return path.exists() or path.with_name(path.name + ".gz").exists()


def open_maybe_gzipped(path: Path):
    import gzip

    gz = path.with_name(path.name + ".gz")
    return open(path, "rb") if path.exists() else gzip.open(gz, "rb")
