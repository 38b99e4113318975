"""What each job and each result cost: a benchmark file read, one costs row per job, and each
student's own, pipeline and full-data seconds, by hand on the tiny experiment's jobs."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import validate_config
from pipeline.costs import add_costs, job_costs, jobs_by_benchmark, read_benchmark
from pipeline.errors import UserError
from pipeline.jobs import Experiment, Job

REPO = Path(__file__).resolve().parent.parent
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def experiment(extra: dict | None = None) -> Experiment:
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    return Experiment(validate_config({**config, **(extra or {})}))


def benchmark(path: Path, seconds: float) -> Path:
    path.write_text(HEADER + f"{seconds}\t0:00:01\t100.5\t0\t0\t0\t0\t0\t0\t{seconds / 2}\n")
    return path


def test_read_benchmark_and_a_bad_one(tmp_path):
    assert read_benchmark(benchmark(tmp_path / "a.tsv", 3.0)) == {"wall_seconds": 3.0, "cpu_seconds": 1.5,
                                                                  "peak_rss_mb": 100.5}
    (tmp_path / "b.tsv").write_text("nothing here\n")
    with pytest.raises(UserError, match=r"b\.tsv is no Snakemake benchmark .*; delete it and run the job again"):
        read_benchmark(tmp_path / "b.tsv")


def test_benchmarks_are_matched_to_jobs_by_path_not_by_position():
    """The aggregate rule lists benchmarks in the Snakefile config's order (distillation labels, kd,
    kd_infobatch); the aggregate's Experiment is built from the spec, whose keys are sorted (kd
    first): matched by position, labels students got KD students' times."""
    exp = experiment()
    jobs = exp.jobs()
    labels = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="labels", seed=0)
    kd = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="kd", seed=0)
    paths = [exp.benchmark(job) for job in reversed(jobs)]
    matched = jobs_by_benchmark(exp, jobs, paths)
    assert matched[labels] == "results/tiny/benchmarks/students/el2n/hardest/keep0.1/labels/seed0.tsv"
    assert matched[kd] == "results/tiny/benchmarks/students/el2n/hardest/keep0.1/kd/seed0.tsv"
    assert len(matched) == len(jobs)
    with pytest.raises(UserError, match=r"^\d+ benchmarks for the experiment's \d+ jobs; results/other\.tsv is no job's$"):
        jobs_by_benchmark(exp, jobs, [*paths[1:], "results/other.tsv"])
    with pytest.raises(UserError, match=r"benchmarks for the experiment's \d+ jobs$"):
        jobs_by_benchmark(exp, jobs, paths[1:])


def summary_of(exp: Experiment, students: list[Job], **columns) -> pd.DataFrame:
    rows = [{"scorer": j["scorer"], "selector": j["selector"], "keep_fraction": exp.keeps[j["keep"]],
             "distillation": j["distill"], "seed": int(j["seed"]), "teacher": "t4" if j["distill"] == "kd" else None,
             "infobatch_ratio": float("nan")} for j in students]
    return pd.DataFrame(rows).assign(**columns)


def test_pipeline_seconds_is_the_student_plus_every_job_upstream(tmp_path):
    """el2n / hardest / 0.1 / kd reads its subset, el2n's scores, the two proxies and the teacher:
    every job i of the experiment takes i + 1 seconds, so the sum is known by hand."""
    exp = experiment()
    jobs = exp.jobs()
    seconds = {job: float(i + 1) for i, job in enumerate(jobs)}
    warm_student = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="labels", seed=0)
    records = {exp.teacher("t4"): {"device": "cuda:0"}, warm_student: {"device": "cpu", "started": "warm"}}
    costs = job_costs(exp, {job: benchmark(tmp_path / f"{i}.tsv", seconds[job]) for i, job in enumerate(jobs)}, records)
    assert len(costs) == len(jobs) and costs["place"].tolist() == [job.place for job in jobs]
    teacher = costs.set_index("place").loc[exp.teacher("t4").place]
    assert (teacher["rule"], teacher["config_name"], teacher["device"], teacher["started"]) == (
        "teachers", "t4", "cuda:0", "cold")
    assert (teacher["cpu_seconds"], teacher["peak_rss_mb"]) == (seconds[exp.teacher("t4")] / 2, 100.5)
    # a job forked from a local run's server: its benchmark measured the launcher, so only its wall time is kept
    warm = costs.set_index("place").loc[warm_student.place]
    assert warm["started"] == "warm" and warm["wall_seconds"] == seconds[warm_student]
    assert pd.isna(warm["cpu_seconds"]) and pd.isna(warm["peak_rss_mb"])
    assert costs.set_index("place")["started"].isna().sum() == len(jobs) - 2  # their outputs recorded nothing
    assert teacher["teacher"] == exp.teacher("t4").name and teacher["teacher"].startswith("cnn-")
    assert teacher["flops"] == exp.flops(exp.teacher("t4"))
    assert costs.set_index("place").loc["scores/summary", "device"] == "cpu"  # a job that reads tables

    student = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="kd", seed=0)
    upstream = [Job.of("subsets", scorer="el2n", selector="hardest", keep="0.1"), exp.scores("el2n"),
                exp.proxy(0), exp.proxy(1), exp.teacher("t4")]
    assert set(exp.upstream(student)) == set(upstream)
    summary = summary_of(exp, [student], sample_steps=60, cost_fraction=0.1, train_seconds=2.0)
    out = add_costs(summary, costs, exp, [student])
    assert out["student_seconds"].iloc[0] == seconds[student]
    assert out["pipeline_seconds"].iloc[0] == seconds[student] + sum(seconds[job] for job in upstream)


def test_full_data_seconds_measured_at_keep_fraction_1_else_estimated(tmp_path):
    exp = experiment({"selection": {"keep_fractions": [0.1, 1.0], "selectors": {"hardest": ["el2n"]}}})
    labels_1, labels_01, kd_01 = (Job.of("students", scorer="el2n", selector="hardest", keep=keep, distill=d, seed=0)
                                  for keep, d in (("1", "labels"), ("0.1", "labels"), ("0.1", "kd")))
    costs = job_costs(exp, {labels_1: benchmark(tmp_path / "a.tsv", 20.0), labels_01: benchmark(tmp_path / "b.tsv", 5.0),
                            kd_01: benchmark(tmp_path / "c.tsv", 6.0)}, {})
    summary = summary_of(exp, [labels_1, labels_01, kd_01], sample_steps=[600, 60, 60], cost_fraction=[1.0, 0.1, 0.1],
                         train_seconds=[16.0, 1.0, 2.0])
    measured = add_costs(summary, costs, exp, [labels_1, labels_01, kd_01])
    assert measured["full_data_seconds"].tolist() == [20.0] * 3 and not measured["full_data_seconds_estimated"].any()

    # without f = 1: the labels-only students of the largest f (0.1 here), their training time
    # scaled to all 600 samples, the rest of their wall time kept; the same for every row
    estimated = add_costs(summary.iloc[1:], costs, exp, [labels_01, kd_01])
    assert estimated["full_data_seconds_estimated"].all()
    assert estimated["full_data_seconds"].tolist() == pytest.approx([5.0 + 1.0 * (10 - 1)] * 2)
    # without a labels-only setting: each row's training time scaled by the FLOP model
    alone = add_costs(summary.iloc[2:], costs, exp, [kd_01])
    student, kd = exp.student_flops_per_image(None), exp.student_flops_per_image("kd")
    assert alone["full_data_seconds"].tolist() == pytest.approx([6.0 + 2.0 * (600 * student / (60 * kd) - 1)])
