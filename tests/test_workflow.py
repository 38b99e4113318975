"""The real Snakefile: a dry run of the default experiment lists every stage, the tiny
configuration runs end to end on real Fashion-MNIST data, and config mistakes stop the workflow
with one clear line before any job runs."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pipeline.config import validate_config
from pipeline.costs import read_benchmark
from pipeline.io import read_meta
from pipeline.jobs import Experiment

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "configs" / "tiny.yaml"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True, text=True, env=env, timeout=900,
    )


def experiment_of(config: Path) -> Experiment:
    return Experiment(validate_config(yaml.safe_load(config.read_text())))


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def test_dry_run_of_the_default_lists_every_stage(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "config.yaml"))
    assert result.returncode == 0, result.stderr
    # 9 scorers share 2 proxy runs; 4 of them x 1 selector x 3 keep fractions = 12 subsets, the 3
    # random ones drawn once per student seed (6 draws); x 2 settings x 2 seeds = 48 students
    assert planned_jobs(result.stdout) == {
        "teachers": 1, "proxies": 2, "scores": 9, "scores_summary": 1, "subsets": 9, "drawn_subsets": 6,
        "students": 48, "galleries": 1, "aggregate": 1, "all": 1,
    }


def test_training_jobs_get_checkpoint_every_and_a_resume_folder_beside_their_model(tmp_path):
    """checkpoint_every reaches the teacher, proxy and student jobs' command lines (as a resource,
    so that changing it reruns nothing: tests/test_reruns.py), with --resume next to --model-out."""
    config = tmp_path / "every3.yaml"
    config.write_text(TINY.read_text() + "checkpoint_every: 3\n")
    result = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    commands = [line for line in result.stdout.splitlines() if "--model-out" in line]
    stages = {re.search(r"-m pipeline\.stages\.(\w+)", c)[1] for c in commands}
    assert stages == {"teachers", "students"}  # the proxies run the teachers' stage
    assert len(commands) == 1 + 2 + 36  # 1 teacher, 2 proxies, 36 students
    for command in commands:
        model = re.search(r"--model-out (\S+)/model\.pt", command)[1]
        assert f"--resume {model}/resume --checkpoint-every 3 " in command, command


CONFIGS = sorted((REPO / "config" / "studies").glob("*.yaml")) + sorted((REPO / "tests" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_config_passes_the_linter(tmp_path, config):
    """`snakemake --lint` finds nothing on every study and test configuration (scripts/test.sh
    lints the default one before the tests)."""
    result = snakemake(tmp_path, "--lint", "--configfile", str(config))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_proxies_scored_early_keep_their_models_at_the_scoring_epochs(tmp_path):
    """proxies.score_epochs: each proxy job writes its model at every scoring epoch, and each
    scorer reads the proxies at its own epoch (or their final models)."""
    config = tmp_path / "early.yaml"
    config.write_text(TINY.read_text() + "\n".join([
        "", "proxies: {runs: 2, model: cnn, model_args: {width: 2}, train: {epochs: 3, batch_size: 64}, score_epochs: [0, 1]}",
        "scorers: {el2n: {epoch: 1}, grand: {epoch: 0}, random: {}}",
        "selection: {keep_fractions: [0.1], selectors: {hardest: [el2n, grand, random]}}", ""]))
    result = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    proxies = [line for line in result.stdout.splitlines() if "--model-out" in line and "shared/proxies/" in line]
    assert len(proxies) == 2 and all(re.search(r"--epoch-models-out (\S+/proxies/proxy-cnn-\w{12})/model_epoch0\.pt "
                                               r"\1/model_epoch1\.pt ", line) for line in proxies)
    for scorer, epoch in (("el2n", 1), ("grand", 0)):
        command = next(line for line in result.stdout.splitlines()
                       if re.search(rf"--output \S+/scores/{scorer}-\w{{12}}\.parquet", line))
        assert re.search(rf"--proxies \S+/proxy-cnn-\w{{12}}/model_epoch{epoch}\.pt "
                         rf"\S+/proxy-cnn-\w{{12}}/model_epoch{epoch}\.pt ", command)


def test_a_selector_cutting_by_another_scorer_reads_its_scores(tmp_path):
    config = tmp_path / "ccs.yaml"
    config.write_text(TINY.read_text().replace("stratified: {scorers: [el2n], beta: 0.1, strata: 5}",
                                               "stratified: {scorers: [el2n], beta: 0.1, strata: 5, cutoff_scorer: aum}"))
    result = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    commands = [line for line in result.stdout.splitlines() if "pipeline.stages.subsets" in line]
    ccs = [c for c in commands if "/stratified/" in c]
    assert len(ccs) == 2 and all(re.search(r"--scores results/shared/scores/el2n-\w{12}\.parquet "
                                           r"--cutoff-scores results/shared/scores/aum-\w{12}\.parquet", c) for c in ccs)
    assert not any("--cutoff-scores" in c for c in commands if "/stratified/" not in c)


def test_random_draws_give_each_student_seed_its_own_subset(tmp_path):
    """selection.random_draws: per_student_seed (the default) draws the random scorer's and the
    random selector's subsets once per student seed, seeded by it; a scorer that is no draw keeps
    one subset; once: one subset for all seeds."""
    config = tmp_path / "draws.yaml"
    config.write_text(TINY.read_text() + "\n".join([
        "", "experiment: draws", "selection: {keep_fractions: [0.1], selectors: {hardest: [random, el2n], random: [el2n]}}",
        "student: {model: cnn, model_args: {width: 2}, train: {epochs: 1, batch_size: 32}, seeds: [10, 20]}",
        "distillation: {labels: {loss: ce}}", ""]))
    result = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    lines = result.stdout.splitlines()
    students = {re.search(r"students/(\S+)/seed(\d+)/", line).groups(): re.search(r"--subset (\S+)", line)[1]
                for line in lines if "pipeline.stages.students" in line}
    assert students == {
        ("random/hardest/keep0.1/labels", "10"): "results/draws/subsets/random/hardest/keep0.1/draw10.parquet",
        ("random/hardest/keep0.1/labels", "20"): "results/draws/subsets/random/hardest/keep0.1/draw20.parquet",
        ("el2n/random/keep0.1/labels", "10"): "results/draws/subsets/el2n/random/keep0.1/draw10.parquet",
        ("el2n/random/keep0.1/labels", "20"): "results/draws/subsets/el2n/random/keep0.1/draw20.parquet",
        ("el2n/hardest/keep0.1/labels", "10"): "results/draws/subsets/el2n/hardest/keep0.1.parquet",
        ("el2n/hardest/keep0.1/labels", "20"): "results/draws/subsets/el2n/hardest/keep0.1.parquet",
    }
    drawn = [line for line in lines if "pipeline.stages.subsets" in line and "/draw20.parquet" in line]
    assert len(drawn) == 2 and all('"draw": 20' in line and '"seed": 20' in line for line in drawn)

    config.write_text(config.read_text().replace("selectors: {", "random_draws: once, selectors: {"))
    result = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "/keep0.1/draw" not in result.stdout and "drawn_subsets" not in result.stdout


def test_missing_data_stops_the_workflow_before_any_job(tmp_path):
    """A run (not a dry run) checks the dataset's files when the workflow loads: one line saying
    where it looked and how to get them, and no job starts."""
    config = tmp_path / "cifar.yaml"
    config.write_text(TINY.read_text().replace("data: {dataset: fashion_mnist,",
                                               f"data: {{dataset: cifar10, root: {tmp_path / 'none'},"))
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(config))
    assert result.returncode != 0
    assert f"CIFAR-10 files not found (looked in {tmp_path / 'none'}, {tmp_path / 'none' / 'cifar-10-batches-py'})" in (
        result.stdout + result.stderr)
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).returncode == 0  # a dry run plans without the data


def test_misspelt_key_stops_the_workflow_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("train_limit", "train_limt"))
    result = snakemake(tmp_path, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    # Snakemake prints workflow errors on stdout
    line = re.search(r"config error in data: unknown key 'train_limt'; allowed: (.*)", result.stdout + result.stderr)
    assert line and "train_limit" in line[1].split(", ")
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_tiny_configuration_end_to_end(tmp_path):
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(TINY))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_parquet(tmp_path / "results" / "tiny" / "summary.parquet")

    # one row per (scorer, selector, keep fraction, setting, seed): 6 selections x 2 x 3 x 1
    assert len(summary) == 36
    selections = [(s, "hardest") for s in ["el2n", "forgetting", "random", "teacher_ce"]]
    selections += [("teacher_ce", "medium"), ("el2n", "stratified")]
    assert set(map(tuple, summary[["scorer", "selector", "keep_fraction", "distillation"]].values)) == {
        (s, sel, f, d) for s, sel in selections for f in [0.1, 0.5] for d in ["kd", "kd_infobatch", "labels"]
    }
    for column in ["experiment", "dataset", "teacher", "student", "scorer", "selector", "keep_fraction", "alpha",
                   "temperature", "seed", "final_test_acc", "best_test_acc", "n_train", "train_seconds",
                   "sample_steps", "cost_fraction", "budget", "epochs", "steps", "infobatch_ratio", "config_hash", "dataset_fingerprint",
                   "subset_scores_hash", "config", "code_version"]:
        assert column in summary.columns, column
    # class-balanced budgets of the first 600 training samples: round(0.1 * 600), round(0.5 * 600)
    assert sorted(summary["n_train"].unique()) == [60, 300]
    # static subsets cost their keep fraction; InfoBatch (ratio 0.5) trains on fewer samples than that
    static = summary[summary["distillation"] != "kd_infobatch"]
    assert (static["cost_fraction"] == static["keep_fraction"]).all()
    assert (static["sample_steps"] == static["n_train"]).all()  # one epoch
    assert set(summary["budget"]) == {"epochs"} and set(summary["epochs"]) == {1}
    assert (static["steps"] == -(-static["n_train"] // 32)).all()  # ceil(n / batch 32), one pass
    dynamic = summary[summary["distillation"] == "kd_infobatch"]
    assert (dynamic["cost_fraction"] <= dynamic["keep_fraction"]).all() and set(dynamic["infobatch_ratio"]) == {0.5}
    assert summary["dataset_fingerprint"].nunique() == 1
    # the random subsets were drawn for their student's seed; the other subsets are no draws
    drawn = summary["scorer"] == "random"
    assert (summary.loc[drawn, "subset_draw"] == summary.loc[drawn, "seed"]).all()
    assert summary.loc[~drawn, "subset_draw"].isna().all()
    kd = summary[summary["distillation"] == "kd"]
    assert set(kd["teacher"]) == {"t4"} and set(kd["alpha"]) == {0.9} and set(kd["temperature"]) == {4.0}
    assert kd["infobatch_ratio"].isna().all()
    labels = summary[summary["distillation"] == "labels"]
    assert labels["teacher"].isna().all() and set(labels["alpha"]) == {0.0}
    assert summary["final_test_acc"].between(0, 1).all()
    assert (summary["best_test_acc"] >= summary["final_test_acc"]).all()
    assert (tmp_path / "results" / "tiny" / "plots" / "accuracy_vs_keep_fraction.png").stat().st_size > 10_000

    # what each result cost: a costs row for every job that ran, and each row's pipeline time is its
    # own plus that of every job upstream of it
    results = tmp_path / "results" / "tiny"
    experiment = Experiment(validate_config(yaml.safe_load(TINY.read_text())))
    costs = pd.read_parquet(results / "costs.parquet")
    assert sorted(costs["place"]) == sorted(job.place for job in experiment.jobs())
    assert (costs["wall_seconds"] > 0).all() and (costs["peak_rss_mb"].dropna() > 0).all()
    seconds = dict(zip(costs["place"], costs["wall_seconds"]))
    # each row's time is its own job's benchmark (the tiny config lists labels before kd, its spec
    # the other way round)
    assert seconds == {job.place: read_benchmark(tmp_path / experiment.benchmark(job))["wall_seconds"]
                       for job in experiment.jobs()}
    # a local run's jobs fork from its warm server (pipeline.warm): only their wall time is theirs
    started = costs.set_index("rule")["started"]
    assert (started[["students", "subsets", "scores"]] == "warm").all() and started[["galleries"]].isna().all()
    warm = costs[costs["started"] == "warm"]
    assert warm["cpu_seconds"].isna().all() and warm["peak_rss_mb"].isna().all()
    for row in summary.itertuples():
        job = experiment.student(row.scorer, row.selector, row.keep_fraction, row.distillation, row.seed)
        assert row.student_seconds == seconds[job.place]
        assert row.pipeline_seconds == pytest.approx(row.student_seconds + sum(seconds[j.place] for j in experiment.upstream(job)))
    assert summary["full_data_seconds_estimated"].all() and (summary["full_data_seconds"] > 0).all()  # no f = 1
    # per-class test accuracy of every run (10 classes), its worst class in the summary
    per_class = pd.read_parquet(results / "per_class.parquet")
    assert len(per_class) == 36 * 10 and per_class["samples"].sum() == 36 * 200
    worst = per_class.groupby(["scorer", "selector", "keep_fraction", "distillation", "seed"])["accuracy"].min()
    keyed = summary.set_index(["scorer", "selector", "keep_fraction", "distillation", "seed"])
    assert (keyed["worst_class_acc"] == worst[keyed.index]).all()
    # gains with one seed: plain differences of the means, no interval
    same = ["selector", "keep_fraction", "distillation", "seed"]
    random_acc = summary[summary["scorer"] == "random"].set_index(same)["final_test_acc"]
    el2n = summary[(summary["scorer"] == "el2n") & (summary["selector"] == "hardest")].set_index(same)
    assert el2n["gain_over_random"].tolist() == pytest.approx((el2n["final_test_acc"] - random_acc[el2n.index]).tolist())
    assert el2n["gain_over_random_low"].isna().all()
    assert summary.loc[summary["distillation"] == "labels", "gain_over_labels"].isna().all()

    # the data each student saw is traceable: its subset records the scores it came from
    subset = tmp_path / "results" / "tiny" / "subsets" / "el2n" / "hardest" / "keep0.1.parquet"
    meta = read_meta(subset)
    assert meta["scorer"] == "el2n" and meta["keep_fraction"] == 0.1
    row = summary[(summary["scorer"] == "el2n") & (summary["keep_fraction"] == 0.1)].iloc[0]
    assert row["subset_scores_hash"] == meta["scores_hash"]
    assert len(pd.read_parquet(subset)) == 60

    # every scorer was computed and compared: 12 x 12 rank correlations, a scorer with itself 1 (but
    # tdds, constant on the 2-epoch teacher: its one window holds one change, so no correlation)
    scores_summary = pd.read_parquet(tmp_path / "results" / "tiny" / "scores_summary.parquet")
    spearman = scores_summary[scores_summary["statistic"] == "spearman"]
    assert len(spearman) == 144
    itself = spearman[spearman["scorer"] == spearman["other"]].set_index("scorer")["value"]
    assert (itself.drop("tdds") == 1.0).all() and pd.isna(itself["tdds"])
    counts = scores_summary[(scores_summary["statistic"] == "count") & (scores_summary["scorer"] == "aum")]
    assert counts["value"].sum() == 600
    stratified = read_meta(tmp_path / "results" / "tiny" / "subsets" / "el2n" / "stratified" / "keep0.1.parquet")
    assert stratified["selector_params"] == {"beta": 0.1, "strata": 5}

    # the teacher recorded every sample at every one of its 2 epochs
    teacher = tmp_path / "results" / "shared" / experiment_of(TINY).teacher("t4").place
    dynamics = pd.read_parquet(teacher / "dynamics.parquet")
    assert len(dynamics) == 1200 and sorted(dynamics["epoch"].unique()) == [1, 2]
    assert (dynamics.groupby("epoch")["sample_index"].apply(sorted).map(list) == [list(range(600))] * 2).all()

    # nothing left to do on a second run
    again = snakemake(tmp_path, "-n", "--configfile", str(TINY))
    assert "Nothing to be done" in again.stdout + again.stderr


TINY_DISTILL = REPO / "tests" / "configs" / "tiny_distill.yaml"


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_distillation_variants_end_to_end(tmp_path):
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(TINY_DISTILL))
    assert result.returncode == 0, result.stderr[-3000:]
    results, shared = tmp_path / "results" / "tiny_distill", tmp_path / "results" / "shared"
    exp = experiment_of(TINY_DISTILL)
    summary = pd.read_parquet(results / "summary.parquet").set_index("distillation")
    assert sorted(summary.index) == ["dkd", "kd_cached", "kd_infobatch", "kd_pruned", "kd_pruned_shaped", "kd_reshaped",
                                     "labels", "vid"]
    # about 10 % of the 600 training samples held out for validation: never scored or selected
    scores = pd.read_parquet(shared / f"{exp.scores('random').place}.parquet")
    held_out = sorted(set(range(600)) - set(scores["sample_index"]))
    assert len(scores) + len(held_out) == 600 and 50 <= len(held_out) <= 60  # floor(10 %) of each class
    subset = pd.read_parquet(results / "subsets" / "random" / "hardest" / "keep0.5" / "draw0.parquet")  # seed 0's draw
    assert not set(subset["sample_index"]) & set(held_out)
    assert (summary["n_train"] == len(subset)).all() and 260 < len(subset) < 280  # half of each class's remaining samples
    assert summary["best_val_epoch"].isin([1, 2]).all() and summary["test_acc_at_best_val"].notna().all()
    assert "at the epoch of the best validation accuracy" in (results / "study.md").read_text()
    # InfoBatch really prunes: the second epoch trains on fewer than the kept samples
    assert len(subset) < summary.loc["kd_infobatch", "sample_steps"] < 2 * len(subset)
    assert summary.loc["kd_infobatch", "cost_fraction"] < summary.loc["kd_reshaped", "cost_fraction"]
    # KD from the pruned teacher's cached views: 2 views of the 600 samples, made once
    assert summary.loc["kd_cached", "teacher_outputs"] == "cached, 2 views"
    assert summary.loc["kd_pruned", "teacher_outputs"] == "online"
    assert pd.isna(summary.loc["labels", "teacher_outputs"])
    views_file = shared / f"{exp.teacher_views('r20_s49', 2).place}.pt"
    views = torch.load(views_file, weights_only=True)
    assert summary.loc["kd_cached", "teacher_outputs_bytes"] == views_file.stat().st_size
    assert pd.isna(summary.loc["kd_pruned", "teacher_outputs_bytes"])
    assert views["logits"].shape == (2, 600, 10) and views["teacher"] == exp.teacher("r20_s49").name
    # the views and the class statistics record the teacher they were made from (its config hash)
    pruned_model = torch.load(shared / exp.teacher("r20_s49").place / "model.pt", weights_only=True)
    assert views["teacher_config_hash"] == pruned_model["spec"]["config_hash"]
    teacher_model = torch.load(shared / exp.teacher("r20").place / "model.pt", weights_only=True)
    assert read_meta(shared / f"{exp.teacher_view_std('r20', 10).place}.parquet")["teacher_config_hash"] == \
        teacher_model["spec"]["config_hash"]
    assert read_meta(shared / exp.teacher("r20").place / "class_logit_std.parquet")["teacher_config_hash"] == \
        teacher_model["spec"]["config_hash"]

    # the pruned chain: 2 rounds then 1 more at 20 % of the remaining weights -> 1 - 0.8^3
    rounds = pd.read_parquet(shared / exp.teacher("r20_s49").place / "rounds.parquet")
    assert rounds["round"].tolist() == [0, 1]
    assert rounds["sparsity"].iloc[0] == pytest.approx(0.36, abs=1e-4)
    assert rounds["sparsity"].iloc[1] == pytest.approx(1 - 0.8**3, abs=1e-4)
    assert summary.loc["kd_pruned", "teacher_sparsity"] == pytest.approx(1 - 0.8**3, abs=1e-4)
    assert summary.loc["kd_reshaped", "teacher_sparsity"] == 0.0

    # each loss recorded its own terms per epoch
    def terms(setting):
        epochs = pd.read_parquet(results / "students" / "random" / "hardest" / "keep0.5" / setting / "seed0" / "epochs.parquet")
        return sorted(c for c in epochs.columns if c.startswith("train_") and c not in ("train_loss", "train_acc"))
    assert terms("dkd") == ["train_ce", "train_nckd", "train_tckd"]
    assert terms("vid") == ["train_ce", "train_kd", "train_vid"]
    assert terms("kd_reshaped") == ["train_ce", "train_kd"]

    # the shaped student is a resnet20 with fewer weights than the dense one; the others are cnn2
    assert summary.loc["kd_pruned_shaped", "student"] == "resnet20_shaped_from_r20_s49"
    assert 0 < summary.loc["kd_pruned_shaped", "student_params"] < 272_186  # the dense resnet20 on 1 channel, 10 classes
    assert summary.loc["vid", "student"] == "cnn_width2"
    # kd_reshaped reshapes with the class statistics of one augmented pass (seed 10), not the clean ones
    view_std = shared / f"{exp.teacher_view_std('r20', 10).place}.parquet"
    assert read_meta(view_std)["view_seed"] == 10 and pd.read_parquet(view_std)["samples"].sum() == len(scores)
    run = results / "students" / "random" / "hardest" / "keep0.5" / "kd_reshaped" / "seed0" / "run.parquet"
    assert read_meta(run)["spec"]["distillation"]["reshape_view_seed"] == 10
    assert "tiny distillation variants" in (results / "study.md").read_text()
    assert (results / "study.png").stat().st_size > 10_000


TINY_GEOMETRY = REPO / "tests" / "configs" / "tiny_geometry.yaml"


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_embedding_methods_end_to_end(tmp_path):
    """The embeddings job runs once; moderate's scores are each sample's distance to the
    coordinate-wise median embedding of its class, and the herding, kcenter and d2 subsets are
    those the selectors pick from the stored embeddings (and d2 from moderate's scores too),
    recomputed here from the files."""
    import numpy as np

    from pipeline.seeding import numpy_generator
    from pipeline.selectors import select_subset

    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(TINY_GEOMETRY))
    assert result.returncode == 0, result.stderr[-3000:]
    results, shared = tmp_path / "results" / "tiny_geometry", tmp_path / "results" / "shared"
    exp = experiment_of(TINY_GEOMETRY)
    summary = pd.read_parquet(results / "summary.parquet")
    assert sorted(zip(summary["scorer"], summary["selector"])) == [
        ("dual", "dual_beta"), ("moderate", "d2"), ("moderate", "herding"), ("moderate", "kcenter"),
        ("moderate", "medium"), ("random", "hardest")]
    assert (summary["n_train"] == 60).all() and summary["gain_over_random"].notna().all()

    # one embeddings file, float16, every training sample, made from the run's data
    assert [p.name for p in (shared / "embeddings").glob("*.pt")] == [f"{exp.embeddings().name}.pt"]
    state = torch.load(shared / f"{exp.embeddings().place}.pt", weights_only=True)
    embeddings = state["embeddings"]
    assert embeddings.dtype == torch.float16 and embeddings.shape[0] == 600
    assert state["dataset_fingerprint"] == summary["dataset_fingerprint"].iloc[0]

    scores = pd.read_parquet(shared / f"{exp.scores('moderate').place}.parquet")
    labels = scores["label"].to_numpy()
    expected = np.zeros(600)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        features = embeddings[members].double().numpy()
        expected[members] = np.linalg.norm(features - np.median(features, axis=0), axis=1)
    assert scores["score"].to_numpy() == pytest.approx(expected, rel=1e-12, abs=0)

    for selector in ("herding", "kcenter", "d2"):
        subset = pd.read_parquet(results / "subsets" / "moderate" / selector / "keep0.1.parquet")
        again = select_subset(selector, scores["score"].to_numpy(), labels, 0.1, numpy_generator(0, "select", selector),
                              embeddings=embeddings)
        assert subset["sample_index"].tolist() == again.kept.tolist(), selector
        meta = read_meta(results / "subsets" / "moderate" / selector / "keep0.1.parquet")
        assert meta["ties_at_cutoff"] == again.ties_at_cutoff == 0 and meta["embeddings"] == {
            "teacher": exp.teacher("t4").name, "content_hash": state["content_hash"], "device": "cpu"}
    # DUAL's Beta sampling: the draw the selector makes from dual's and dual_difficulty's stored tables
    dual, difficulty = (pd.read_parquet(shared / f"{exp.scores(name).place}.parquet") for name in ("dual", "dual_difficulty"))
    assert dual["sample_index"].tolist() == difficulty["sample_index"].tolist() == list(range(600))
    subset = pd.read_parquet(results / "subsets" / "dual" / "dual_beta" / "keep0.1.parquet")
    again = select_subset("dual_beta", dual["score"].to_numpy(), dual["label"].to_numpy(), 0.1,
                          numpy_generator(0, "select", "dual_beta"), params={"mean_scorer": "dual_difficulty"},
                          cutoff_scores=difficulty["score"].to_numpy())
    assert subset["sample_index"].tolist() == again.kept.tolist() and len(again.kept) == 60
    costs = pd.read_parquet(results / "costs.parquet")
    assert exp.embeddings().place in set(costs["place"])

    again = snakemake(tmp_path, "-n", "--configfile", str(TINY_GEOMETRY))
    assert "Nothing to be done" in again.stdout + again.stderr


def job_resources(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(rule, wildcards): resources} of every job a dry run plans."""
    jobs = {}
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", output):  # group members are indented
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        resources = re.search(r"resources: (.*)", block)
        if rule and resources:
            wildcards = re.search(r"wildcards: (.*)", block)
            jobs[rule[1], wildcards[1] if wildcards else ""] = dict(kv.split("=", 1) for kv in resources[1].split(", "))
    return jobs


def shared_job(jobs: dict, rule: str, wildcard: str) -> dict[str, str]:
    """The resources of the shared job ``rule`` whose name starts ``wildcard`` (its key follows)."""
    (found,) = [r for (name, w), r in jobs.items() if name == rule and re.fullmatch(rf"{wildcard}-\w{{12}}", w)]
    return found


def test_cluster_resources_scale_with_model_and_data(tmp_path):
    from pipeline.flops import model_flops

    study = yaml.safe_load((REPO / "config" / "studies" / "cifar100_pruners_kd.yaml").read_text())
    result = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "studies" / "cifar100_pruners_kd.yaml"))
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = job_resources(result.stdout)
    student = jobs["students", "scorer=el2n, selector=hardest, keep=0.3, distill=kd, seed=0"]
    # 0.3 x 50,000 images x 200 epochs x (3 x resnet20 + resnet56 teacher forward) at 2 TFLOP/s, twice, + 15 min
    flops = 0.3 * 50_000 * 200 * (3 * model_flops("resnet20", {}, 100, 3, 32) + model_flops("resnet56", {}, 100, 3, 32))
    assert int(student["runtime"]) == int(15 + 2 * flops / 2e12 / 60)
    assert student["gpu"] == "1"
    assert int(student["mem_mb"]) == 4096 + (3 * 50_000 * 3 * 32 * 32 >> 20)  # CIFAR held in memory, 3x
    labels = jobs["students", "scorer=el2n, selector=hardest, keep=0.3, distill=labels, seed=0"]
    assert int(labels["runtime"]) < int(student["runtime"])  # no teacher forward
    subset = jobs["subsets", "scorer=el2n, selector=hardest, keep=0.3"]
    assert (subset["gpu"], subset["runtime"], subset["mem_mb"]) == ("0", "30", "4096")
    aggregate = jobs["aggregate", ""]
    assert (aggregate["gpu"], aggregate["runtime"], aggregate["mem_mb"]) == ("0", "30", "4096")
    # the CIFAR-100 teacher: resnet56, 200 epochs over 50,000 images
    teacher = shared_job(jobs, "teachers", "teacher=resnet56")
    teacher_flops = 3 * model_flops("resnet56", {}, 100, 3, 32) * 50_000 * 200
    assert teacher["gpu"] == "1"
    assert int(teacher["runtime"]) == int(15 + 2 * teacher_flops / 2e12 / 60)
    # a scorer that reads the teacher's dynamics asks for no GPU; one that runs the 10 proxies does
    forgetting, el2n = shared_job(jobs, "scores", "scores=forgetting"), shared_job(jobs, "scores", "scores=el2n")
    assert (forgetting["gpu"], forgetting["runtime"]) == ("0", "15")
    assert el2n["gpu"] == "1" and int(el2n["runtime"]) > 15

    # a measured throughput (pipeline.bench) with a smaller margin: tighter limits
    study["throughput"] = {"gpu_flops_per_second": 8e12, "margin": 1.5, "startup_minutes": 5}
    (tmp_path / "measured.yaml").write_text(yaml.safe_dump(study))
    result = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "measured.yaml"))
    assert result.returncode == 0, result.stdout[-3000:]
    teacher = shared_job(job_resources(result.stdout), "teachers", "teacher=resnet56")
    assert int(teacher["runtime"]) == int(5 + 1.5 * teacher_flops / 8e12 / 60)


def test_device_cpu_asks_for_no_gpu(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", str(TINY))
    assert result.returncode == 0, result.stdout[-3000:]
    assert {r["gpu"] for r in job_resources(result.stdout).values() if "gpu" in r} == {"0"}
