"""The experiment's jobs as data (pipeline.jobs) are the jobs Snakemake plans: every job of the DAG,
and for a student exactly the jobs it needs; and the cost model's FLOPs, by hand."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import validate_config
from pipeline.flops import model_flops
from pipeline.jobs import Experiment, Job

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "tests" / "configs"


def planned(tmp_path, config: Path, *targets: str) -> set[Job]:
    """(rule, wildcards) of every job ``snakemake -n --forceall`` plans for the targets."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "-n",
                             "--forceall", "--configfile", str(config), "--directory", str(tmp_path), *targets],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = set()
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", result.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        if rule and rule[1] not in ("all",):
            wildcards = re.search(r"wildcards: (.*)", block)
            pairs = dict(kv.split("=", 1) for kv in wildcards[1].split(", ")) if wildcards else {}
            jobs.add(Job.of(rule[1], **pairs))
    return jobs


def experiment(config: Path) -> Experiment:
    return Experiment(validate_config(yaml.safe_load(config.read_text())))


DRAWS = """
selection: {keep_fractions: [0.1, 0.5], selectors: {hardest: [random, el2n], random: [el2n],
            stratified: {scorers: [el2n], beta: 0.1, strata: 5, cutoff_scorer: aum}}}
student: {model: cnn, model_args: {width: 2}, train: {epochs: 1, batch_size: 32}, seeds: [10, 20]}
"""


@pytest.mark.parametrize("name, extra", [("tiny.yaml", ""), ("tiny_distill.yaml", ""), ("tiny.yaml", DRAWS)],
                         ids=["tiny", "tiny_distill", "draws"])
def test_the_jobs_are_the_jobs_snakemake_plans(tmp_path, name, extra):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load((CONFIGS / name).read_text()), **(yaml.safe_load(extra) or {})}))
    exp = experiment(config)
    assert set(exp.jobs()) | {Job.of("aggregate")} == planned(tmp_path, config)
    results = f"results/{exp.config['experiment']}"
    for student in exp.students()[:: max(1, len(exp.students()) // 5)]:  # a handful, every setting kind in tiny_distill
        target = f"{results}/{student.place}/run.parquet"
        assert set(exp.upstream(student)) | {student} == planned(tmp_path, config, target), student


def test_a_student_needs_its_subset_its_scorer_and_its_teacher_chain():
    exp = experiment(CONFIGS / "tiny_distill.yaml")
    student = Job.of("students", scorer="random", selector="hardest", keep="0.5", distill="kd_cached", seed=0)
    assert exp.reads(student) == [Job.of("drawn_subsets", scorer="random", selector="hardest", keep="0.5", draw=0),
                                  Job.of("pruned_teachers", pruned="r20_s49"),
                                  Job.of("teacher_views", viewed="r20_s49", views=2)]
    assert set(exp.upstream(student)) == {*exp.reads(student), Job.of("scores", scorer="random"),
                                          Job.of("pruned_teachers", pruned="r20_s36"), Job.of("teachers", teacher="r20")}
    assert student.place == "students/random/hardest/keep0.5/kd_cached/seed0"


def test_flops_of_each_kind_of_job():
    """tiny: 600 training samples of 1 x 28 x 28; teacher cnn width 4 trained 2 epochs, proxies cnn
    width 2 one epoch (2 runs), students cnn width 2 one epoch."""
    exp = experiment(CONFIGS / "tiny.yaml")
    teacher, small = (model_flops("cnn", {"width": w}, 10, 1, 28) for w in (4, 2))
    assert exp.flops(Job.of("teachers", teacher="t4")) == 3 * teacher * 600 * 2
    assert exp.flops(Job.of("proxies", run=0)) == 3 * small * 600
    assert exp.flops(Job.of("scores", scorer="el2n")) == 2 * 3 * small * 600  # both proxies, forward + backward
    assert exp.flops(Job.of("scores", scorer="forgetting")) == 0  # reads the teacher's dynamics only
    keep = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="kd", seed=0)
    assert exp.flops(keep) == (3 * small + teacher) * 60  # 10 % of 600, one epoch, the teacher online
    labels = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="labels", seed=0)
    assert exp.flops(labels) == 3 * small * 60
    assert exp.flops(Job.of("subsets", scorer="el2n", selector="hardest", keep="0.1")) == 0
