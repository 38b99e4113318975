"""Resumable training: a run stopped by SIGTERM after any step, or killed with SIGKILL, and started
again ends exactly where the uninterrupted run ends (same metrics, same weights, same dynamics);
a saved state from another config is ignored."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import tiny
import torch

from pipeline import warm
from pipeline.dynamics import Dynamics
from pipeline.infobatch import InfoBatchConfig
from pipeline.io import read_meta
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.resume import PREEMPTED_EXIT_STATUS, Preempted, ResumeFolder
from pipeline.seeding import seeded_init
from pipeline.teacher_outputs import NoTeacher, OnlineTeacher
from pipeline.train import TrainConfig, fit

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
TIMING = ["seconds", "images_per_second"]


@pytest.fixture(scope="module")
def data():
    return tiny.random_dataset(40)


SETTINGS = {
    "labels, dynamics": dict(loss=lambda: build_loss("ce"), dynamics=True),
    "kd, infobatch": dict(loss=lambda: build_loss("kd", alpha=0.5, temperature=2.0), teacher=True,
                          infobatch=InfoBatchConfig(ratio=0.5, delta=0.75)),
    "vid (learned regressors)": dict(loss=lambda: build_loss("vid", student_layers=["features.2"],
                                                             teacher_layers=["features.2"]), teacher=True),
}


def run(data, setting, resume=None, stop_at_step=None):
    """Train 4 epochs of 5 steps; with ``stop_at_step``, send this process SIGTERM after that step."""
    with seeded_init(0, "init"):
        model = build_model("cnn", 3, 1, width=2)
    with seeded_init(1, "init"):
        teacher = build_model("cnn", 3, 1, width=4) if setting.get("teacher") else None
    dynamics = Dynamics(len(data.train), 4, CPU) if setting.get("dynamics") else None
    steps = 0

    def after_step():
        nonlocal steps
        steps += 1
        if steps == stop_at_step:
            os.kill(os.getpid(), signal.SIGTERM)

    history = fit(model, data, torch.arange(40), TrainConfig(epochs=4, batch_size=8), seed=3, device=CPU,
                  loss=setting["loss"](), teacher=OnlineTeacher(teacher) if teacher else NoTeacher(), dynamics=dynamics, infobatch=setting.get("infobatch"),
                  after_step=after_step, resume=resume, log=lambda line: None)
    return history.drop(columns=TIMING), model.state_dict(), dynamics


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("stop_at_step", [3, 5, 12])  # mid-epoch, at an epoch's last step, in a later epoch
def test_stopped_by_sigterm_and_resumed_ends_as_the_uninterrupted_run(data, tmp_path, name, stop_at_step):
    setting = SETTINGS[name]
    expected, expected_weights, expected_dynamics = run(data, setting)
    resume = ResumeFolder(tmp_path / "resume", {"job": name}, every=2)
    with pytest.raises(Preempted, match=r"stopped by a signal at epoch \d, step \d"):
        run(data, setting, resume, stop_at_step)
    assert (tmp_path / "resume" / "fit.pt").exists()
    history, weights, dynamics = run(data, setting, resume)
    pd.testing.assert_frame_equal(history, expected)
    for key, value in expected_weights.items():
        assert torch.equal(weights[key], value), key
    if expected_dynamics is not None:
        assert torch.equal(dynamics.seen, expected_dynamics.seen)
        assert torch.equal(dynamics.correct, expected_dynamics.correct)
        assert torch.equal(dynamics.margin.nan_to_num(), expected_dynamics.margin.nan_to_num())


def test_a_state_saved_for_another_config_is_ignored(data, tmp_path, capsys):
    setting = SETTINGS["labels, dynamics"]
    with pytest.raises(Preempted):
        run(data, setting, ResumeFolder(tmp_path, {"alpha": 0.5}), stop_at_step=7)
    expected, _, _ = run(data, setting)
    history, _, _ = run(data, setting, ResumeFolder(tmp_path, {"alpha": 0.9}))
    assert "ignoring" in capsys.readouterr().out
    pd.testing.assert_frame_equal(history, expected)  # trained from scratch, not from the other run's state


def test_epoch_start_states_are_saved_every_n_epochs(data, tmp_path):
    resume = ResumeFolder(tmp_path, {}, every=2)
    saved = []
    resume.save = lambda name, state, part="": saved.append(state["run"]["epoch"])
    run(data, SETTINGS["labels, dynamics"], resume)
    assert saved == [2]  # the start of epoch 3 of 4 (0-based 2); the start of epoch 1 has nothing to save


def teacher_job(tmp_path: Path, name: str) -> list[str]:
    spec = ('{"name": "t", "experiment": "resume", "device": "cpu", '
            '"data": {"dataset": "fashion_mnist", "train_limit": 2000, "test_limit": 200}, '
            '"teacher": {"model": "cnn", "model_args": {"width": 8}, "seed": 0, '
            '"train": {"epochs": 6, "batch_size": 50}}}')
    out = tmp_path / name
    return [sys.executable, "-m", "pipeline.stages.teachers", "--spec", spec, "--threads", "1",
            "--model-out", str(out / "model.pt"), "--epochs-out", str(out / "epochs.parquet"),
            "--dynamics-out", str(out / "dynamics.parquet"), "--resume", str(out / "resume")]


def wait_for_warm_children(timeout: float = 30) -> None:
    """Until the warm server (if any) has no child left: a killed job's child is gone too."""
    server = warm._server  # noqa: SLF001 - the test's own server
    if server is None:
        return
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    deadline = time.monotonic() + timeout
    while children.read_text().strip():
        assert time.monotonic() < deadline, f"the warm server's children {children.read_text()} still run"
        time.sleep(0.05)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
@pytest.mark.parametrize("started", ["cold", "warm"])
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_teacher_job_started_again_ends_as_the_uninterrupted_one(tmp_path, kill, started):
    """Cold, and warm: each job forked from a local run's server (pipeline.warm), which the job's
    own process passes its signal to (SIGTERM), or whose child dies with it (SIGKILL)."""
    if started == "warm":
        warm.start()
    try:
        run_killed_and_again(tmp_path, kill)
    finally:
        warm.stop()
    assert read_meta(tmp_path / "twice" / "epochs.parquet").get("started", "cold") == started


def run_killed_and_again(tmp_path: Path, kill: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    uninterrupted = subprocess.run(teacher_job(tmp_path, "once"), env=env, capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    job = subprocess.Popen(teacher_job(tmp_path, "twice"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "twice" / "resume" / "fit.pt", job)  # saved at the start of epoch 2
    job.send_signal(kill)
    _, stderr = job.communicate(timeout=60)
    wait_for_warm_children()
    assert job.returncode == (-signal.SIGKILL if kill == signal.SIGKILL else PREEMPTED_EXIT_STATUS), stderr
    assert not (tmp_path / "twice" / "epochs.parquet").exists()
    if kill == signal.SIGTERM:
        assert "preempted: stopped by a signal at epoch" in stderr

    again = subprocess.run(teacher_job(tmp_path, "twice"), env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "resume: continuing from" in again.stdout
    assert not (tmp_path / "twice" / "resume").exists()  # removed once the outputs are written
    for table in ["epochs.parquet", "dynamics.parquet"]:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "twice" / table).drop(columns=TIMING, errors="ignore"),
                                      pd.read_parquet(tmp_path / "once" / table).drop(columns=TIMING, errors="ignore"))
    once = torch.load(tmp_path / "once" / "model.pt", weights_only=True)["state_dict"]
    twice = torch.load(tmp_path / "twice" / "model.pt", weights_only=True)["state_dict"]
    assert once.keys() == twice.keys() and all(torch.equal(once[k], twice[k]) for k in once)
