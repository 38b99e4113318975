"""Stage 4: train one student on one subset with one distillation setting and seed.

Trains for a fixed number of epochs over the subset only (cost scales with the keep fraction),
on the labels (loss ``ce``) or with a teacher (e.g. Hinton KD). Writes per-epoch metrics, the
student's checkpoint and one result row that records the seed, the config and the data it saw.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from pipeline.checkpoints import load_class_logit_std, load_model, save_model
from pipeline.cli import add_resume_arguments, data_meta, parser, resume_folder, setup, stage
from pipeline.devices import ranks
from pipeline.distillation import DistillSetting
from pipeline.errors import UserError
from pipeline.inference import evaluate, per_class_accuracy
from pipeline.io import code_version, read_table, stable_hash, write_table
from pipeline.models import build_model
from pipeline.models.shaping import shaped_model_args
from pipeline.params import parse_params
from pipeline.seeding import Seeds, seeded_init
from pipeline.teacher_outputs import NoTeacher, OnlineTeacher, TeacherOutputs, load_cached_views
from pipeline.train import TrainConfig, fit, resolved_precision, selected_epoch


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--subset", required=True)
    p.add_argument("--teacher", default=None, help="teacher checkpoint, for losses that need one")
    p.add_argument("--teacher-class-std", default=None, help="the teacher's class_logit_std.parquet (MDSLR reshaping)")
    p.add_argument("--teacher-views", default=None, help="the teacher's cached views<K>.pt, for cached_views: K")
    p.add_argument("--epochs-out", required=True)
    p.add_argument("--run-out", required=True)
    p.add_argument("--model-out", required=True)
    p.add_argument("--per-class-out", required=True, help="test accuracy per class of the model the run ends with")
    add_resume_arguments(p)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    subset, subset_meta = read_subset(args.subset, spec.get("subset"), data.fingerprint)
    student, seed = spec["student"], spec["seed"]
    setting = DistillSetting.parse(spec["distillation"]["name"], spec["distillation"])
    loss = setting.build_loss()
    teacher, teacher_spec = (None, {}) if setting.teacher is None else load_teacher(args, setting, data.fingerprint)
    if loss.needs_teacher_class_std:
        if args.teacher_class_std is None:
            raise UserError(f"distillation {setting.name!r} reshapes the teacher's logits and needs --teacher-class-std")
        loss.set_teacher_class_std(load_class_logit_std(args.teacher_class_std, data.fingerprint, setting.reshape_view_seed,
                                                        teacher_spec.get("config_hash")))
    cfg = parse_params(TrainConfig, student["train"], "student.train")
    model_name, model_args = student["model"], student["model_args"]
    if setting.shape_student:  # the student formed from the (pruned) teacher
        model_name = teacher_spec["model"]
        model_args = shaped_model_args(model_name, teacher, teacher_spec["model_args"])
    seeds = Seeds.of(seed, student.get("seed_streams"))
    with seeded_init(seeds.init, "init"):
        model = build_model(model_name, data.num_classes, data.in_channels, **model_args)
    indices = torch.tensor(subset["sample_index"].to_numpy(), dtype=torch.long)
    teacher_outputs = teacher_source(args, setting, teacher, teacher_spec, data.fingerprint)
    resume = resume_folder(args, spec, [args.subset, args.teacher, args.teacher_class_std, args.teacher_views])
    test_predictions = []
    history = fit(model, data, indices, cfg, seed=seeds, device=device, loss=loss, teacher=teacher_outputs,
                  infobatch=setting.infobatch, resume=resume, test_predictions=test_predictions)
    if not ranks().is_main:
        return

    meta = {"stage": "students", "spec": spec, "config_hash": stable_hash(spec), "seed": seed,
            "subset": args.subset, "subset_scores_hash": subset_meta["scores_hash"], "device": str(device),
            **data_meta(data)}
    evaluated = history.dropna(subset=["test_acc"])
    predictions = test_predictions[0]
    if predictions is None:  # resumed from a state saved before fit kept them
        predictions = evaluate(model, data.test, cfg.batch_size * 4, device).predictions
    per_class = per_class_accuracy(predictions, data.test.labels, data.num_classes)
    per_class.insert(1, "class_name", data.class_names())  # the data's names, else "class <label>"
    loss_params = setting.loss_params()
    run = {
        "experiment": spec["experiment"],
        "dataset": data.name,
        "teacher": setting.teacher,
        "teacher_test_acc": teacher_spec.get("test_acc"),
        "teacher_sparsity": teacher_spec.get("sparsity", 0.0) if teacher is not None else float("nan"),
        "teacher_outputs": teacher_outputs.description,
        # the storage the cached teacher outputs take (cached_views), which every student of the teacher shares
        "teacher_outputs_bytes": Path(args.teacher_views).stat().st_size if setting.cached_views else None,
        "student": f"{model_name}_shaped_from_{setting.teacher}" if setting.shape_student
        else model_name + _args_suffix(model_args),
        "student_params": sum(p.numel() for p in model.parameters()),
        "scorer": subset_meta["scorer"],
        "selector": subset_meta["selector"],
        "keep_fraction": subset_meta["keep_fraction"],
        # the seed of the subset's random draw when it was drawn for this student (random_draws)
        "subset_draw": subset_meta.get("draw"),
        "distillation": setting.name,
        "loss": setting.loss,
        "alpha": float(loss_params.get("alpha", 0.0)),
        "temperature": float(loss_params["temperature"]) if "temperature" in loss_params else float("nan"),
        "loss_params": json.dumps(loss_params, sort_keys=True),
        "seed": seed,
        **{f"{stream}_seed": value for stream, value in asdict(seeds).items()},  # init_seed, order_seed, augment_seed
        "budget": "epochs" if cfg.steps is None else "steps",
        "epochs": len(history),  # passes over the subset (the last may be partial with a steps budget)
        "steps": int(history["steps"].sum()),
        "final_test_acc": float(history["test_acc"].iloc[-1]),
        "best_test_acc": float(evaluated["test_acc"].max()),  # chosen on the test set: biased, for reference only
        # the lowest per-class test accuracy of the model the run ends with (train.select)
        "worst_class_acc": float(per_class["accuracy"].min()),
        # model selection on the held-out validation samples (NaN without a validation split)
        **best_by_validation(evaluated),
        "n_train": len(indices),
        # the share of the subset whose training label data.label_noise corrupted (NaN: clean data)
        "noisy_share": float(data.noisy[indices].double().mean()) if data.clean_labels is not None else float("nan"),
        "infobatch_ratio": setting.infobatch.ratio if setting.infobatch else float("nan"),
        "infobatch_delta": setting.infobatch.delta if setting.infobatch else float("nan"),
        # samples actually trained on, and their share of what the same schedule costs on the full
        # training set (epochs x N, or steps x batch size): the cost to compare static subsets (f)
        # and dynamic pruning by
        "sample_steps": int(history["sample_steps"].sum()),
        "cost_fraction": float(history["sample_steps"].sum()) / full_data_sample_steps(cfg, len(data.train_indices)),
        "train_seconds": float(history["seconds"].sum()),  # the epochs' time, summed over resumptions
        "precision": resolved_precision(cfg, device),
        "device": str(device),
        "dataset_fingerprint": data.fingerprint,
        "subset_scores_hash": subset_meta["scores_hash"],
        "config_hash": stable_hash(spec),
        "config": json.dumps(spec, sort_keys=True),
        "code_version": code_version(),
    }
    write_table(history, args.epochs_out, meta)
    write_table(per_class, args.per_class_out, meta)
    save_model(args.model_out, model, {"model": model_name, "model_args": model_args,
                                       "num_classes": data.num_classes, "in_channels": data.in_channels,
                                       "test_acc": float(selected_epoch(history, cfg.select)["test_acc"]), **meta})
    write_table(pd.DataFrame([run]).astype({"best_val_epoch": "Int64", "subset_draw": "Int64", "teacher_outputs_bytes": "Int64"}), args.run_out, meta)
    if resume is not None:
        resume.clear()
    print(f"final test accuracy {run['final_test_acc']:.4f} on {len(indices)} training samples")


def read_subset(path: str, expected: dict | None, fingerprint: str) -> tuple[pd.DataFrame, dict]:
    """The subset table at ``path``, refused in one line unless it is a subset, of this run's data,
    and the one the student's spec names (``require_subset_of``)."""
    subset, meta = read_table(path, "subset", SUBSET_COLUMNS, fingerprint)
    require_subset_of(path, meta, expected)
    return subset, meta


SUBSET_COLUMNS = ("sample_index", "label", "scorer", "selector", "keep_fraction")


def require_subset_of(path: str, meta: dict, expected: dict | None) -> None:
    """The subset the job was given is the one its spec names (scorer, selector, keep fraction, the
    draw of a random subset): a subset file put in the wrong place stops the job in one line."""
    for key, value in (expected or {}).items():
        if meta.get(key) != value:
            raise UserError(f"{path} is the subset with {key} {meta.get(key)!r}, not this student's {value!r}; "
                            f"delete it (or run snakemake --forcerun subsets) so that it is selected again")


def load_teacher(args, setting: DistillSetting, dataset_fingerprint: str) -> tuple[nn.Module, dict]:
    if args.teacher is None:
        raise UserError(f"distillation {setting.name!r} distils from teacher {setting.teacher!r} and needs --teacher")
    return load_model(args.teacher, dataset_fingerprint, teacher=True)


def teacher_source(args, setting: DistillSetting, teacher: nn.Module | None, teacher_spec: dict,
                   dataset_fingerprint: str) -> TeacherOutputs:
    """Where the student's teacher logits come from: none, the teacher online, or its cached views."""
    if teacher is None:
        return NoTeacher()
    if not setting.cached_views:
        return OnlineTeacher(teacher)
    if args.teacher_views is None:
        raise UserError(f"distillation {setting.name!r} reads cached teacher views and needs --teacher-views")
    views = load_cached_views(args.teacher_views, dataset_fingerprint, teacher_spec.get("config_hash"))
    if len(views) != setting.cached_views:
        raise UserError(f"{args.teacher_views} holds {len(views)} views, not cached_views {setting.cached_views}")
    return views


def best_by_validation(evaluated: pd.DataFrame) -> dict:
    """The evaluated epoch of the highest validation accuracy (the first of equals): its epoch,
    validation accuracy and test accuracy."""
    if evaluated["val_acc"].isna().all():
        return {"best_val_epoch": pd.NA, "best_val_acc": float("nan"), "test_acc_at_best_val": float("nan")}
    best = evaluated.loc[evaluated["val_acc"].idxmax()]
    return {"best_val_epoch": int(best["epoch"]), "best_val_acc": float(best["val_acc"]),
            "test_acc_at_best_val": float(best["test_acc"])}


def full_data_sample_steps(cfg: TrainConfig, num_samples: int) -> int:
    return cfg.epochs * num_samples if cfg.steps is None else cfg.steps * cfg.batch_size


def _args_suffix(model_args: dict) -> str:
    return "".join(f"_{k}{v}" for k, v in sorted(model_args.items()))


if __name__ == "__main__":
    main()
