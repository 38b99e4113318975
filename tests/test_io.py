"""Files are written atomically and carry their provenance."""
import os
import stat

import pandas as pd
import pytest

from pipeline.io import atomic_write, code_version, read_meta, read_table, stable_hash, write_table


def test_table_round_trip_keeps_values_and_provenance(tmp_path):
    frame = pd.DataFrame({"sample_index": [0, 1, 2], "score": [0.5, 0.25, 1.0]})
    write_table(frame, tmp_path / "t.parquet", {"scorer": "el2n", "seed": 3})
    back, meta = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, frame)
    assert meta["scorer"] == "el2n" and meta["seed"] == 3
    assert meta["code_version"] == code_version()
    assert read_meta(tmp_path / "t.parquet") == meta


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "out" / "model.pt"

    def write_then_fail(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, write_then_fail)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "scores.parquet"
    target.write_bytes(b"finished earlier")
    with pytest.raises(RuntimeError):
        atomic_write(target, lambda tmp: (_ for _ in ()).throw(RuntimeError("disk full")))
    assert target.read_bytes() == b"finished earlier"


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet", {})
        atomic_write(tmp_path / "x.pt", lambda tmp: tmp.write_bytes(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.parquet").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "x.pt").stat().st_mode) == mode
