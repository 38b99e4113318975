"""Warm starts (pipeline.warm): a stage run with python -m while a server is up runs in a child
forked from it, with the same output, exit status and standard streams as a cold start; stopping
the server removes only its own folder, and later jobs start cold. (A warm job killed or
preempted: tests/test_resume.py; a local run's jobs all warm: tests/test_workflow.py.)"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli, warm

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    monkeypatch.delenv(warm.COLD, raising=False)
    warm.start()
    yield Path(os.environ[warm.SOCKET])
    warm.stop()


def stage(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline.stages.subsets", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def server_children() -> str:
    pid = warm._server.pid  # noqa: SLF001 - the test's own server
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().strip()


def test_a_stage_runs_warm_as_it_would_cold_and_stopping_leaves_the_working_folder(server, tmp_path):
    assert server.is_socket()
    warm_help, warm_error = stage("--help"), stage("--spec", "{}")
    assert warm_help.returncode == 0 and "--spec" in warm_help.stdout and warm_help.stderr == ""
    assert warm_error.returncode == 2 and "the following arguments are required" in warm_error.stderr
    assert server_children() == ""  # each child was reaped once its job ended

    warm.stop()
    assert not server.parent.exists() and (tmp_path / "keep.txt").read_text() == "mine"
    assert warm.SOCKET not in os.environ
    cold_help, cold_error = stage("--help"), stage("--spec", "{}")
    assert (cold_help.returncode, cold_help.stdout, cold_help.stderr) == (0, warm_help.stdout, "")
    assert (cold_error.returncode, cold_error.stderr) == (2, warm_error.stderr)


def test_cold_when_asked_or_when_the_server_is_gone(tmp_path, monkeypatch):
    monkeypatch.setenv(warm.COLD, "1")
    warm.start()
    assert warm.SOCKET not in os.environ
    monkeypatch.delenv(warm.COLD)
    monkeypatch.setenv(warm.SOCKET, str(tmp_path / "no-server"))  # a server that went away: the job starts cold
    assert stage("--help").returncode == 0


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
                    reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_a_preloaded_dataset_is_the_one_every_later_load_returns(monkeypatch):
    """The server reads the run's data once; its children's load_data find it, whatever the
    download flag (the datasets job's business), and another data section is read anew."""
    monkeypatch.setattr(cli, "_PRELOADED", {})
    data = {"dataset": "fashion_mnist", "root": "data", "train_limit": 100, "test_limit": 50}
    cli.preload_data({**data, "download": False})
    assert cli.load_data(data) is cli.load_data({**data, "download": True}) is next(iter(cli._PRELOADED.values()))
    other = cli.load_data({**data, "train_limit": 60})
    assert len(other.train) == 60 and len(cli.load_data(data).train) == 100
