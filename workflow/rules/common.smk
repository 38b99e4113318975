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
from pipeline.jobs import PLACES, Experiment, Job
from pipeline.scorers import build_scorer

try:
    config.update(validate_config(config))
except UserError as error:
    raise WorkflowError(str(error)) from None


# A dataset's files missing: found before any job starts, not when a GPU job does. In onstart,
# which a run executes and a dry run or a lint (which plan on machines without the data) do not.
onstart:
    try:
        check_files(config["data"])
    except UserError as error:
        raise WorkflowError(str(error)) from None


# Paths. Each job's place below the experiment's folders (pipeline.jobs.PLACES): its outputs are
# under RESULTS/<place>/ (or are RESULTS/<place>.parquet), its log is LOGS/<place>.log and its
# benchmark (wall time, memory) BENCHMARKS/<place>.tsv. The rules write their outputs from
# these; a rule that reads another's files takes them from that rule (rules.<name>.output).
RESULTS = f"results/{config['experiment']}"
LOGS = f"logs/{config['experiment']}"
BENCHMARKS = f"{RESULTS}/benchmarks"
PLOTS = f"{RESULTS}/plots"
TEACHER = PLACES["teachers"]
PRUNED_TEACHER = PLACES["pruned_teachers"]
TEACHER_VIEWS = PLACES["teacher_views"]
TEACHER_VIEW_STD = PLACES["teacher_view_std"]
PROXY = PLACES["proxies"]
# the proxies' models at their scoring epochs (proxies.score_epochs), beside model.pt
PROXY_EPOCH_MODEL = f"{RESULTS}/{PROXY}/model_epoch{{epoch}}.pt"
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


wildcard_constraints:
    teacher=choice(config["teachers"]),
    pruned=choice(config["pruned_teachers"]),
    viewed=choice([*config["teachers"], *config["pruned_teachers"]]),
    views=r"\d+",
    view_seed=r"\d+",
    scorer=choice(config["scorers"]),
    selector=choice(config["selection"]["selectors"]),
    keep=choice(KEEPS),
    distill=choice(config["distillation"]),
    seed=r"\d+",
    draw=r"\d+",
    run=r"\d+",


# Specs: each job's slice of the config, as JSON.


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def common_spec():
    return {
        "experiment": config["experiment"],
        "data": config["data"],
        "device": config["device"],
    }


def without(section, *keys):
    return {k: v for k, v in section.items() if k not in keys}


def teacher_spec(wildcards):
    teacher = without(config["teachers"][wildcards.teacher], "threads")
    return as_json({**common_spec(), "name": wildcards.teacher, "teacher": teacher})


def pruned_teacher_spec(wildcards):
    pruning = without(config["pruned_teachers"][wildcards.pruned], "threads")
    return as_json({**common_spec(), "name": wildcards.pruned, "pruning": pruning})


def teacher_views_spec(wildcards):
    scoring = config["scoring"]
    return as_json(
        {
            **common_spec(),
            "teacher": wildcards.viewed,
            "views": int(wildcards.views),
            "batch_size": scoring["batch_size"],
        }
    )


def teacher_view_std_spec(wildcards):
    return as_json(
        {
            **common_spec(),
            "teacher": wildcards.viewed,
            "view_seed": int(wildcards.view_seed),
            "batch_size": config["scoring"]["batch_size"],
        }
    )


def proxy_spec(wildcards):
    proxies = without(config["proxies"], "runs", "threads", "seed")
    proxy = {**proxies, "seed": config["proxies"]["seed"] + int(wildcards.run)}
    return as_json({**common_spec(), "name": f"proxy{wildcards.run}", "teacher": proxy})


def score_spec(wildcards):
    scoring = config["scoring"]
    return as_json(
        {
            **common_spec(),
            "scorer": wildcards.scorer,
            "params": config["scorers"][wildcards.scorer],
            "seed": scoring["seed"],
            "batch_size": scoring["batch_size"],
        }
    )


def subset_spec(wildcards):
    selection = config["selection"]
    spec = {
        "scorer": wildcards.scorer,
        "data": config["data"],
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
    checkpoint_every)."""
    spec = without(config, "checkpoint_every")
    for section in ("teachers", "pruned_teachers"):
        spec[section] = {
            name: without(entry, "threads") for name, entry in config[section].items()
        }
    for section in ("proxies", "student", "scoring"):
        spec[section] = without(config[section], "threads")
    return as_json(spec)


# Inputs: the files of other rules a job reads, where they depend on the config.


def teacher_output(name, key):
    """Output ``key`` of the job that makes teacher ``name``: rule teachers, or rule
    pruned_teachers for a pruned teacher."""
    if name in config["pruned_teachers"]:
        return expand(getattr(rules.pruned_teachers.output, key), pruned=name)[0]
    return expand(getattr(rules.teachers.output, key), teacher=name)[0]


def pruned_teacher_parent(wildcards):
    return teacher_output(
        config["pruned_teachers"][wildcards.pruned]["teacher"], "model"
    )


def viewed_teacher(wildcards):
    return teacher_output(wildcards.viewed, "model")


def score_inputs(wildcards):
    """The scorer's source file, and only what the scorer says it needs."""
    available = {
        "teacher": teacher_output(SCORING_TEACHER, "model"),
        "dynamics": teacher_output(SCORING_TEACHER, "dynamics"),
        "teacher_logits": teacher_output(SCORING_TEACHER, "logits"),
        "proxies": proxy_models(config["scorers"][wildcards.scorer].get("epoch")),
    }
    needs = build_scorer(wildcards.scorer, config["scorers"][wildcards.scorer]).needs
    source = f"{REPO}/pipeline/scorers/{wildcards.scorer}.py"
    return {"source": source, **{n: available[n] for n in needs}}


def proxy_models(epoch):
    """Every proxy run's model at ``epoch`` (one of proxies.score_epochs), or its final model."""
    runs = range(config["proxies"]["runs"])
    if epoch is None:
        return expand(rules.proxies.output.model, run=runs)
    return expand(PROXY_EPOCH_MODEL, run=runs, epoch=epoch)


def subset_inputs(wildcards):
    """The scorer's scores, and the cutoff scorer's for a selector that cuts by another (CCS)."""
    files = {"scores": expand(rules.scores.output.scores, scorer=wildcards.scorer)[0]}
    cutoff = config["selection"]["selectors"][wildcards.selector]["params"].get(
        "cutoff_scorer"
    )
    if cutoff:
        files["cutoff"] = expand(rules.scores.output.scores, scorer=cutoff)[0]
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
    return expand(rules.scores.output.scores, scorer=config["scorers"])


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
        files["class_std"] = expand(
            rules.teacher_view_std.output.class_std,
            viewed=setting.teacher,
            view_seed=setting.reshape_view_seed,
        )[0]
    if setting.cached_views:
        views = rules.teacher_views.output.views
        files["views"] = expand(
            views, viewed=setting.teacher, views=setting.cached_views
        )[0]
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
    return [f"{BENCHMARKS}/{job.place}.tsv" for job in EXPERIMENT.jobs()]


def gallery_scores(wildcards):
    """The scores of the scorers the selectors draw from."""
    return expand(rules.scores.output.scores, scorer=SELECTED_SCORERS)


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


def teacher_launcher(wildcards):
    """python, or torchrun with one process per GPU for a teacher trained on several."""
    gpus = config["teachers"][wildcards.teacher]["gpus"]
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
