"""Failures and interruptions of the workflow, on a copy of the repository and the small run of
tests/configs/reruns.yaml: a failing job names its log and, with --keep-going, the jobs that do not
depend on it finish; a workflow killed mid-run and started again finishes with complete outputs."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)"),
]


def copy_repo(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for part in ["workflow", "pipeline", "config", "tests/configs"]:
        shutil.copytree(REPO / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "environment.yml", copy)  # every rule names it (conda:)
    return copy


def snakemake_command(copy: Path, *args: str) -> tuple[list[str], dict]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(copy)}
    command = [sys.executable, "-m", "snakemake", "-s", str(copy / "workflow" / "Snakefile"), "--directory", str(copy),
               "--cores", "2", "--configfile", str(copy / "tests" / "configs" / "reruns.yaml"), *args]
    return command, env


def test_a_failing_job_names_its_log_and_the_others_finish(tmp_path):
    copy = copy_repo(tmp_path)
    with open(copy / "pipeline" / "scorers" / "forgetting.py", "a") as f:
        f.write("\n\ndef _broken(self, ctx):\n    raise RuntimeError('forgetting broken on purpose')\n\n\nForgetting.score = _broken\n")
    command, env = snakemake_command(copy, "--keep-going")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    log = re.search(r"logs/shared/scores/forgetting-\w{12}\.log", output)  # the error points at the log ...
    assert log and "forgetting broken on purpose" in (copy / log[0]).read_text()  # ... which says why
    students = copy / "results" / "reruns" / "students"
    finished = sorted(str(p.relative_to(students)) for p in students.rglob("run.parquet"))
    # teacher_ce's students (2 keep fractions x 2 settings) finished; forgetting's were never started
    assert finished == [f"teacher_ce/hardest/keep{f}/{d}/seed0/run.parquet" for f in ["0.1", "0.5"] for d in ["kd", "labels"]]
    assert not (copy / "results" / "reruns" / "summary.parquet").exists()


def test_a_workflow_killed_mid_run_finishes_when_started_again(tmp_path):
    copy = copy_repo(tmp_path)
    command, env = snakemake_command(copy)
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    students = copy / "results" / "reruns" / "students"
    deadline = time.monotonic() + 600
    while not any(students.rglob("run.parquet")):  # kill it while students are under way
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake and its running jobs, as a lost node or power cut would
    run.wait()

    # a killed Snakemake leaves its lock, which the user removes (Snakemake's error says so)
    assert subprocess.run([*command, "--unlock"], env=env, capture_output=True).returncode == 0
    again = subprocess.run([*command, "--rerun-incomplete"], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:]
    summary = pd.read_parquet(copy / "results" / "reruns" / "summary.parquet")
    assert len(summary) == 8  # 2 scorers x 2 keep fractions x 2 settings x 1 seed
    for table in copy.glob("results/**/*.parquet"):
        pd.read_parquet(table)  # every table is complete
    done = subprocess.run([*command, "-n"], env=env, capture_output=True, text=True, timeout=300)
    assert "Nothing to be done" in done.stdout + done.stderr
