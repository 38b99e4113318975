"""An experiment's jobs as data, from its validated config: each job's rule and wildcards, its place
(where its outputs, log and benchmark live), the jobs whose outputs it reads, the spec of the jobs
experiments share, and the FLOPs each computes by the cost model.

The workflow takes its paths (``PLACES``), shared jobs' specs, selections and keep fractions from
here and sizes its cluster jobs by ``Experiment.flops``; the aggregate stage uses ``upstream`` and
``flops`` to say what each result cost from nothing (``pipeline.costs``). ``tests/test_jobs.py``
checks ``upstream`` against the jobs Snakemake plans for a student, so the two cannot drift apart.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pipeline.data import dataset_size
from pipeline.distillation import DistillSetting, base_teacher
from pipeline.flops import model_flops
from pipeline.params import parse_params
from pipeline.scorers import build_scorer
from pipeline.selectors import draws_at_random, needs_embeddings, second_scorer
from pipeline.train import TrainConfig, planned_epochs

# Each rule's place below its folders: its outputs are under results/<folder>/<place>/ (or are
# <place>.parquet), its log logs/<folder>/<place>.log and its benchmark (wall time, memory)
# results/<folder>/benchmarks/<place>.tsv. The folder is the experiment's name, or SHARED for the
# jobs whose outputs depend only on their spec (SHARED_RULES): each of those is named
# <label>-<key>, the key a hash of its spec (which holds its upstream jobs' names, not the
# experiment's), so that every experiment whose spec is equal reuses it and a changed spec makes a
# new one beside it.
SHARED = "shared"
SHARED_RULES = ("datasets", "teachers", "pruned_teachers", "teacher_views", "teacher_view_std", "embeddings", "proxies",
                "scores")
# The rules whose jobs load the dataset: with data.download, each waits for the one job that
# downloads it (rule datasets) instead of a dozen downloading at once on compute nodes.
LOADS_DATA = ("teachers", "pruned_teachers", "teacher_views", "teacher_view_std", "embeddings", "proxies", "scores",
              "students", "galleries")
PLACES = {
    # (its output is datasets/<name>.json: where the files are, once downloaded)
    "datasets": "datasets/{dataset}",
    "teachers": "teachers/{teacher}",
    "pruned_teachers": "teachers/{pruned}",
    # (its output is teacher_views/<name>.pt)
    "teacher_views": "teacher_views/{views}",
    # (its output is teacher_view_std/<name>.parquet)
    "teacher_view_std": "teacher_view_std/{view_std}",
    # (its output is embeddings/<name>.pt: the scoring teacher's penultimate features)
    "embeddings": "embeddings/{embeddings}",
    "proxies": "proxies/{proxy}",
    # (its output is scores/<name>.parquet)
    "scores": "scores/{scores}",
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

    @property
    def shared(self) -> bool:
        return self.rule in SHARED_RULES

    @property
    def name(self) -> str:
        """A shared job's name (its one wildcard): <label>-<key>."""
        (_, value), = self.wildcards
        return value


def spec_key(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


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
        self.size = dataset_size(config["data"])
        self.n_train = min(self.size.train, config["data"].get("train_limit") or self.size.train)
        # each shared job's spec, the jobs it reads, and what the config calls it
        self._specs: dict[Job, dict[str, Any]] = {}
        self._reads: dict[Job, list[Job]] = {}
        self._names: dict[Job, Any] = {}
        self._jobs: dict[tuple[str, Any], Job] = {}
        data = config["data"]
        # the job that downloads the dataset (data.download), which every job loading it reads
        self.download = self._shared("datasets", data["dataset"], data["dataset"],
                                     {"dataset": data["dataset"], "root": data["root"]}, []) if data["download"] else None
        for name in [*config["teachers"], *config["pruned_teachers"]]:
            self.teacher(name)
        for run in range(config["proxies"]["runs"]):
            self.proxy(run)
        for scorer in config["scorers"]:
            self.scores(scorer)
        # (the scorers that read embeddings planned theirs above; a selector that reads them needs
        # them whatever its scorers)
        if any(needs_embeddings(selector) for selector in config["selection"]["selectors"]):
            self.embeddings()
        for setting in self.settings.values():
            if setting.teacher is not None and setting.cached_views:
                self.teacher_views(setting.teacher, setting.cached_views)
            if setting.teacher is not None and setting.reshape_view_seed is not None:
                self.teacher_view_std(setting.teacher, setting.reshape_view_seed)

    def folder(self, job: Job) -> str:
        """The folder below results/ and logs/ that holds ``job``'s files."""
        return SHARED if job.shared else self.config["experiment"]

    def benchmark(self, job: Job) -> str:
        return f"results/{self.folder(job)}/benchmarks/{job.place}.tsv"

    # The shared jobs: teachers, their cached outputs, proxies and scores

    def _shared(self, rule: str, config_name: Any, label: str, spec: dict[str, Any], reads: list[Job]) -> Job:
        wildcard = PLACES[rule].split("{")[1].rstrip("}")
        job = Job.of(rule, **{wildcard: f"{label}-{spec_key(spec)}"})
        self._specs[job], self._reads[job], self._names[job] = spec, reads, config_name
        self._jobs[rule, config_name] = job
        return job

    def _common(self) -> dict[str, Any]:
        """What every shared job's spec holds: the data (without ``download``: the datasets job
        alone downloads, so an experiment that allows it shares with one that does not) and device."""
        return {"data": without(self.config["data"], "download"), "device": self.config["device"]}

    def teacher(self, name: str) -> Job:
        """Teacher ``name`` of the config: a trained one (rule teachers) or a pruned one."""
        config = self.config
        rule = "pruned_teachers" if name in config["pruned_teachers"] else "teachers"
        if (rule, name) in self._jobs:
            return self._jobs[rule, name]
        if rule == "teachers":
            entry = without(config["teachers"][name], "threads")
            return self._shared(rule, name, entry["model"], {**self._common(), "name": entry["model"], "teacher": entry}, [])
        pruning = without(config["pruned_teachers"][name], "threads")
        parent = self.teacher(pruning["teacher"])
        label = f"{base_teacher(config, name)['model']}-pruned"
        spec = {**self._common(), "name": label, "pruning": {**pruning, "teacher": parent.name}}
        return self._shared(rule, name, label, spec, [parent])

    def teacher_views(self, name: str, views: int) -> Job:
        """Teacher ``name``'s logits on ``views`` fixed augmented views of every training sample."""
        if ("teacher_views", (name, views)) in self._jobs:
            return self._jobs["teacher_views", (name, views)]
        teacher = self.teacher(name)
        spec = {**self._common(), "teacher": teacher.name, "views": views, "batch_size": self.config["scoring"]["batch_size"]}
        return self._shared("teacher_views", (name, views), f"{teacher.name.rsplit('-', 1)[0]}-views{views}", spec, [teacher])

    def teacher_view_std(self, name: str, view_seed: int) -> Job:
        """Teacher ``name``'s class-wise logit std on the augmented pass of ``view_seed``."""
        if ("teacher_view_std", (name, view_seed)) in self._jobs:
            return self._jobs["teacher_view_std", (name, view_seed)]
        teacher = self.teacher(name)
        spec = {**self._common(), "teacher": teacher.name, "view_seed": view_seed,
                "batch_size": self.config["scoring"]["batch_size"]}
        label = f"{teacher.name.rsplit('-', 1)[0]}-view{view_seed}-class-std"
        return self._shared("teacher_view_std", (name, view_seed), label, spec, [teacher])

    def embeddings(self) -> Job:
        """The scoring teacher's penultimate features on the un-augmented training set, once per
        teacher, for the scorers and selectors that read embeddings."""
        name = self.config["scoring"]["teacher"]
        if ("embeddings", name) in self._jobs:
            return self._jobs["embeddings", name]
        teacher = self.teacher(name)
        spec = {**self._common(), "teacher": teacher.name, "batch_size": self.config["scoring"]["batch_size"]}
        return self._shared("embeddings", name, f"{teacher.name.rsplit('-', 1)[0]}-embeddings", spec, [teacher])

    def proxy(self, run: int) -> Job:
        """Proxy run ``run`` (seeded proxies.seed + run)."""
        if ("proxies", run) in self._jobs:
            return self._jobs["proxies", run]
        proxies = self.config["proxies"]
        entry = {**without(proxies, "runs", "threads", "seed"), "seed": proxies["seed"] + run}
        label = f"proxy-{entry['model']}"
        return self._shared("proxies", run, label, {**self._common(), "name": label, "teacher": entry}, [])

    def scores(self, scorer: str) -> Job:
        """Scorer ``scorer``'s scores, with the teacher or proxies its spec names."""
        if ("scores", scorer) in self._jobs:
            return self._jobs["scores", scorer]
        config = self.config
        scoring, needs = config["scoring"], build_scorer(scorer, config["scorers"][scorer]).needs
        reads = [self.teacher(scoring["teacher"])] if needs - {"proxies", "embeddings"} else []
        if "embeddings" in needs:
            reads.append(self.embeddings())
        if "proxies" in needs:
            reads += [self.proxy(run) for run in range(config["proxies"]["runs"])]
        spec = {**self._common(), "scorer": scorer, "params": config["scorers"][scorer], "seed": scoring["seed"],
                "batch_size": scoring["batch_size"], "reads": [job.name for job in reads]}
        return self._shared("scores", scorer, scorer, spec, reads)

    def shared(self, rule: str) -> list[Job]:
        """The config's jobs of a shared rule (some may be in no experiment's DAG)."""
        return [job for job in self._specs if job.rule == rule]

    def spec(self, job: Job) -> dict[str, Any]:
        """A shared job's spec: its slice of the config, the jobs it reads by their names."""
        return self._specs[job]

    def config_name(self, job: Job) -> Any:
        """What the config calls a shared job: the teacher's or scorer's name (embeddings: the
        scoring teacher's), the proxy's run, (teacher, views) or (teacher, view seed)."""
        return self._names[job]

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
        jobs = self._reads_besides_data(job)
        return [self.download, *jobs] if self.download and job.rule in LOADS_DATA else jobs

    def _reads_besides_data(self, job: Job) -> list[Job]:
        config = self.config
        if job.shared:
            return self._reads[job]
        if job.rule in ("subsets", "drawn_subsets"):
            cutoff = second_scorer(job["selector"], config["selection"]["selectors"][job["selector"]]["params"])
            return ([self.scores(job["scorer"])] + ([self.scores(cutoff)] if cutoff else [])
                    + ([self.embeddings()] if needs_embeddings(job["selector"]) else []))
        if job.rule == "students":
            setting = self.settings[job["distill"]]
            jobs = [self.subset(job["scorer"], job["selector"], job["keep"], job["seed"])]
            if setting.teacher is not None:
                jobs.append(self.teacher(setting.teacher))
                if setting.cached_views:
                    jobs.append(self.teacher_views(setting.teacher, setting.cached_views))
                if setting.reshape_view_seed is not None:
                    jobs.append(self.teacher_view_std(setting.teacher, setting.reshape_view_seed))
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
        return []

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
        passes of inference jobs (a teacher loaded from a checkpoint is one); 0 for the jobs that
        read tables."""
        config, n = self.config, self.n_train
        name = self._names.get(job)
        if job.rule == "teachers":
            entry = config["teachers"][name]
            if "checkpoint" in entry:  # loaded, not trained: its logits on the training set
                return self.forward_flops(entry) * n
            return 3 * self.forward_flops(entry) * images_trained(entry["train"], n)
        if job.rule == "pruned_teachers":
            pruning = config["pruned_teachers"][name]
            base = base_teacher(config, name)
            return pruning["rounds"] * 3 * self.forward_flops(base) * images_trained(pruning["train"], n)
        if job.rule == "proxies":
            proxies = config["proxies"]
            train = proxies["train"]
            if proxies["score_epochs"]:  # proxies scored early train only up to their last scoring epoch
                train = {**train, "stop_after": max(proxies["score_epochs"])}
            return 3 * self.forward_flops(proxies) * images_trained(train, n)
        if job.rule == "scores":  # a forward pass (GraNd: a backward too) with each model it reads
            needs = build_scorer(name, config["scorers"][name]).needs
            models = [config["proxies"]] * config["proxies"]["runs"] if "proxies" in needs else []
            if "teacher" in needs:
                models.append(base_teacher(config, config["scoring"]["teacher"]))
            return sum(3 * self.forward_flops(m) * n for m in models)
        if job.rule == "teacher_views":
            teacher, views = name
            return views * self.forward_flops(base_teacher(config, teacher)) * n
        if job.rule == "teacher_view_std":
            return self.forward_flops(base_teacher(config, name[0])) * n
        if job.rule == "embeddings":  # one un-augmented forward pass of the scoring teacher
            return self.forward_flops(base_teacher(config, name)) * n
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
