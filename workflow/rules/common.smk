# Everything the rules compute from the config: validation, paths, wildcard values and each job's
# spec (the resolved slice of the config it depends on, passed as a param so that changing it
# reruns exactly the jobs it affects; threads are resources, not part of it).
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

REPO = Path(workflow.basedir).parent
sys.path.insert(0, str(REPO))
from pipeline.config import validate_config
from pipeline.errors import UserError
from pipeline.scorers import SCORERS

try:
    config.update(validate_config(config))
except UserError as error:
    raise WorkflowError(str(error)) from None


RESULTS = f"results/{config['experiment']}"
LOGS = f"logs/{config['experiment']}"
BENCHMARKS = f"{RESULTS}/benchmarks"
SCORING_TEACHER = config["scoring"]["teacher"]
CHECKPOINT_EVERY = config["checkpoint_every"]


def keep_label(fraction):
    return format(fraction, "g")


KEEPS = {keep_label(f): f for f in config["selection"]["keep_fractions"]}
SELECTIONS = [
    (scorer, selector)
    for selector, entry in config["selection"]["selectors"].items()
    for scorer in entry["scorers"]
]


def choice(names):
    """A wildcard pattern matching exactly these names (nothing when there are none)."""
    return "|".join(re.escape(str(n)) for n in names) or "(?!)"


wildcard_constraints:
    teacher=choice(config["teachers"]),
    pruned=choice(config["pruned_teachers"]),
    viewed=choice([*config["teachers"], *config["pruned_teachers"]]),
    views=r"\d+",
    scorer=choice(config["scorers"]),
    selector=choice(config["selection"]["selectors"]),
    keep=choice(KEEPS),
    distill=choice(config["distillation"]),
    seed=r"\d+",
    run=r"\d+",


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def common_spec():
    return {"experiment": config["experiment"], "data": config["data"], "device": config["device"]}


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
    return as_json({**common_spec(), "teacher": wildcards.viewed, "views": int(wildcards.views),
                    "batch_size": scoring["batch_size"]})


def proxy_spec(wildcards):
    proxies = without(config["proxies"], "runs", "threads", "seed")
    proxy = {**proxies, "seed": config["proxies"]["seed"] + int(wildcards.run)}
    return as_json({**common_spec(), "name": f"proxy{wildcards.run}", "teacher": proxy})


def score_spec(wildcards):
    scoring = config["scoring"]
    return as_json({**common_spec(), "scorer": wildcards.scorer, "params": config["scorers"][wildcards.scorer],
                    "seed": scoring["seed"], "batch_size": scoring["batch_size"]})


def subset_spec(wildcards):
    selection = config["selection"]
    return as_json({"selector": wildcards.selector, "keep_fraction": KEEPS[wildcards.keep],
                    "class_balanced": selection["class_balanced"], "seed": selection["seed"],
                    "params": selection["selectors"][wildcards.selector]["params"]})


def student_spec(wildcards):
    student = without(config["student"], "seeds", "threads")
    distill = {"name": wildcards.distill, **config["distillation"][wildcards.distill]}
    return as_json({**common_spec(), "student": student, "distillation": distill, "seed": int(wildcards.seed)})


def teacher_launcher(wildcards):
    """python, or torchrun with one process per GPU for a teacher trained on several."""
    gpus = config["teachers"][wildcards.teacher]["gpus"]
    return "python" if gpus == 1 else f"torchrun --standalone --nproc_per_node={gpus}"


def teacher_files(name):
    folder = f"{RESULTS}/teachers/{name}"
    return {
        "model": f"{folder}/model.pt",
        "epochs": f"{folder}/epochs.parquet",
        "dynamics": f"{folder}/dynamics.parquet",
        "teacher_logits": f"{folder}/train_logits.pt",
        "class_std": f"{folder}/class_logit_std.parquet",
    }


def proxy_models():
    return [f"{RESULTS}/proxies/run{run}/model.pt" for run in range(config["proxies"]["runs"])]


def score_inputs(wildcards):
    """The scorer's source file, and only what the scorer says it needs."""
    teacher = teacher_files(SCORING_TEACHER)
    available = {"teacher": teacher["model"], "dynamics": teacher["dynamics"],
                 "teacher_logits": teacher["teacher_logits"], "proxies": proxy_models()}
    needs = SCORERS.get(wildcards.scorer).needs
    return {"source": f"{REPO}/pipeline/scorers/{wildcards.scorer}.py", **{n: available[n] for n in needs}}


SCORE_OPTIONS = {"teacher": "--teacher", "dynamics": "--dynamics", "teacher_logits": "--teacher-logits", "proxies": "--proxies"}


def score_arguments(wildcards, input):
    """Command-line options passing the scoring job the inputs it was given."""
    parts = []
    for key, option in SCORE_OPTIONS.items():
        if key in input.keys():
            value = getattr(input, key)
            parts += [option, *map(shlex.quote, [value] if isinstance(value, str) else value)]
    return " ".join(parts)


def teacher_views_file(name, views):
    return f"{RESULTS}/teachers/{name}/views{views}.pt"


def student_teacher(wildcards):
    """The student's teacher checkpoint and class statistics, for settings that name a teacher,
    and the teacher's cached views for settings that read them."""
    distill = config["distillation"][wildcards.distill]
    name = distill.get("teacher")
    if not name:
        return {}
    files = {"teacher": teacher_files(name)["model"], "class_std": teacher_files(name)["class_std"]}
    if distill["cached_views"]:
        files["views"] = teacher_views_file(name, distill["cached_views"])
    return files


def student_teacher_arguments(wildcards, input):
    if "teacher" not in input.keys():
        return ""
    views = f" --teacher-views {shlex.quote(input.views)}" if "views" in input.keys() else ""
    return f"--teacher {shlex.quote(input.teacher)} --teacher-class-std {shlex.quote(input.class_std)}" + views


def pruned_teacher_parent(wildcards):
    return teacher_files(config["pruned_teachers"][wildcards.pruned]["teacher"])["model"]


def student_files(name):
    """One of every student's outputs (``run.parquet``, ``epochs.parquet``), in one fixed order."""
    return [
        f"{RESULTS}/students/{scorer}/{selector}/keep{keep}/{distill}/seed{seed}/{name}"
        for scorer, selector in SELECTIONS
        for keep in KEEPS
        for distill in config["distillation"]
        for seed in config["student"]["seeds"]
    ]


def aggregate_spec():
    return as_json({"experiment": config["experiment"], "data": config["data"], "report": config["report"]})


def scores_summary_spec():
    return as_json({"experiment": config["experiment"], "scorers": config["scorers"]})


# The galleries show the subsets of the middle keep fraction, drawn from the selected scorers' scores.
GALLERY_KEEP = list(KEEPS)[len(KEEPS) // 2]
GALLERY_SUBSETS = [f"{RESULTS}/subsets/{scorer}/{selector}/keep{GALLERY_KEEP}.parquet" for scorer, selector in SELECTIONS]
SELECTED_SCORES = [f"{RESULTS}/scores/{scorer}.parquet" for scorer in dict.fromkeys(s for s, _ in SELECTIONS)]

PLOTS = f"{RESULTS}/plots"
STUDY_FILES = {kind: f"{RESULTS}/study.{kind}" for kind in ("parquet", "md", "html", "png")}
AGGREGATE_FILES = {
    "summary": f"{RESULTS}/summary.parquet",
    "epochs": f"{RESULTS}/epochs.parquet",
    "accuracy_plot": f"{PLOTS}/accuracy_vs_keep_fraction.png",
    "kd_gain_plot": f"{PLOTS}/kd_gain.png",
    "galleries": [f"{PLOTS}/gallery/{selector}.png" for selector in config["selection"]["selectors"]],
}
SCORES_SUMMARY_FILES = {
    "summary": f"{RESULTS}/scores_summary.parquet",
    "correlation_plot": f"{PLOTS}/scorer_rank_correlation.png",
    "histograms": f"{PLOTS}/score_histograms.png",
}


def get_final_output():
    return [*AGGREGATE_FILES.values(), *SCORES_SUMMARY_FILES.values(), *STUDY_FILES.values()]  # (lists flattened)
