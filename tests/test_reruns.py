"""Snakemake reruns exactly the jobs a change affects, and nothing else.

One small finished run (tests/configs/reruns.yaml) is made once for the module in a copy of the
repository, because some cases edit source files. Each test then makes one change, reads the plan
of a dry run, compares the planned job set EXACTLY with the set computed from the config by
``plan()``, and undoes the change: config changes go to a separate --configfile (the finished
run's config is never touched), source edits are reverted with their content and mtime restored.

The copy is edited in place rather than copied per test: the scorers' source files are inputs by
absolute path (``score_inputs`` in workflow/rules/common.smk), so a run copied to another folder
has a different set of inputs and Snakemake reruns every scoring job ("Set of input files has
changed since last execution").
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = Path("tests") / "configs" / "reruns.yaml"  # relative to the copy
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.exists(),
                       reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)"),
]

Job = tuple[str, str]  # (rule, its wildcards as sorted "name=value" joined by ","; "" for a rule without any)


def job(rule: str, **wildcards) -> Job:
    return rule, ",".join(f"{k}={v}" for k, v in sorted(wildcards.items()))


def snakemake(copy: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on the copy: its Snakefile, its folder as working directory, its pipeline package
    first on the path (``python -m pipeline.x`` in the jobs also finds it from the working directory)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(copy)}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(copy / "workflow" / "Snakefile"), "--directory", str(copy),
         *args],
        capture_output=True, text=True, env=env, timeout=900, cwd=copy,
    )


# The plan is read from the job blocks that `snakemake -n` prints: one per job, `rule NAME:` or
# `localrule NAME:` on its own line, then `key: value` lines indented deeper (output, wildcards,
# jobid, reason, ...). A job of a `group` (the subsets) is printed under a "Group job selection"
# header with the whole block indented 4 more spaces, so indentation is taken relative to the rule
# line. Of the other formats, --summary/--detailed-summary list output FILES (not jobs), include
# every up-to-date file, and omit rules without outputs such as `all`; --dag draws up-to-date jobs
# too; --list-changes lists only the directly changed files, not what runs because of them;
# --quiet rules drops the very blocks we need. The parsed blocks are checked against the
# "Job stats" table, so a block the parser missed fails the test instead of passing silently.
BLOCK_START = re.compile(r"^( *)(?:local)?rule (\w+):$")
BLOCK_LINE = re.compile(r"^( +)(\w+): (.*)$")


def parse_jobs(output: str) -> dict[Job, str]:
    """Every job block in a Snakemake log as {(rule, wildcards): reason}."""
    jobs: dict[Job, str] = {}
    rule, indent, fields = None, 0, {}

    def close():
        if rule is not None:
            wildcards = dict(w.split("=", 1) for w in fields["wildcards"].split(", ")) if "wildcards" in fields else {}
            # a shared job's name without its spec's key: scores=forgetting-0123456789ab -> scores=forgetting
            wildcards = {k: re.sub(r"-[0-9a-f]{12}$", "", v) for k, v in wildcards.items()}
            key = job(rule, **wildcards)
            assert key not in jobs, f"job {key} planned twice"
            jobs[key] = fields.get("reason", "")

    for line in output.splitlines():
        if m := BLOCK_START.match(line):
            close()
            rule, indent, fields = m[2], len(m[1]), {}
        elif rule is not None and (m := BLOCK_LINE.match(line)) and len(m[1]) > indent:
            fields[m[2]] = m[3]
        elif rule is not None:  # anything not indented under the rule line ends the block
            close()
            rule, fields = None, {}
    close()
    return jobs


def triggers(reason: str) -> frozenset[str]:
    """The kinds of a job's reasons (Snakemake joins them with "; "), without their details:
    {"Params have changed since last execution"}."""
    return frozenset(part.split(":")[0].strip() for part in reason.split("; "))


def job_stats(output: str) -> dict[str, int]:
    """The 'Job stats' table as {rule: count} (empty when there is nothing to do)."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def planned(copy: Path, configfile: Path) -> dict[Job, str]:
    """The jobs a dry run of the copy with this config would run, as {(rule, wildcards): reason}."""
    result = snakemake(copy, "--dry-run", "--configfile", str(configfile))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    jobs = parse_jobs(output)
    counts: dict[str, int] = {}
    for rule, _ in jobs:
        counts[rule] = counts.get(rule, 0) + 1
    assert counts == job_stats(output), output[-3000:]
    if not jobs:
        assert "Nothing to be done" in output, output[-3000:]
    return jobs


def plan(config: dict) -> dict[str, set[Job]]:
    """Every job of a fresh run of this (raw, list-form selectors) config, by rule, written out from
    the config independently of the workflow's own helpers."""
    selections = [
        (scorer, selector)
        for selector, entry in config["selection"]["selectors"].items()
        for scorer in (entry if isinstance(entry, list) else entry["scorers"])
    ]
    keeps = [format(f, "g") for f in config["selection"]["keep_fractions"]]
    seeds = config["student"].get("seeds", [0])
    proxy_runs = config.get("proxies", {}).get("runs", 2) if {"el2n", "grand"} & set(config["scorers"]) else 0
    return {
        # the shared jobs by their names' labels: the teacher's model, the scorer
        "teachers": {job("teachers", teacher=t["model"]) for t in config["teachers"].values()},
        "proxies": {job("proxies", proxy=f"proxy-{config['proxies']['model']}") for _ in range(proxy_runs)},
        "scores": {job("scores", scores=s) for s in config["scorers"]},
        "scores_summary": {job("scores_summary")},
        "subsets": {job("subsets", scorer=s, selector=sel, keep=k) for s, sel in selections for k in keeps},
        "students": {
            job("students", scorer=s, selector=sel, keep=k, distill=d, seed=seed)
            for s, sel in selections for k in keeps for d in config["distillation"] for seed in seeds
        },
        "galleries": {job("galleries")},
        "aggregate": {job("aggregate")},
        "all": {job("all")},
    }


def wildcard(key: Job, name: str) -> str:
    return dict(w.split("=", 1) for w in key[1].split(","))[name]


def downstream_of_scorer(config: dict, scorer: str) -> set[Job]:
    """What a new score of `scorer` invalidates: its scoring job, the summary comparing the scorers,
    the subsets selected from its scores and the students trained on them, the galleries of the
    subsets (only when it has subsets), the aggregate (which reads every job's benchmark for
    costs.parquet) and `all`."""
    jobs = plan(config)
    subsets = {j for j in jobs["subsets"] if wildcard(j, "scorer") == scorer}
    students = {j for j in jobs["students"] if wildcard(j, "scorer") == scorer}
    galleries = jobs["galleries"] if subsets else set()
    return {job("scores", scores=scorer), job("scores_summary"), *subsets, *students, *galleries, job("aggregate"),
            job("all")}


@pytest.fixture(scope="module")
def base_config() -> dict:
    return yaml.safe_load((REPO / CONFIG).read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory, base_config) -> Path:
    """A copy of the repository (what the workflow reads and runs) with the small experiment run to
    the end in it, and a check that the run itself was exactly the planned set of jobs."""
    copy = tmp_path_factory.mktemp("reruns")
    for folder in ("workflow", "pipeline", "config"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "tests" / "configs", copy / "tests" / "configs")
    shutil.copy2(REPO / "environment.yml", copy / "environment.yml")  # the rules' conda: env, recorded in the metadata
    result = snakemake(copy, "--cores", "2", "--configfile", str(CONFIG))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    everything = set().union(*plan(base_config).values())
    assert set(parse_jobs(output)) == everything  # the parser and plan() agree with a real run
    return copy


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_second_run_has_nothing_to_do(finished):
    """No change: the plan is empty and Snakemake says "Nothing to be done"."""
    assert planned(finished, CONFIG) == {}


@pytest.mark.parametrize("scorer", ["teacher_ce", "random"])
def test_editing_a_scorer_reruns_its_downstream_only(finished, base_config, scorer):
    """Appending a comment to pipeline/scorers/<scorer>.py reruns, and only reruns:
    - teacher_ce (selected by hardest): scores[teacher_ce], scores_summary,
      subsets[teacher_ce, hardest, keep 0.1 / 0.5], students[teacher_ce, hardest, keep 0.1 / 0.5,
      labels / kd, seed 0] (4), galleries, aggregate, all -- 11 jobs;
    - random (computed and summarised, selected by no selector): scores[random], scores_summary,
      aggregate (its cost table has the job's new time), all.
    Not the teacher, nor the other scorers, their subsets and students."""
    source = finished / "pipeline" / "scorers" / f"{scorer}.py"
    text, stat = source.read_bytes(), source.stat()
    try:
        with open(source, "a") as f:
            f.write("# an edit that changes nothing but the file's modification time\n")
        jobs = planned(finished, CONFIG)
    finally:
        source.write_bytes(text)
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    expected = downstream_of_scorer(base_config, scorer)
    assert len(expected) == {"teacher_ce": 11, "random": 4}[scorer]
    assert set(jobs) == expected
    assert jobs[job("scores", scores=scorer)] == f"Updated input files: {source}"


def test_changing_a_scorers_params_reruns_its_downstream_only(finished, base_config, tmp_path):
    """forgetting: {never_learned: zero} instead of the default max makes new scores[forgetting]
    (a spec with another key: missing output files, the old scores kept beside), scores_summary, subsets[forgetting, hardest, keep 0.1 / 0.5],
    students[forgetting, hardest, keep 0.1 / 0.5, labels / kd, seed 0], galleries, aggregate and all:
    11 jobs."""
    config = {**base_config, "scorers": {**base_config["scorers"], "forgetting": {"never_learned": "zero"}}}
    jobs = planned(finished, write_config(tmp_path / "forgetting_zero.yaml", config))

    expected = downstream_of_scorer(base_config, "forgetting")
    assert len(expected) == 11
    assert set(jobs) == expected
    assert triggers(jobs[job("scores", scores="forgetting")]) == {"Missing output files"}


def test_spelling_out_a_default_param_reruns_nothing(finished, base_config, tmp_path):
    """forgetting: {never_learned: max} is the default written out: the config is validated with
    every default filled in before the jobs' params are made, so nothing is planned."""
    config = {**base_config, "scorers": {**base_config["scorers"], "forgetting": {"never_learned": "max"}}}
    assert planned(finished, write_config(tmp_path / "forgetting_max.yaml", config)) == {}


def test_adding_a_keep_fraction_runs_only_the_new_subsets(finished, base_config, tmp_path):
    """keep_fractions [0.1, 0.5] -> [0.1, 0.5, 0.3] runs subsets[forgetting / teacher_ce, hardest,
    keep 0.3] (2), students[forgetting / teacher_ce, hardest, keep 0.3, labels / kd, seed 0] (4),
    aggregate (its set of inputs grew) and all: 8 jobs, none of the existing subsets or students;
    not the galleries, which show the middle keep fraction of [0.1, 0.5, 0.3], still 0.5."""
    selection = {**base_config["selection"], "keep_fractions": [0.1, 0.5, 0.3]}
    config = {**base_config, "selection": selection}
    jobs = planned(finished, write_config(tmp_path / "keep.yaml", config))

    before, after = plan(base_config), plan(config)
    new = (after["subsets"] - before["subsets"]) | (after["students"] - before["students"])
    expected = new | {job("aggregate"), job("all")}
    assert len(expected) == 8 and all(wildcard(j, "keep") == "0.3" for j in new)
    assert set(jobs) == expected
    assert triggers(jobs[job("aggregate")]) == {  # (its spec, the config, changed too: it plans the jobs' costs)
        "Input files updated by another job", "Set of input files has changed since last execution",
        "Params have changed since last execution"}


def test_adding_a_student_seed_runs_only_the_new_students(finished, base_config, tmp_path):
    """seeds [0] -> [0, 1] runs students[forgetting / teacher_ce, hardest, keep 0.1 / 0.5,
    labels / kd, seed 1] (8), aggregate and all: 10 jobs, none of the seed-0 students."""
    config = {**base_config, "student": {**base_config["student"], "seeds": [0, 1]}}
    jobs = planned(finished, write_config(tmp_path / "seeds.yaml", config))

    expected = (plan(config)["students"] - plan(base_config)["students"]) | {job("aggregate"), job("all")}
    assert len(expected) == 10 and all(wildcard(j, "seed") == "1" for j in expected if j[1])
    assert set(jobs) == expected


def test_changing_the_student_training_reruns_the_students_only(finished, base_config, tmp_path):
    """student.train.epochs 1 -> 2 reruns every student (forgetting / teacher_ce, hardest,
    keep 0.1 / 0.5, labels / kd, seed 0: 8, each "Params have changed"), aggregate and all: 10 jobs;
    no teacher, scores or subsets."""
    student = base_config["student"]
    config = {**base_config, "student": {**student, "train": {**student["train"], "epochs": 2}}}
    jobs = planned(finished, write_config(tmp_path / "epochs.yaml", config))

    expected = plan(base_config)["students"] | {job("aggregate"), job("all")}
    assert len(expected) == 10
    assert set(jobs) == expected
    params_changed = frozenset({"Params have changed since last execution"})
    assert {triggers(jobs[j]) for j in plan(base_config)["students"]} == {params_changed}


def test_changing_checkpoint_every_or_the_throughput_reruns_nothing(finished, base_config, tmp_path):
    """checkpoint_every 1 -> 3 changes how often training jobs save their state, and a measured
    throughput the jobs' time limits, not what they compute: both reach them as resources (no
    rerun trigger), not in a param, so nothing is planned."""
    assert base_config.get("checkpoint_every", 1) == 1
    config = {**base_config, "checkpoint_every": 3, "throughput": {"cpu_flops_per_second": 5e10, "margin": 1.5}}
    assert planned(finished, write_config(tmp_path / "checkpoint_every.yaml", config)) == {}


def test_another_experiment_with_the_same_teacher_trains_no_teacher_and_scores_nothing(finished, base_config,
                                                                                      tmp_path):
    """Experiment "reruns_again", its teacher called "same" but with t4's spec: it runs its own
    subsets (4: forgetting / teacher_ce, hardest, keep 0.1 / 0.5), students (8), scores_summary,
    galleries, aggregate and all -- 16 jobs -- and no teachers or scores job: it reads the shared
    ones the first experiment made. With its teacher trained 3 epochs instead of 2, a new teacher
    is trained (the first stays beside it) and the scorers that read it rerun, not random."""
    renamed = {**base_config, "experiment": "reruns_again", "teachers": {"same": base_config["teachers"]["t4"]},
               "distillation": {**base_config["distillation"], "kd": {**base_config["distillation"]["kd"],
                                                                    "teacher": "same"}}}
    jobs = planned(finished, write_config(tmp_path / "again.yaml", renamed))
    assert {rule for rule, _ in jobs} == {"subsets", "students", "scores_summary", "galleries", "aggregate", "all"}
    assert len(jobs) == 16
    old_teacher = next((finished / "results" / "shared" / "teachers").iterdir())
    assert re.fullmatch(r"cnn-[0-9a-f]{12}", old_teacher.name)

    teacher = {**base_config["teachers"]["t4"], "train": {**base_config["teachers"]["t4"]["train"], "epochs": 3}}
    longer = {**renamed, "teachers": {"same": teacher}}
    jobs = planned(finished, write_config(tmp_path / "longer.yaml", longer))
    assert {key for key in jobs if key[0] in ("teachers", "scores")} == {
        job("teachers", teacher="cnn"), job("scores", scores="forgetting"), job("scores", scores="teacher_ce")}
    assert triggers(jobs[job("teachers", teacher="cnn")]) == {"Missing output files"}
