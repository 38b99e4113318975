"""The cost of an experiment before it runs: jobs per rule and the FLOP model's GPU-hours, read
from a dry run."""
from pathlib import Path

import pytest

from pipeline import plan

REPO = Path(__file__).resolve().parent.parent

DRY_RUN = """
rule teachers:
    output: results/x/teachers/t/model.pt
    resources: tmpdir=/tmp, gpu=2, runtime=135, checkpoint_every=1, mem_mb=4230
rule students:
    output: results/x/students/a/model.pt
    resources: tmpdir=/tmp, gpu=1, runtime=75, mem_mb=4230
rule subsets:
    output: results/x/subsets/a.parquet
    resources: tmpdir=/tmp, gpu=0, runtime=30, mem_mb=4096
localrule all:
    input: results/x/summary.parquet
    resources: tmpdir=/tmp
"""


def test_jobs_and_gpu_hours_from_a_dry_run():
    planned = plan.jobs(DRY_RUN)
    assert [rule for rule, _ in planned] == ["teachers", "students", "subsets"]
    # runtime = 15 + 2 x estimate: 2 GPUs x 60 min + 1 GPU x 30 min; the CPU job counts nothing
    assert plan.gpu_hours(planned) == pytest.approx((2 * 60 + 30) / 60)


def test_the_default_experiment_plans_its_jobs(capsys):
    plan.main([str(REPO / "config" / "config.yaml")])
    out = capsys.readouterr().out
    assert "| `" in out and "48 students" in out and "1 galleries" in out and "9 scores" in out


def test_plans_run_together_count_each_shared_job_once():
    """Two experiments sharing the teacher (the same outputs) and each with its own student."""
    first = plan.jobs_with_outputs(DRY_RUN)
    second = plan.jobs_with_outputs(DRY_RUN.replace("results/x/students", "results/y/students"))
    joint = plan.together([first, second])
    assert sorted(rule for rule, _ in joint) == ["students", "students", "subsets", "teachers"]
    # the teacher's 2 GPU-hours once, each student's half hour
    assert plan.gpu_hours(joint) == pytest.approx(2 * 60 / 60 + 2 * 30 / 60)
