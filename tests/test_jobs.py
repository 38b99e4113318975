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
from pipeline.jobs import LOADS_DATA, SHARED_RULES, Experiment, Job

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


DOWNLOAD = "data: {dataset: fashion_mnist, train_limit: 600, test_limit: 200, download: true}"


# (students: how many students' plans are checked, spread over the experiment's: each is a dry run)
@pytest.mark.parametrize("name, extra, students", [("tiny.yaml", "", 1), ("tiny_distill.yaml", "", 5),
                                                   ("tiny.yaml", DRAWS, 2), ("tiny.yaml", DOWNLOAD, 1),
                                                   ("tiny_geometry.yaml", "", 4)],
                         ids=["tiny", "tiny_distill", "draws", "download", "tiny_geometry"])
def test_the_jobs_are_the_jobs_snakemake_plans(tmp_path, name, extra, students):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load((CONFIGS / name).read_text()), **(yaml.safe_load(extra) or {})}))
    exp = experiment(config)
    assert set(exp.jobs()) | {Job.of("aggregate")} == planned(tmp_path, config)
    results = f"results/{exp.config['experiment']}"
    for student in exp.students()[:: max(1, len(exp.students()) // students)]:  # tiny_distill: every kind of setting
        target = f"{results}/{student.place}/run.parquet"
        assert set(exp.upstream(student)) | {student} == planned(tmp_path, config, target), student


def test_a_student_needs_its_subset_its_scorer_and_its_teacher_chain():
    exp = experiment(CONFIGS / "tiny_distill.yaml")
    student = Job.of("students", scorer="random", selector="hardest", keep="0.5", distill="kd_cached", seed=0)
    assert exp.reads(student) == [Job.of("drawn_subsets", scorer="random", selector="hardest", keep="0.5", draw=0),
                                  exp.teacher("r20_s49"), exp.teacher_views("r20_s49", 2)]
    assert set(exp.upstream(student)) == {*exp.reads(student), exp.scores("random"), exp.teacher("r20_s36"),
                                          exp.teacher("r20")}
    assert student.place == "students/random/hardest/keep0.5/kd_cached/seed0"
    assert exp.teacher("r20_s49").rule == "pruned_teachers" and exp.teacher("r20").rule == "teachers"


def shared_names(config: dict) -> dict[tuple[str, object], str]:
    exp = Experiment(validate_config(config))
    return {(job.rule, exp.config_name(job)): job.name for rule in SHARED_RULES for job in exp.shared(rule)}


def test_shared_jobs_are_named_by_their_spec_not_by_the_experiment():
    """Another experiment calling its teacher otherwise has the same teacher, proxies and scores
    (so it reuses them); a teacher trained one more epoch is another teacher, and so are the scores
    that read it, but not the proxies or the scorers that read none; no name holds the experiment's."""
    base = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    names = shared_names(base)
    assert re.fullmatch(r"cnn-[0-9a-f]{12}", names["teachers", "t4"])
    assert re.fullmatch(r"el2n-[0-9a-f]{12}", names["scores", "el2n"])
    assert all("tiny" not in name for name in names.values())
    renamed = {**base, "experiment": "another", "teachers": {"big": base["teachers"]["t4"]},
               "distillation": {name: {**entry, "teacher": "big"} if "teacher" in entry else entry
                                for name, entry in base["distillation"].items()}}
    assert sorted(shared_names(renamed).values()) == sorted(names.values())

    longer = yaml.safe_load(yaml.safe_dump(base))
    longer["teachers"]["t4"]["train"]["epochs"] = 3
    changed = {key for key, name in shared_names(longer).items() if name != names[key]}
    assert changed == {("teachers", "t4"), *(("scores", s) for s in ["forgetting", "aum", "teacher_ce", "entropy",
                                                                      "margin", "least_confidence", "dyn_unc",
                                                                      "tdds", "dual"])}


def test_flops_of_each_kind_of_job():
    """tiny: 600 training samples of 1 x 28 x 28; teacher cnn width 4 trained 2 epochs, proxies cnn
    width 2 one epoch (2 runs), students cnn width 2 one epoch."""
    exp = experiment(CONFIGS / "tiny.yaml")
    teacher, small = (model_flops("cnn", {"width": w}, 10, 1, 28) for w in (4, 2))
    assert exp.flops(exp.teacher("t4")) == 3 * teacher * 600 * 2
    assert exp.flops(exp.proxy(0)) == 3 * small * 600
    assert exp.flops(exp.scores("el2n")) == 2 * 3 * small * 600  # both proxies, forward + backward
    assert exp.flops(exp.scores("forgetting")) == 0  # reads the teacher's dynamics only
    keep = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="kd", seed=0)
    assert exp.flops(keep) == (3 * small + teacher) * 60  # 10 % of 600, one epoch, the teacher online
    labels = Job.of("students", scorer="el2n", selector="hardest", keep="0.1", distill="labels", seed=0)
    assert exp.flops(labels) == 3 * small * 60
    assert exp.flops(Job.of("subsets", scorer="el2n", selector="hardest", keep="0.1")) == 0


def test_with_download_every_job_that_loads_the_data_waits_for_the_one_download():
    config = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    config["data"]["download"] = True
    exp = Experiment(validate_config(config))
    download = exp.download
    assert download.rule == "datasets" and re.fullmatch(r"fashion_mnist-[0-9a-f]{12}", download.name)
    loading = [job for job in exp.jobs() if job.rule in LOADS_DATA]
    assert {job.rule for job in loading} == {"teachers", "proxies", "scores", "students", "galleries"}
    assert all(exp.reads(job)[0] == download for job in loading)
    assert not any(download in exp.reads(job) for job in exp.jobs() if job.rule not in LOADS_DATA)
    assert experiment(CONFIGS / "tiny.yaml").download is None  # the files are there, or onstart says where to get them


def test_the_embeddings_are_one_job_per_scoring_teacher_planned_only_where_read():
    """tiny_geometry: moderate's scores and the herding, kcenter and d2 subsets read the one
    embeddings job, which reads the scoring teacher; the medium subset and random's scores do not;
    tiny reads none, so plans none. A selector alone asks for them too. The job is one forward pass of the
    teacher over the training set; its name changes with the teacher, not with the experiment."""
    config = yaml.safe_load((CONFIGS / "tiny_geometry.yaml").read_text())
    exp = Experiment(validate_config(config))
    embeddings = exp.embeddings()
    assert exp.shared("embeddings") == [embeddings] and re.fullmatch(r"cnn-embeddings-[0-9a-f]{12}", embeddings.name)
    assert embeddings.place == f"embeddings/{embeddings.name}" and exp.config_name(embeddings) == "t4"
    assert exp.reads(embeddings) == [exp.teacher("t4")] and embeddings in exp.jobs()
    assert exp.reads(exp.scores("moderate")) == [embeddings] and exp.reads(exp.scores("random")) == []
    for selector in ("herding", "kcenter", "d2"):
        subset = Job.of("subsets", scorer="moderate", selector=selector, keep="0.1")
        assert exp.reads(subset) == [exp.scores("moderate"), embeddings]
    assert exp.reads(Job.of("subsets", scorer="moderate", selector="medium", keep="0.1")) == [exp.scores("moderate")]
    assert exp.flops(embeddings) == model_flops("cnn", {"width": 4}, 10, 1, 28) * 600
    assert exp.flops(exp.scores("moderate")) == 0  # reads the stored embeddings: no GPU
    assert "embeddings" in LOADS_DATA and "embeddings" in SHARED_RULES
    assert experiment(CONFIGS / "tiny.yaml").shared("embeddings") == []

    only_herding = {**config, "scorers": {"random": {}}, "selection": {"keep_fractions": [0.1], "selectors": {
        "hardest": ["random"]}}}
    assert Experiment(validate_config(yaml.safe_load(yaml.safe_dump(only_herding)))).shared("embeddings") == []
    only_herding["scorers"] = {"random": {}, "aum": {}}
    only_herding["selection"]["selectors"]["herding"] = ["aum"]
    selector_only = Experiment(validate_config(yaml.safe_load(yaml.safe_dump(only_herding))))
    assert [job.name for job in selector_only.shared("embeddings")] == [embeddings.name]

    renamed = {**config, "experiment": "another"}
    assert shared_names(renamed)["embeddings", "t4"] == embeddings.name
    longer = yaml.safe_load(yaml.safe_dump(config))
    longer["teachers"]["t4"]["train"]["epochs"] = 3
    changed = {key for key, name in shared_names(longer).items() if name != shared_names(config)[key]}
    # (dual and dual_difficulty read the teacher's training dynamics)
    assert changed == {("teachers", "t4"), ("embeddings", "t4"), ("scores", "moderate"), ("scores", "dual"),
                       ("scores", "dual_difficulty")}
