# Everything the rules compute from the config: validation, paths, wildcard values, each job's
# spec (the resolved slice of the config it depends on, passed as a param so that changing it
# reruns exactly the jobs it affects; threads are resources, not part of it) and the inputs and
# arguments that depend on the config.
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

REPO = Path(workflow.basedir).parent
sys.path.insert(0, str(REPO))
from pipeline.config import validate_config
from pipeline.data import check_files
from pipeline.errors import UserError
from pipeline.jobs import PLACES, SHARED, Experiment, Job, without
from pipeline.models.released import TORCHVISION, check_checkpoints
from pipeline.scorers import build_scorer
from pipeline.selectors import needs_embeddings, second_scorer
from pipeline import warm

try:
    config.update(validate_config(config))
except UserError as error:
    raise WorkflowError(str(error)) from None


# A dataset's or a teacher checkpoint's files missing: found before any job starts, not when a GPU
# job does. In onstart, which a run executes and a dry run or a lint (which plan on machines
# without the data) do not.
onstart:
    try:
        check_files(config["data"])
        check_checkpoints(config)
    except UserError as error:
        raise WorkflowError(str(error)) from None
    # A local run's jobs fork from one process that imported torch and the stages and read the
    # data (pipeline.warm); a cluster's jobs start cold.
    if workflow.local_exec:
        warm.start(config["data"])


onsuccess:
    warm.stop()


onerror:
    warm.stop()


# Paths. Each job's place below its folders (pipeline.jobs.PLACES): its outputs are under
# RESULTS/<place>/ (or are RESULTS/<place>.parquet), its log is LOGS/<place>.log and its
# benchmark (wall time, memory) BENCHMARKS/<place>.tsv; the SHARED_ ones for the jobs every
# experiment with the same spec reuses (teachers, their cached outputs, proxies, scores: each
# named by its spec's key). The rules write their outputs from these; a rule that reads
# another's files takes them from that rule (rules.<name>.output).
RESULTS = f"results/{config['experiment']}"
LOGS = f"logs/{config['experiment']}"
BENCHMARKS = f"{RESULTS}/benchmarks"
SHARED_RESULTS = f"results/{SHARED}"
SHARED_LOGS = f"logs/{SHARED}"
SHARED_BENCHMARKS = f"{SHARED_RESULTS}/benchmarks"
PLOTS = f"{RESULTS}/plots"
DATASET = PLACES["datasets"]
TEACHER = PLACES["teachers"]
PRUNED_TEACHER = PLACES["pruned_teachers"]
TEACHER_VIEWS = PLACES["teacher_views"]
TEACHER_VIEW_STD = PLACES["teacher_view_std"]
PROXY = PLACES["proxies"]
# the proxies' models at their scoring epochs (proxies.score_epochs), beside model.pt
PROXY_EPOCH_MODEL = f"{SHARED_RESULTS}/{PROXY}/model_epoch{{epoch}}.pt"
PROXY_SCORE_EPOCHS = config["proxies"]["score_epochs"] or []
SCORES = PLACES["scores"]
SCORES_SUMMARY = PLACES["scores_summary"]
SUBSET = PLACES["subsets"]
DRAWN_SUBSET = PLACES["drawn_subsets"]
STUDENT = PLACES["students"]

# The experiment's jobs, selections, keep fractions and settings (pipeline.jobs).
EXPERIMENT = Experiment(config)
SCORING_TEACHER = config["scoring"]["teacher"]
SETTINGS = EXPERIMENT.settings
KEEPS = EXPERIMENT.keeps
SELECTIONS = EXPERIMENT.selections
SELECTED_SCORERS = list(dict.fromkeys(scorer for scorer, _ in SELECTIONS))
GALLERY_KEEP = EXPERIMENT.gallery_keep()


def choice(names):
    """A wildcard pattern matching exactly these names (nothing when there are none)."""
    return "|".join(re.escape(str(n)) for n in names) or "(?!)"


def shared_names(rule):
    return choice(job.name for job in EXPERIMENT.shared(rule))


wildcard_constraints:
    dataset=shared_names("datasets"),
    teacher=shared_names("teachers"),
    pruned=shared_names("pruned_teachers"),
    views=shared_names("teacher_views"),
    view_std=shared_names("teacher_view_std"),
    proxy=shared_names("proxies"),
    scores=shared_names("scores"),
    scorer=choice(config["scorers"]),
    selector=choice(config["selection"]["selectors"]),
    keep=choice(KEEPS),
    distill=choice(config["distillation"]),
    seed=r"\d+",
    draw=r"\d+",


# Specs: each job's slice of the config, as JSON.


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def shared_job(rule, wildcards):
    return Job.of(rule, **dict(wildcards.items()))


def shared_spec(rule):
    """A shared job's spec (pipeline.jobs.Experiment.spec): no experiment's name in it."""
    return lambda wildcards: as_json(EXPERIMENT.spec(shared_job(rule, wildcards)))


def common_spec():
    return {
        "experiment": config["experiment"],
        "data": config["data"],
        "device": config["device"],
    }


def subset_spec(wildcards):
    selection = config["selection"]
    spec = {
        "scorer": wildcards.scorer,
        # (as the shared scores' spec has it, which the job checks its scores against)
        "data": without(config["data"], "download"),
        "selector": wildcards.selector,
        "keep_fraction": KEEPS[wildcards.keep],
        "class_balanced": selection["class_balanced"],
        "seed": selection["seed"],
        "params": selection["selectors"][wildcards.selector]["params"],
    }
    if "draw" in wildcards.keys():  # a random draw for one student seed, seeded by it
        spec.update(seed=int(wildcards.draw), draw=int(wildcards.draw))
    return as_json(spec)


def student_spec(wildcards):
    student = without(config["student"], "seeds", "threads")
    distill = {"name": wildcards.distill, **config["distillation"][wildcards.distill]}
    # the subset the student must be given, which it checks against the subset's own record
    job = EXPERIMENT.subset(
        wildcards.scorer, wildcards.selector, wildcards.keep, wildcards.seed
    )
    subset = {
        "scorer": wildcards.scorer,
        "selector": wildcards.selector,
        "keep_fraction": KEEPS[wildcards.keep],
        "draw": int(job["draw"]) if job.rule == "drawn_subsets" else None,
    }
    return as_json(
        {
            **common_spec(),
            "student": student,
            "distillation": distill,
            "subset": subset,
            "seed": int(wildcards.seed),
        }
    )


def scores_summary_spec():
    return as_json({"experiment": config["experiment"], "scorers": config["scorers"]})


def galleries_spec():
    return as_json({"experiment": config["experiment"], "data": config["data"]})


def aggregate_spec():
    """The validated config, from which the aggregate rebuilds the experiment's jobs
    (pipeline.jobs) to say what each result cost; without what is no rerun trigger (threads,
    checkpoint_every, throughput)."""
    spec = without(config, "checkpoint_every", "throughput")
    for section in ("teachers", "pruned_teachers"):
        spec[section] = {
            name: without(entry, "threads") for name, entry in config[section].items()
        }
    for section in ("proxies", "student", "scoring"):
        spec[section] = without(config[section], "threads")
    return as_json(spec)


# Inputs: the files of other rules a job reads, where they depend on the config.


def output_of(job, key):
    """Output ``key`` of ``job`` (a pipeline.jobs.Job)."""
    return expand(getattr(getattr(rules, job.rule).output, key), **dict(job.wildcards))[
        0
    ]


def teacher_output(name, key):
    """Output ``key`` of the job that makes teacher ``name``: rule teachers, or rule
    pruned_teachers for a pruned teacher."""
    return output_of(EXPERIMENT.teacher(name), key)


def dataset_files(wildcards):
    """The record of the job that downloads the dataset (data.download: true), for the jobs that
    load it; nothing otherwise."""
    download = EXPERIMENT.download
    return [output_of(download, "record")] if download else []


def read_model(rule):
    """The model of the teacher a job of a shared ``rule`` reads."""

    def model(wildcards):
        return output_of(EXPERIMENT.reads(shared_job(rule, wildcards))[0], "model")

    return model


def score_inputs(wildcards):
    """The scorer's source file, and only what the scorer says it needs."""
    job = shared_job("scores", wildcards)
    scorer = EXPERIMENT.config_name(job)
    proxies = [j for j in EXPERIMENT.reads(job) if j.rule == "proxies"]
    needs = build_scorer(scorer, config["scorers"][scorer]).needs
    available = {
        "teacher": teacher_output(SCORING_TEACHER, "model"),
        "dynamics": teacher_output(SCORING_TEACHER, "dynamics"),
        "teacher_logits": teacher_output(SCORING_TEACHER, "logits"),
        "proxies": proxy_models(proxies, config["scorers"][scorer].get("epoch")),
    }
    if "embeddings" in needs:  # (named only when needed: naming them plans the job)
        available["embeddings"] = embeddings_file()
    source = f"{REPO}/pipeline/scorers/{scorer}.py"
    return {
        "source": source,
        "data": dataset_files(wildcards),
        **{n: available[n] for n in needs},
    }


def proxy_models(proxies, epoch):
    """The proxies' models at ``epoch`` (one of proxies.score_epochs), or their final models."""
    if epoch is None:
        return [output_of(job, "model") for job in proxies]
    return expand(PROXY_EPOCH_MODEL, proxy=[job.name for job in proxies], epoch=epoch)


def scores_of(scorer):
    return output_of(EXPERIMENT.scores(scorer), "scores")


def subset_inputs(wildcards):
    """The scorer's scores, a second scorer's for a selector that reads one (stratified's cutoff,
    dual_beta's prediction means), and the scoring teacher's embeddings for a selector that picks
    by them (herding, kcenter, d2).
    """
    files = {"scores": scores_of(wildcards.scorer)}
    cutoff = second_scorer(
        wildcards.selector,
        config["selection"]["selectors"][wildcards.selector]["params"],
    )
    if cutoff:
        files["cutoff"] = scores_of(cutoff)
    if needs_embeddings(wildcards.selector):
        files["embeddings"] = embeddings_file()
    return files


def subset_of(scorer, selector, keep, seed):
    """The subset a student of ``seed`` trains on: its own draw for a drawn selection."""
    job = EXPERIMENT.subset(scorer, selector, keep, seed)
    return expand(getattr(rules, job.rule).output.subset, **dict(job.wildcards))[0]


def student_subset(wildcards):
    return subset_of(
        wildcards.scorer, wildcards.selector, wildcards.keep, wildcards.seed
    )


def all_scores(wildcards):
    return [scores_of(scorer) for scorer in config["scorers"]]


def student_teacher(wildcards):
    """The student's teacher checkpoint and class statistics (of the un-augmented images, or of
    the augmented pass reshape_view_seed names), for settings that name a teacher, and the
    teacher's cached views for settings that read them."""
    setting = SETTINGS[wildcards.distill]
    if setting.teacher is None:
        return {}
    files = {
        "teacher": teacher_output(setting.teacher, "model"),
        "class_std": teacher_output(setting.teacher, "class_std"),
    }
    if setting.reshape_view_seed is not None:
        std = EXPERIMENT.teacher_view_std(setting.teacher, setting.reshape_view_seed)
        files["class_std"] = output_of(std, "class_std")
    if setting.cached_views:
        views = EXPERIMENT.teacher_views(setting.teacher, setting.cached_views)
        files["views"] = output_of(views, "views")
    return files


def student_outputs(key):
    """Output ``key`` of every student (``run``, ``epochs``), in one fixed order."""

    def outputs(wildcards):
        return [
            expand(getattr(rules.students.output, key), **dict(job.wildcards))[0]
            for job in EXPERIMENT.students()
        ]

    return outputs


def all_benchmarks(wildcards):
    """The benchmark of every job but the aggregate, in the order of pipeline.jobs.Experiment.jobs."""
    return [EXPERIMENT.benchmark(job) for job in EXPERIMENT.jobs()]


def gallery_scores(wildcards):
    """The scores of the scorers the selectors draw from."""
    return [scores_of(scorer) for scorer in SELECTED_SCORERS]


def gallery_subsets(wildcards):
    """Every selection's subset at the galleries' keep fraction (a drawn one's for the first
    student seed)."""
    seed = config["student"]["seeds"][0]
    return [
        subset_of(scorer, selector, GALLERY_KEEP, seed)
        for scorer, selector in SELECTIONS
    ]


def get_final_output():
    return [
        *rules.scores_summary.output,
        *rules.galleries.output,
        *rules.aggregate.output,
    ]


# Params: command-line arguments that depend on a job's inputs or outputs.


def teacher_entry(wildcards):
    """The config's entry of the teacher a teachers job trains."""
    return config["teachers"][EXPERIMENT.config_name(shared_job("teachers", wildcards))]


def teacher_checkpoint(wildcards):
    """A loaded teacher's file, so that replacing it reruns the teacher; none for a trained one or
    torchvision's weights, nor for a file not there (a dry run plans without it; onstart stops a
    run)."""
    path = teacher_entry(wildcards).get("checkpoint")
    return [path] if path not in (None, TORCHVISION) and Path(path).is_file() else []


def teacher_launcher(wildcards):
    """python, or torchrun with one process per GPU for a teacher trained on several."""
    gpus = teacher_entry(wildcards)["gpus"]
    return "python" if gpus == 1 else f"torchrun --standalone --nproc_per_node={gpus}"


def resume_folder(wildcards, output):
    """Where a training job keeps its saved state: resume/ beside its model."""
    return str(Path(output.model).with_name("resume"))


def gallery_folder(wildcards, output):
    """The galleries' folder: the job writes <selector>.png there for every selector."""
    return str(Path(output[0]).parent)


SCORE_OPTIONS = {
    "teacher": "--teacher",
    "dynamics": "--dynamics",
    "teacher_logits": "--teacher-logits",
    "embeddings": "--embeddings",
    "proxies": "--proxies",
}


def score_arguments(wildcards, input):
    """Command-line options passing the scoring job the inputs it was given."""
    parts = []
    for key, option in SCORE_OPTIONS.items():
        if key in input.keys():
            value = getattr(input, key)
            files = [value] if isinstance(value, str) else value
            parts.extend([option, *map(shlex.quote, files)])
    return " ".join(parts)


def cutoff_argument(wildcards, input):
    """--cutoff-scores for a subset job given the cutoff scorer's scores."""
    return (
        f"--cutoff-scores {shlex.quote(input.cutoff)}"
        if "cutoff" in input.keys()
        else ""
    )


def selection_arguments(wildcards, input):
    """--cutoff-scores, and --embeddings with the --device to compute distances on, for the inputs
    a subset job was given. A selection job asks for no GPU (resources.smk), so it takes the one
    it finds (auto: a local run's), never insists on CUDA."""
    parts = [cutoff_argument(wildcards, input)] if "cutoff" in input.keys() else []
    if "embeddings" in input.keys():
        device = "cpu" if config["device"] == "cpu" else "auto"
        parts.append(f"--embeddings {shlex.quote(input.embeddings)} --device {device}")
    return " ".join(parts)


def embeddings_file():
    """The scoring teacher's embeddings (rule embeddings)."""
    return output_of(EXPERIMENT.embeddings(), "embeddings")


def student_teacher_arguments(wildcards, input):
    """--teacher, --teacher-class-std and --teacher-views for the inputs the student was given."""
    options = {
        "teacher": "--teacher",
        "class_std": "--teacher-class-std",
        "views": "--teacher-views",
    }
    return " ".join(
        f"{option} {shlex.quote(getattr(input, key))}"
        for key, option in options.items()
        if key in input.keys()
    )
