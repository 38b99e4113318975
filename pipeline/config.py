"""Loading and validating an experiment config, once, before any job runs.

Structure, types and ranges come from ``workflow/schemas/config.schema.yaml`` (JSON schema; the
place where every key is documented). Then each registry checks its entries: the names, and each
component's parameters against the Params dataclass registered with it (``Registry.params``); a
distillation setting is checked as a ``pipeline.distillation.DistillSetting``. Every problem is one line naming the key, the bad
value and what is allowed. The result has every default filled in, so the parameters a job sees
(and Snakemake compares to decide reruns) are complete.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.errors import UserError
from pipeline.params import read_number

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


def load_config(path: str | Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"config file {path} not found") from None
    return validate_config(config)


@functools.cache
def _schema() -> dict[str, Any]:
    """The parsed schema, read once per process (nothing changes it: defaults are copied out)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    schema = _schema()
    config = copy.deepcopy(config or {})
    _read_numbers(schema, config, schema)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        raise UserError(_describe(error))
    _check_loaded_teachers(config)
    _fill_defaults(schema, config, schema)
    _check_components(config)
    return config


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    if error.validator == "additionalProperties" and isinstance(error.validator_value, bool):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"config error in {where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}"
    return f"config error in {where}: {error.message}"


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(target, root), **{k: v for k, v in schema.items() if k != "$ref"}}


def _read_numbers(schema: dict, value: Any, root: dict) -> None:
    """Numeric strings in numeric fields as numbers, in place: YAML 1.1 reads ``5e-4`` (no dot) as
    a string, and ``snakemake --config`` overrides can arrive as strings. Anything else is left for
    the schema to refuse."""
    schema = _resolve(schema, root)
    if not isinstance(value, dict):
        return
    properties = schema.get("properties", {})
    for key, item in value.items():
        sub = properties.get(key, schema.get("additionalProperties"))
        if not isinstance(sub, dict):
            continue
        sub = _resolve(sub, root)
        types = [t for option in [sub, *sub.get("oneOf", []), *sub.get("anyOf", [])]
                 for t in ([option["type"]] if isinstance(option.get("type"), str) else option.get("type", []))]
        if isinstance(item, str) and ("number" in types or "integer" in types):
            value[key] = read_number(item, integer="number" not in types)
        else:
            _read_numbers(sub, item, root)


def _fill_defaults(schema: dict, value: Any, root: dict) -> None:
    schema = _resolve(schema, root)
    if not isinstance(value, dict):
        return
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        sub = _resolve(sub, root) if isinstance(sub, dict) else sub
        if key not in value and isinstance(sub, dict) and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
    for key, item in value.items():
        sub = properties.get(key, schema.get("additionalProperties"))
        if isinstance(sub, dict):
            _fill_defaults(sub, item, root)


def _check_components(config: dict[str, Any]) -> None:
    """Each registry checks its entries: names, and each component's parameters against the
    Params registered with it. Scorer and loss parameters are stored with every default filled in;
    model_args and selector parameters as written (job specs are built from them, and a spec that
    changed would rerun finished jobs)."""
    # Imported here: the registries pull in torch, which the schema checks above do not need.
    from pipeline.data import DATASETS, check_data
    from pipeline.distillation import DistillSetting
    from pipeline.models import MODELS
    from pipeline.params import params_dict
    from pipeline.scorers import SCORERS
    from pipeline.selectors import SELECTORS, second_scorer

    with _at("data.dataset"):
        DATASETS.get(config["data"]["dataset"])  # no parameters of its own: the data section is the schema's
    check_data(config["data"])  # path, image_size, augment only where the dataset takes them
    models = [*((f"teachers.{n}", t) for n, t in config["teachers"].items()), ("proxies", config["proxies"]),
              ("student", config["student"])]
    for where, section in models:
        with _at(f"{where}.model"):
            MODELS.get(section["model"])
        with _at(f"{where}.model_args"):
            MODELS.params(section["model"], section["model_args"], f"{where}.model_args")
        if "checkpoint" in section:  # loaded, not trained (_check_loaded_teachers)
            _check_checkpoint(section, where, config)
        _check_model_builds(section["model"], section["model_args"], f"{where}.model_args", config["data"])
        if "checkpoint" in section:
            continue
        section["train"] = _check_train(section["train"], f"{where}.train", config)
        gpus = section.get("gpus", 1)
        if section["train"]["batch_size"] % gpus:
            raise UserError(f"config error in {where}: train.batch_size {section['train']['batch_size']} "
                            f"is not a multiple of gpus {gpus} (it is the global batch, split over the GPUs)")

    for name, params in config["scorers"].items():
        with _at(f"scorers.{name}"):
            config["scorers"][name] = params_dict(SCORERS.params(name, params, f"scorers.{name}"))
    _check_proxy_epochs(config)
    if config["report"]["metric"] == "test_acc_at_best_val" and not config["data"]["validation_fraction"]:
        raise UserError("config error in report.metric: test_acc_at_best_val needs a validation split; "
                        "set data.validation_fraction > 0 (e.g. 0.1)")

    selection = config["selection"]
    for f in selection["keep_fractions"]:
        if not 0 < f <= 1:
            raise UserError(f"config error in selection.keep_fractions: {f} is outside (0, 1]")
    if len(set(selection["keep_fractions"])) != len(selection["keep_fractions"]):
        raise UserError(f"config error in selection.keep_fractions: duplicates in {selection['keep_fractions']}")
    _check_keeps_something(config)
    for selector, entry in selection["selectors"].items():
        if not isinstance(entry, (list, dict)):  # (the schema allows either)
            raise UserError(f"config error in selection.selectors.{selector}: {entry!r} is neither a list of scorers "
                            f"nor a mapping with scorers")
        # normalised to {"scorers": [...], "params": {...}}
        entry = {"scorers": entry} if isinstance(entry, list) else entry
        params = {k: v for k, v in entry.items() if k != "scorers"}
        with _at(f"selection.selectors.{selector}"):
            cutoff = second_scorer(selector, SELECTORS.params(selector, params, f"selection.selectors.{selector}"))
        selection["selectors"][selector] = {"scorers": entry["scorers"], "params": params}
        for scorer in [*entry["scorers"], *([cutoff] if cutoff else [])]:
            if scorer not in config["scorers"]:
                raise UserError(
                    f"config error in selection.selectors.{selector}: scorer {scorer!r} is not configured "
                    f"under scorers; configured: {', '.join(config['scorers'])}"
                )
        _check_geometric_scorers(config, selector, entry["scorers"])

    _check_cutoffs_leave_budgets(config)
    teachers = list(config["teachers"])
    scoring = config["scoring"]
    scoring["teacher"] = scoring["teacher"] or teachers[0]
    _check_teacher(scoring["teacher"], teachers, "scoring.teacher")
    _check_scoring_teacher_trained(config)
    _check_pruned_teachers(config)
    for name, entry in config["distillation"].items():
        with _at(f"distillation.{name}"):
            config["distillation"][name] = DistillSetting.parse(name, entry, f"distillation.{name}", config).spec()


def _check_geometric_scorers(config: dict, selector: str, scorers: list[str]) -> None:
    """A selector that picks by the embeddings either ignores its scorer's scores (herding, kcenter:
    the score table gives them the samples and labels) or weighs its graph by them (d2): with a
    scorer whose scores are a random draw it would be redrawn per student seed and taken for the
    random baseline of the gains."""
    from pipeline.scorers import build_scorer
    from pipeline.selectors import needs_embeddings

    if not needs_embeddings(selector):
        return
    for scorer in scorers:
        if build_scorer(scorer, config["scorers"][scorer]).draws_at_random:
            raise UserError(f"config error in selection.selectors.{selector}: {selector} picks by the embeddings, so "
                            f"scorer {scorer!r} would make it a random baseline; list it with a scorer that is not a "
                            f"random draw")


@contextlib.contextmanager
def _at(where: str):
    """A component's own one-line error (an unknown name from its registry, a bad value from its
    Params) prefixed with the key it came from, as every config error is."""
    head, _, tail = where.rpartition(".")
    try:
        yield
    except UserError as error:
        message = str(error)
        if head and message.startswith((f"config error in {tail}.", f"config error in {tail}:")):  # (named from inside the section: "train.schedule")
            raise UserError(f"config error in {head}.{message.removeprefix('config error in ')}") from None
        if message.startswith("config error in "):
            raise
        raise UserError(f"config error in {where}: {message}") from None


def _check_keeps_something(config: dict[str, Any]) -> None:
    """Each keep fraction keeps at least one of the samples selection sees (the training set, with
    train_limit and the validation hold-out applied), found now rather than after the teacher and
    scorers have trained."""
    from pipeline.data import dataset_size
    from pipeline.selectors.budget import total_budget

    data = config["data"]
    n = min(dataset_size(data).train, data.get("train_limit") or math.inf)
    selected = n - math.floor(n * data["validation_fraction"])  # or more: the hold-out rounds down per class
    for f in config["selection"]["keep_fractions"]:
        if total_budget(selected, f) < 1:
            raise UserError(f"config error in selection.keep_fractions: {f} keeps no sample of the {selected} "
                            f"selected from (the smallest that keeps one: {0.5 / selected:.3g})")


def _check_cutoffs_leave_budgets(config: dict[str, Any]) -> None:
    """Selector parameters that cannot fill a group's budget: a ``stratified`` hard cutoff (beta)
    that leaves a group (a class when class-balanced, else all samples) fewer samples than its
    budget at some keep fraction. Known here: the samples selection sees (train_limit and the
    hold-out applied: exactly without a stratified hold-out, else at least n - floor(v n)) and the
    number of classes, so a class-balanced group is checked at the size the largest class has at
    least; the cutoff fails surely there when (f + beta - 1) x size >= 2 (floor(beta n) > beta n - 1
    and floor(f n) > f n - 1). Left to the subset job: the exact class sizes, which only the labels
    give, where rounding alone makes a small class fail; the selector refuses that in one line."""
    from fractions import Fraction

    from pipeline.data import dataset_size
    from pipeline.selectors import SELECTORS
    from pipeline.selectors.budget import total_budget

    data, selection = config["data"], config["selection"]
    size = dataset_size(data)
    n = min(size.train, data.get("train_limit") or math.inf)
    held = math.floor(n * data["validation_fraction"])
    selected = n - held  # exact unless the hold-out is stratified (then floor per class: this or more)
    exact = not held or not data["validation_stratified"]
    balanced = selection["class_balanced"]
    group = math.ceil(selected / size.classes) if balanced else selected
    for selector, entry in selection["selectors"].items():
        beta = getattr(SELECTORS.params(selector, entry["params"]), "beta", 0)
        for f in selection["keep_fractions"]:
            left = group - math.floor(Fraction(str(beta)) * group)
            budget = total_budget(group, f)
            fails = left < budget if exact and not balanced else (f + beta - 1) * group >= 2
            if beta and fails:
                of = "a class of at least" if balanced else "the"
                raise UserError(f"config error in selection.selectors.{selector}.beta: the hard cutoff beta = {beta} "
                                f"leaves {left} of {of} {group} samples selected from, fewer than the budget "
                                f"{budget} of keep fraction {f}; keep beta + keep fraction at most 1")


@functools.cache
def _model_build_problem(model: str, args: str, classes: int, channels: int) -> str | None:
    """Why ``model`` with the JSON ``args`` cannot be built for ``classes`` and ``channels``, or None:
    built on the meta device (no memory, no initialisation), once per process."""
    import torch

    from pipeline.models import build_model

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (zero-element tensors are not initialised: nothing is, here)
            built = build_model(model, classes, channels, **json.loads(args))
    except UserError as error:
        return str(error)
    except Exception as error:  # a layer refusing its size: RuntimeError, ValueError, TypeError, ZeroDivisionError
        return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
    # torch builds a layer of 0 channels, which fails only at the first forward pass, in the job
    empty = [name for name, weights in built.named_parameters() if weights.numel() == 0]
    if empty:
        return f"its layer {empty[0].rsplit('.', 1)[0]} would have no weights (a width or channel count of 0)"
    return None


def _check_model_builds(model: str, args: dict[str, Any], where: str, data: dict[str, Any]) -> None:
    """The model builds with ``args`` for the dataset's classes and channels (a shaped student is
    shaped from the trained teacher's weights, so it is built only when its job runs)."""
    from pipeline.data import dataset_size

    size, dataset = dataset_size(data), data["dataset"]
    problem = _model_build_problem(model, json.dumps(args, sort_keys=True), size.classes, size.channels)
    if problem is not None:
        raise UserError(f"config error in {where}: model {model!r} cannot be built with {args} for {dataset} "
                        f"({size.classes} classes, {size.channels} channels): {problem}")


def _check_train(train: dict[str, Any], where: str, config: dict[str, Any]) -> dict[str, Any]:
    """A training section with every default filled in (its schedule's too), but ``precision`` when
    it is the default ``auto``: a training job's spec from before that option is unchanged, so
    adding it reran no finished job."""
    from pipeline.params import params_dict, parse_params
    from pipeline.train import TrainConfig

    with _at(where):
        train = params_dict(parse_params(TrainConfig, train, where))
    if train["precision"] == "auto":
        del train["precision"]
    if train["select"] == "best_val" and not config["data"]["validation_fraction"]:
        raise UserError(f"config error in {where}.select: best_val needs a validation split; "
                        "set data.validation_fraction > 0 (e.g. 0.1)")
    return train


def _check_proxy_epochs(config: dict[str, Any]) -> None:
    """Proxies scored inside their run: scoring epochs within the schedule, and each scorer's
    ``epoch`` one of them."""
    from pipeline.scorers import SCORERS

    proxies = config["proxies"]
    score_epochs = proxies["score_epochs"] or []
    if score_epochs and max(score_epochs) > proxies["train"]["epochs"]:
        raise UserError(f"config error in proxies.score_epochs: {max(score_epochs)} is beyond the schedule's "
                        f"{proxies['train']['epochs']} epochs (proxies.train.epochs)")
    for name, params in config["scorers"].items():
        epoch = params.get("epoch") if "proxies" in SCORERS.get(name).needs else None
        if epoch is not None and epoch not in score_epochs:
            raise UserError(f"config error in scorers.{name}.epoch: the proxies are kept at epochs "
                            f"{score_epochs or 'none'} (proxies.score_epochs), not {epoch}")


def _check_pruned_teachers(config: dict[str, Any]) -> None:
    pruned = config["pruned_teachers"]
    for name, entry in pruned.items():
        where = f"pruned_teachers.{name}"
        if name in config["teachers"]:
            raise UserError(f"config error in {where}: the name {name!r} is already a teacher under teachers")
        if not 0 < entry["rate"] < 1:
            raise UserError(f"config error in {where}.rate: {entry['rate']} is outside (0, 1)")
        _check_teacher(entry["teacher"], [*config["teachers"], *pruned], f"{where}.teacher")
        chain = [name]
        while chain[-1] in pruned:
            chain.append(pruned[chain[-1]]["teacher"])
            if chain[-1] == name:
                raise UserError(f"config error in {where}.teacher: a cycle {' -> '.join(chain)}")
        entry["train"] = _check_train(entry["train"], f"{where}.train", config)


def _check_teacher(name: str | None, teachers: list[str], where: str) -> None:
    if name not in teachers:
        raise UserError(f"config error in {where}: teacher {name!r} is not defined; defined: {', '.join(teachers)}")


# What a teacher with a checkpoint has no use for: it is loaded, not trained.
_TRAINING_KEYS = ("train", "seed", "seed_streams")


def _check_loaded_teachers(config: dict[str, Any]) -> None:
    """A teacher with a ``checkpoint`` is loaded, not trained: a training section, seeds or more
    than one GPU given with it are refused (on the config as written, before defaults fill them)."""
    for name, entry in config["teachers"].items():
        if "checkpoint" not in entry:
            continue
        given = [key for key in _TRAINING_KEYS if key in entry]
        if given:
            raise UserError(f"config error in teachers.{name}: a teacher with a checkpoint is loaded, not trained; "
                            f"remove {', '.join(given)} (or the checkpoint, to train it)")
        if entry.get("gpus", 1) != 1:
            raise UserError(f"config error in teachers.{name}.gpus: a teacher with a checkpoint is only evaluated, "
                            f"on one GPU; remove gpus")


def _check_checkpoint(entry: dict[str, Any], where: str, config: dict[str, Any]) -> None:
    """A loaded teacher's entry: the defaults of the training keys it has no use for taken out
    again (its spec is model, model_args, checkpoint, gpus); ``torchvision`` only for a torchvision
    model on a dataset of ImageNet's 1000 classes and 3 channels. A path is checked where it is
    read (``pipeline.models.released.check_checkpoints``): a dry run plans without the file."""
    from pipeline.data import dataset_size
    from pipeline.models.released import TORCHVISION, family

    for key in _TRAINING_KEYS:
        entry.pop(key, None)
    if entry["checkpoint"] != TORCHVISION:
        return
    if family(entry["model"]) != "torchvision_resnet":
        raise UserError(f"config error in {where}.checkpoint: torchvision's pretrained weights exist only for "
                        f"torchvision's models (resnet18, resnet34, resnet50), not {entry['model']!r}; give the "
                        f"path of a trained {entry['model']} instead")
    if entry["model_args"].get("groups", 1) != 1 or entry["model_args"].get("width_per_group", 64) != 64:
        raise UserError(f"config error in {where}.checkpoint: torchvision's {entry['model']} weights are for its "
                        f"own groups 1 and width_per_group 64; remove them from model_args")
    size = dataset_size(config["data"])
    if (size.classes, size.channels) != (1000, 3):
        raise UserError(f"config error in {where}.checkpoint: torchvision's weights are ImageNet's (1000 classes, "
                        f"3 channels), not {config['data']['dataset']}'s ({size.classes} classes, {size.channels} "
                        f"channels); give the path of a {entry['model']} trained on it instead")


def _check_scoring_teacher_trained(config: dict[str, Any]) -> None:
    """Scorers that read the reference teacher's training dynamics need a teacher that was trained
    here: one loaded from a checkpoint has none."""
    from pipeline.scorers import SCORERS, build_scorer

    name = config["scoring"]["teacher"]
    if "checkpoint" not in config["teachers"][name]:
        return
    for scorer, params in config["scorers"].items():
        if "dynamics" in build_scorer(scorer, params).needs:
            outputs = sorted(s for s in SCORERS.names() if "teacher_logits" in build_scorer(s).needs)
            proxies = sorted(s for s in SCORERS.names() if "proxies" in build_scorer(s).needs)
            raise UserError(
                f"config error in scorers.{scorer}: {scorer} reads the training dynamics of scoring.teacher "
                f"{name!r}, which is loaded from teachers.{name}.checkpoint, not trained; use a scorer of the "
                f"teacher's outputs ({', '.join(outputs)}) or of the proxies ({', '.join(proxies)}), or set "
                f"scoring.teacher to a trained teacher")
