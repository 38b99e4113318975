"""Reading and writing the pipeline's files.

Every table is Parquet with a JSON provenance record in its schema metadata (key
``prune_distill``): what produced it, from which config, on which data. Every write goes to a
temporary file in the same folder and is renamed into place, so an interrupted job never leaves a
file that looks finished. Every file records a hash of its contents (``content_hash``: in the
provenance record of a table, in the dict of a torch file, ``pipeline.checkpoints``), which its
reader checks, so a file changed after it was written is refused instead of read.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import UserError
from pipeline.warm import STARTED, current_umask

META_KEY = b"prune_distill"
CONTENT_HASH = "content_hash"  # the key of a file's content hash, in a table's record and a torch file's dict


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then rename it onto ``path``, with
    the mode the umask gives a new file (``mkstemp`` makes it private, 0600: on a shared cluster the
    rest of the group could not read the results)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(df: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> None:
    """``df`` as Parquet with ``meta`` as its provenance record (key ``prune_distill``), plus the
    code version and the content hash of the table and record (``table_hash``)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    record = json.loads(json.dumps({**meta, "code_version": code_version(), **started()}, sort_keys=True))  # as a reader sees it
    record[CONTENT_HASH] = table_hash(table, record)
    full_meta = {**(table.schema.metadata or {}), META_KEY: json.dumps(record, sort_keys=True).encode()}
    table = table.replace_schema_metadata(full_meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def table_hash(table: pa.Table, record: dict[str, Any]) -> str | None:
    """Content hash of a table (every column's name and values, row by row, with pandas' own value
    hash, one column in memory at a time: no second copy of the table) and of its provenance record
    (without its ``content_hash``). Hashed from the Arrow table, which the writer and a reader of the
    Parquet file hold alike (a pandas frame may not come back with its dtypes: ints with None come
    back as floats). None for a table whose cells pandas cannot hash (lists, dicts): such a table
    is written without one and read unchecked."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in record.items() if k != CONTENT_HASH}, sort_keys=True).encode())
    try:
        for name, column in zip(table.column_names, table.columns):
            digest.update(f"column {name!r} of {len(column)};".encode())
            digest.update(pd.util.hash_pandas_object(column.to_pandas(), index=False).to_numpy().tobytes())
    except TypeError:
        return None
    return digest.hexdigest()[:16]


# What to do about a file that cannot be read: the workflow remakes a missing output.
REMAKE = "delete it and run the workflow again, which remakes it"


def unreadable(path: str | Path, kind: str, error: BaseException) -> UserError:
    """The one line for a file that is missing, truncated (a full disk, a killed copy) or no file of
    its kind: the path, what is wrong, what to do."""
    if isinstance(error, FileNotFoundError):
        return UserError(f"{path} does not exist; run the workflow, which makes it")
    detail = (str(error).strip().splitlines() or [""])[0][:200]
    return UserError(f"{path} is not a readable {kind} ({type(error).__name__}: {detail}); it may be truncated or "
                     f"another kind of file: {REMAKE}")


def read_table(path: str | Path, kind: str = "Parquet table", columns: tuple[str, ...] = (),
               fingerprint: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A table this pipeline wrote and its provenance record. Each is one line naming the file and
    what to do: an unreadable one (``unreadable``), one with no record (not written here, or
    rewritten by another program), one whose contents no longer hash to its record's
    ``content_hash`` (changed after it was written), one without ``columns`` (another kind of
    table), one made from other data than ``fingerprint``. Tables written before content hashes
    were recorded have none and are read unchecked, so no finished result has to be made again."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise unreadable(path, kind, error) from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise UserError(f"{path} has no provenance record (schema metadata key prune_distill): it was not written by "
                        f"this pipeline, or was rewritten by another program; {REMAKE}")
    record = json.loads(raw)
    recorded = record.get(CONTENT_HASH)
    if recorded is not None and table_hash(table, record) != recorded:
        raise changed(path, table_hash(table, record), recorded)
    frame = table.to_pandas()
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise UserError(f"{path} is not a {kind}: it has no column {', '.join(missing)} (it has "
                        f"{', '.join(map(str, frame.columns))}); {REMAKE}")
    if fingerprint is not None:
        require_same_data(path, record.get("dataset_fingerprint"), fingerprint)
    return frame, record


def changed(path: str | Path, found: str | None, recorded: str) -> UserError:
    """The one line for a file whose contents no longer hash to what its writer recorded."""
    return UserError(f"{path} was changed after it was written: its contents hash to {found}, its record says "
                     f"{recorded}; {REMAKE}")


def read_meta(path: str | Path) -> dict[str, Any]:
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def scores_hash(table: pd.DataFrame) -> str:
    """Content hash of a score table (its sample indices and scores), which the scores stage records
    and the subset stage checks, and every subset drawn from it records."""
    data = table["sample_index"].to_numpy(np.int64).tobytes() + table["score"].to_numpy(np.float64).tobytes()
    return hashlib.sha256(data).hexdigest()[:12]


def require_same_data(path: str | Path, recorded: str | None, expected: str) -> None:
    """Refuse an input made from other data than this run's (fingerprints differ)."""
    if recorded != expected:
        raise UserError(f"{path} was made from data with fingerprint {recorded}, but this run's data has {expected}; "
                        f"it is another run's file: {REMAKE}")


def stable_hash(obj: Any) -> str:
    """Hash of a JSON-able object that does not depend on key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


@functools.cache
def started() -> dict[str, str]:
    """``{"started": "warm"}`` in a job forked from a local run's server (``pipeline.warm``), whose
    Snakemake benchmark measures only its launcher's CPU time and memory; else nothing."""
    return {"started": "warm"} if os.environ.get(STARTED) == "warm" else {}


def code_version() -> str:
    """The git commit of the code, with ``+dirty`` when the tree has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "pipeline", "workflow"],
            cwd=here.parent, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")
