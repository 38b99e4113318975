"""An experiment's jobs as data, from its validated config: each job's rule and wildcards, its place
(where its outputs, log and benchmark live), the jobs whose outputs it reads, and the FLOPs it
computes by the cost model.

The workflow takes its paths (``PLACES``), selections and keep fractions from here and sizes its
cluster jobs by ``Experiment.flops``; the aggregate stage uses ``upstream`` and ``flops`` to say what
each result cost from nothing (``pipeline.costs``). ``tests/test_jobs.py`` checks ``upstream``
against the jobs Snakemake plans for a student, so the two cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.data import DATASET_SIZES
from pipeline.distillation import DistillSetting, base_teacher
from pipeline.flops import model_flops
from pipeline.params import parse_params
from pipeline.scorers import build_scorer
from pipeline.selectors import draws_at_random
from pipeline.train import TrainConfig, planned_epochs

# Each rule's place below the experiment's folders: its outputs are under results/<experiment>/<place>/
# (or are <place>.parquet), its log logs/<experiment>/<place>.log and its benchmark (wall time,
# memory) results/<experiment>/benchmarks/<place>.tsv.
PLACES = {
    "teachers": "teachers/{teacher}",
    "pruned_teachers": "teachers/{pruned}",
    # (its output is teachers/<name>/views<K>.pt)
    "teacher_views": "teachers/{viewed}_views{views}",
    # (its output is teachers/<name>/class_logit_std_view<seed>.parquet)
    "teacher_view_std": "teachers/{viewed}_class_logit_std_view{view_seed}",
    "proxies": "proxies/run{run}",
    "scores": "scores/{scorer}",
    # (its outputs are scores_summary.parquet and two plots)
    "scores_summary": "scores/summary",
    "subsets": "subsets/{scorer}/{selector}/keep{keep}",
    # a random draw's subset for one student seed (selection.random_draws: per_student_seed)
    "drawn_subsets": "subsets/{scorer}/{selector}/keep{keep}/draw{draw}",
    "students": "students/{scorer}/{selector}/keep{keep}/{distill}/seed{seed}",
    "galleries": "galleries",
    "aggregate": "aggregate",
}


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: tuple[tuple[str, str], ...]  # sorted (name, value) pairs, values as in paths

    @classmethod
    def of(cls, rule: str, **wildcards: Any) -> Job:
        return cls(rule, tuple(sorted((name, str(value)) for name, value in wildcards.items())))

    @property
    def place(self) -> str:
        return PLACES[self.rule].format(**dict(self.wildcards))

    def __getitem__(self, name: str) -> str:
        return dict(self.wildcards)[name]


def keep_label(fraction: float) -> str:
    """A keep fraction as its paths and wildcards write it."""
    return format(fraction, "g")


class Experiment:
    """The jobs of one validated config."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.settings = {name: DistillSetting.parse(name, entry) for name, entry in config["distillation"].items()}
        self.keeps = {keep_label(f): f for f in config["selection"]["keep_fractions"]}
        self.selections = [(scorer, selector) for selector, entry in config["selection"]["selectors"].items()
                           for scorer in entry["scorers"]]
        # the selections that are random draws, drawn afresh for each student seed
        self.drawn = {(scorer, selector) for scorer, selector in self.selections
                      if config["selection"]["random_draws"] == "per_student_seed"
                      and (build_scorer(scorer, config["scorers"][scorer]).draws_at_random or draws_at_random(selector))}
        self.size = DATASET_SIZES.get(config["data"]["dataset"])
        self.n_train = min(self.size.train, config["data"].get("train_limit") or self.size.train)

    # The jobs

    def teacher(self, name: str) -> Job:
        if name in self.config["pruned_teachers"]:
            return Job.of("pruned_teachers", pruned=name)
        return Job.of("teachers", teacher=name)

    def scores(self, scorer: str) -> Job:
        return Job.of("scores", scorer=scorer)

    def subset(self, scorer: str, selector: str, keep: str, seed: int | str) -> Job:
        """The subset a student of ``seed`` trains on: its own draw for a drawn selection."""
        if (scorer, selector) in self.drawn:
            return Job.of("drawn_subsets", scorer=scorer, selector=selector, keep=keep, draw=seed)
        return Job.of("subsets", scorer=scorer, selector=selector, keep=keep)

    def student(self, scorer: str, selector: str, keep_fraction: float, distill: str, seed: int) -> Job:
        return Job.of("students", scorer=scorer, selector=selector, keep=keep_label(keep_fraction), distill=distill,
                      seed=seed)

    def students(self) -> list[Job]:
        """Every student, in one fixed order (the aggregate's)."""
        return [Job.of("students", scorer=scorer, selector=selector, keep=keep, distill=distill, seed=seed)
                for scorer, selector in self.selections for keep in self.keeps
                for distill in self.config["distillation"] for seed in self.config["student"]["seeds"]]

    def gallery_keep(self) -> str:
        """The galleries show the subsets of the middle keep fraction."""
        return list(self.keeps)[len(self.keeps) // 2]

    def reads(self, job: Job) -> list[Job]:
        """The jobs whose outputs ``job`` reads."""
        config = self.config
        if job.rule == "pruned_teachers":
            return [self.teacher(config["pruned_teachers"][job["pruned"]]["teacher"])]
        if job.rule in ("teacher_views", "teacher_view_std"):
            return [self.teacher(job["viewed"])]
        if job.rule == "scores":
            needs = build_scorer(job["scorer"], config["scorers"][job["scorer"]]).needs
            jobs = [self.teacher(config["scoring"]["teacher"])] if needs - {"proxies"} else []
            if "proxies" in needs:
                jobs += [Job.of("proxies", run=run) for run in range(config["proxies"]["runs"])]
            return jobs
        if job.rule in ("subsets", "drawn_subsets"):
            cutoff = config["selection"]["selectors"][job["selector"]]["params"].get("cutoff_scorer")
            return [self.scores(job["scorer"])] + ([self.scores(cutoff)] if cutoff else [])
        if job.rule == "students":
            setting = self.settings[job["distill"]]
            jobs = [self.subset(job["scorer"], job["selector"], job["keep"], job["seed"])]
            if setting.teacher is not None:
                jobs.append(self.teacher(setting.teacher))
                if setting.cached_views:
                    jobs.append(Job.of("teacher_views", viewed=setting.teacher, views=setting.cached_views))
                if setting.reshape_view_seed is not None:
                    jobs.append(Job.of("teacher_view_std", viewed=setting.teacher, view_seed=setting.reshape_view_seed))
            return jobs
        if job.rule == "scores_summary":
            return [self.scores(scorer) for scorer in config["scorers"]]
        if job.rule == "galleries":
            scorers = dict.fromkeys(scorer for scorer, _ in self.selections)
            return [self.scores(s) for s in scorers] + [
                self.subset(scorer, selector, self.gallery_keep(), config["student"]["seeds"][0])
                for scorer, selector in self.selections]
        if job.rule == "aggregate":
            return self.students()
        return []  # teachers and proxies train from the data alone

    def upstream(self, job: Job) -> list[Job]:
        """Every job ``job`` needs, directly or through others (itself not included), each once."""
        found: dict[Job, None] = {}
        todo = self.reads(job)
        while todo:
            needed = todo.pop()
            if needed not in found:
                found[needed] = None
                todo.extend(self.reads(needed))
        return list(found)

    def jobs(self) -> list[Job]:
        """Every job of the experiment's DAG but the aggregate: the final outputs and their upstream."""
        targets = [Job.of("scores_summary"), Job.of("galleries")]
        found = dict.fromkeys(targets)
        for target in [*targets, Job.of("aggregate")]:
            found.update(dict.fromkeys(self.upstream(target)))
        return list(found)

    # The cost model

    def forward_flops(self, entry: dict[str, Any]) -> int:
        """One forward pass of an image through the model of a teachers/student/proxies entry."""
        size = self.size
        return model_flops(entry["model"], entry["model_args"], size.classes, size.channels, size.image_size)

    def flops(self, job: Job) -> float:
        """The FLOPs ``job`` computes: forward and backward (3x forward) of what it trains, times the
        images it trains on, plus the teacher's forward when a student distils online; the forward
        passes of inference jobs; 0 for the jobs that read tables."""
        config, n = self.config, self.n_train
        if job.rule == "teachers":
            entry = config["teachers"][job["teacher"]]
            return 3 * self.forward_flops(entry) * images_trained(entry["train"], n)
        if job.rule == "pruned_teachers":
            pruning = config["pruned_teachers"][job["pruned"]]
            base = base_teacher(config, job["pruned"])
            return pruning["rounds"] * 3 * self.forward_flops(base) * images_trained(pruning["train"], n)
        if job.rule == "proxies":
            proxies = config["proxies"]
            train = proxies["train"]
            if proxies["score_epochs"]:  # proxies scored early train only up to their last scoring epoch
                train = {**train, "stop_after": max(proxies["score_epochs"])}
            return 3 * self.forward_flops(proxies) * images_trained(train, n)
        if job.rule == "scores":  # a forward pass (GraNd: a backward too) with each model it reads
            needs = build_scorer(job["scorer"], config["scorers"][job["scorer"]]).needs
            models = [config["proxies"]] * config["proxies"]["runs"] if "proxies" in needs else []
            if "teacher" in needs:
                models.append(base_teacher(config, config["scoring"]["teacher"]))
            return sum(3 * self.forward_flops(m) * n for m in models)
        if job.rule == "teacher_views":
            return int(job["views"]) * self.forward_flops(base_teacher(config, job["viewed"])) * n
        if job.rule == "teacher_view_std":
            return self.forward_flops(base_teacher(config, job["viewed"])) * n
        if job.rule == "students":
            return self.student_flops(job["distill"], round(self.keeps[job["keep"]] * n))
        return 0.0

    def student_flops(self, distill: str, samples: int) -> float:
        """A student of setting ``distill`` trained on ``samples`` samples."""
        return self.student_flops_per_image(distill) * images_trained(self.config["student"]["train"], samples)

    def student_flops_per_image(self, distill: str | None) -> float:
        """Forward and backward (3x forward) of a student of setting ``distill`` (None: labels only,
        ``student.model``) on one image, plus its teacher's forward when it distils online."""
        setting = self.settings[distill] if distill is not None else None
        teacher = base_teacher(self.config, setting.teacher) if setting and setting.teacher else None
        student = self.config["student"]
        if setting and setting.shape_student:
            student = {**student, "model": teacher["model"], "model_args": teacher["model_args"]}
        online = teacher is not None and not setting.cached_views  # cached views: no teacher forward pass
        return 3 * self.forward_flops(student) + (self.forward_flops(teacher) if online else 0)


def images_trained(train: dict[str, Any], samples: int) -> int:
    cfg = parse_params(TrainConfig, train, "train")
    if cfg.steps is None:
        return samples * planned_epochs(cfg, samples)  # (up to train.stop_after)
    return cfg.steps * cfg.batch_size
