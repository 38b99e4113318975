"""The benchmark command runs on this CPU at tiny sizes and writes every measure (a test that it
works, not a timing test: the numbers are only checked for being the right kind of number)."""
import pandas as pd

from pipeline import bench
from pipeline.io import read_meta


def test_bench_writes_every_measure(tmp_path, capsys):
    out = tmp_path / "bench.parquet"
    bench.main(["--device", "cpu", "--samples", "96", "--model", "cnn", "--teacher", "cnn", "--student", "cnn",
                "--batch-size", "32", "--score-batch-size", "64", "--workers", "0", "--out", str(out)])
    table = pd.read_parquet(out)
    assert set(table["measure"]) == {
        "train_images_per_second", "stock_loader_images_per_second", "train_speedup_over_stock_loader",
        "labels_only_images_per_second", "kd_online_images_per_second", "kd_online_step_cost_over_labels_only",
        "teacher_views_seconds", "kd_cached_images_per_second", "kd_cached_speedup_over_online",
        "subset_train_seconds", "subset_time_share_of_full", "scoring_images_per_second", "train_flops_per_second",
    }  # no share of the bf16 peak on a CPU
    assert (table["value"] > 0).all()
    shares = table[table["measure"] == "subset_time_share_of_full"].set_index("keep_fraction")["value"]
    assert sorted(shares.index) == [0.1, 0.3, 0.5, 1.0] and shares[1.0] == 1.0
    speedup = table.set_index("measure")["value"]
    assert speedup["train_speedup_over_stock_loader"] == speedup["train_images_per_second"] / speedup["stock_loader_images_per_second"]
    assert speedup["kd_cached_speedup_over_online"] == speedup["kd_cached_images_per_second"] / speedup["kd_online_images_per_second"]
    assert table["device"].nunique() == 1 and table["device"].iloc[0].startswith("cpu")
    assert read_meta(out)["args"]["samples"] == 96
    assert "train_speedup_over_stock_loader" in capsys.readouterr().out
