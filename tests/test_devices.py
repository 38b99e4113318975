"""Data-parallel training (torchrun, gloo on CPU): two ranks end with identical weights, equal to
one process training on the same global batches, and a teacher job run under torchrun writes its
outputs once, having trained on every sample of every epoch."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.io import read_meta

REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def test_two_ranks_train_as_one_process_on_the_same_global_batches(tmp_path):
    worker = str(REPO / "tests" / "workers" / "ddp_fit.py")
    (tmp_path / "ddp").mkdir()
    result = torchrun(worker, str(tmp_path / "ddp"))
    assert result.returncode == 0, result.stderr[-3000:]
    (tmp_path / "one").mkdir()
    single = subprocess.run([sys.executable, worker, str(tmp_path / "one")], env=ENV, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]

    rank0, rank1, one = (torch.load(tmp_path / p, weights_only=False) for p in ["ddp/rank0.pt", "ddp/rank1.pt", "one/rank0.pt"])
    for key, value in rank0["state_dict"].items():
        assert torch.equal(value, rank1["state_dict"][key]), key  # DDP keeps the replicas identical
        torch.testing.assert_close(value, one["state_dict"][key], rtol=1e-5, atol=1e-6)  # averaged gradients = global batch
    # metrics are summed over ranks: both ranks report the whole epoch, as one process does
    assert rank0["history"]["sample_steps"] == rank1["history"]["sample_steps"] == one["history"]["sample_steps"] == [48] * 3
    assert rank0["history"]["steps"] == [6] * 3  # 6 global batches of 8 (4 per rank)
    for column in ["train_loss", "train_acc", "test_acc"]:
        assert rank0["history"][column] == pytest.approx(one["history"][column], rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_a_teacher_job_under_torchrun_writes_once_and_sees_every_sample(tmp_path):
    spec = ('{"name": "t", "experiment": "ddp", "device": "cpu", '
            '"data": {"dataset": "fashion_mnist", "train_limit": 601, "test_limit": 100}, '
            '"teacher": {"model": "cnn", "model_args": {"width": 4}, "seed": 0, "train": {"epochs": 2, "batch_size": 64}}}')
    result = torchrun("-m", "pipeline.stages.teachers", "--spec", spec, "--model-out", str(tmp_path / "model.pt"),
                      "--epochs-out", str(tmp_path / "epochs.parquet"), "--dynamics-out", str(tmp_path / "dynamics.parquet"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0 of 2" in result.stdout and "rank 1 of 2" in result.stdout
    epochs = pd.read_parquet(tmp_path / "epochs.parquet")
    assert list(epochs["sample_steps"]) == [600, 600]  # 601 samples: each epoch leaves out 1 (601 mod 2)
    dynamics = pd.read_parquet(tmp_path / "dynamics.parquet")
    per_epoch = dynamics.groupby("epoch")["sample_index"]
    assert list(per_epoch.nunique()) == [600, 600] and list(per_epoch.size()) == [600, 600]
    assert dynamics["margin"].notna().all()
    assert read_meta(tmp_path / "epochs.parquet")["ranks"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dynamics.parquet", "epochs.parquet", "model.pt"]


def test_auto_in_a_job_given_a_gpu_that_torch_cannot_see_stops_in_one_line(monkeypatch):
    """device: auto never falls back to the CPU in a job SLURM gave a GPU; outside one it does, and
    device: cpu always trains on the CPU."""
    from pipeline.devices import GPU_GIVEN, resolve_device
    from pipeline.errors import UserError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for var in GPU_GIVEN:
        monkeypatch.delenv(var, raising=False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv("SLURM_JOB_GPUS", "0")
    with pytest.raises(UserError) as error:
        resolve_device("auto")
    assert str(error.value).startswith("this job was given a GPU (SLURM_JOB_GPUS=0) but torch sees none")
    assert "set device: cpu" in str(error.value) and "\n" not in str(error.value)
    assert resolve_device("cpu") == torch.device("cpu")
