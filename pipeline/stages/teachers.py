"""Stage 1: train a model on the full training set: a teacher, or one of the proxy models that
EL2N and GraNd share.

Writes its checkpoint and per-epoch metrics, and when asked, the per-sample training dynamics
(correctness and margin of every sample at each presentation, which forgetting and AUM read) and
the trained model's logits on the un-augmented training set (which the teacher-output scorers
read, so the teacher's forward pass over the training set is done once) with the per-class logit
std that MDSLR's logit reshaping reads (computed here, before any pruning of the data).

Resumable (``--resume``), and runs data-parallel under torchrun (``pipeline.devices``).

A teacher with a ``checkpoint`` (``pipeline.models.released``) is not trained: its weights are
loaded into the zoo model, evaluated, and written as the same outputs, the per-epoch metrics one
row (epoch 0: the weights as loaded), the dynamics an empty table (nothing was trained), and every
table's metadata saying which file (and its sha256) the weights came from.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace

import pandas as pd
import torch
import torch.nn as nn

from pipeline.checkpoints import TEACHER_KEY, save_class_logit_std, save_model, save_train_logits
from pipeline.cli import add_resume_arguments, data_meta, parser, resume_folder, setup, stage
from pipeline.data import Dataset
from pipeline.devices import ranks
from pipeline.errors import UserError
from pipeline.dynamics import Dynamics
from pipeline.inference import evaluate, predict
from pipeline.io import stable_hash, write_table
from pipeline.losses import build_loss
from pipeline.losses.kd import class_logit_std
from pipeline.models import build_model
from pipeline.models.released import load_weights
from pipeline.params import parse_params
from pipeline.resume import ResumeFolder
from pipeline.seeding import Seeds, seeded_init
from pipeline.train import TrainConfig, fit, planned_epochs, resolved_precision, selected_epoch


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--model-out", required=True)
    p.add_argument("--epochs-out", required=True)
    p.add_argument("--dynamics-out", default=None)
    p.add_argument("--logits-out", default=None)
    p.add_argument("--class-std-out", default=None, help="with --logits-out")
    p.add_argument("--epoch-models-out", nargs="*", default=[],
                   help="the model after each of the spec's score_epochs (proxies scored early: epoch 0 is the initialisation)")
    add_resume_arguments(p)
    args = p.parse_args(argv)
    if bool(args.logits_out) != bool(args.class_std_out):
        p.error("--logits-out and --class-std-out go together")
    spec, data, device = setup(args)
    teacher = spec["teacher"]
    if teacher.get("checkpoint") is not None:
        return evaluate_loaded(args, spec, data, device)
    cfg = parse_params(TrainConfig, teacher["train"], f"teachers.{spec['name']}.train")
    seeds = Seeds.of(teacher["seed"], teacher.get("seed_streams"))
    with seeded_init(seeds.init, "init"):
        model = build_model(teacher["model"], data.num_classes, data.in_channels, **teacher["model_args"])
    score_epochs = teacher.get("score_epochs") or []
    if len(args.epoch_models_out) != len(score_epochs):
        raise UserError(f"{len(args.epoch_models_out)} --epoch-models-out for score_epochs {score_epochs}")
    if score_epochs:  # the schedule of the whole run, trained up to the last scoring epoch
        cfg = replace(cfg, stop_after=max(score_epochs))
    indices = data.train_indices  # every training sample not held out for validation
    dynamics = Dynamics(len(data.train), planned_epochs(cfg, len(indices)), device) if args.dynamics_out else None
    resume = resume_folder(args, spec, [])
    kept = EpochModels(score_epochs, resume)
    kept(0, model)
    history = fit(model, data, indices, cfg, seed=seeds, device=device,
                  loss=build_loss("ce"), dynamics=dynamics, after_epoch=kept, resume=resume)
    if not ranks().is_main:
        return
    meta = {"stage": "teacher", "teacher": spec["name"], "spec": spec, "config_hash": stable_hash(spec),
            "seed": teacher["seed"], "seeds": asdict(seeds), "device": str(device), "precision": resolved_precision(cfg, device),
            "ranks": ranks().world, **data_meta(data)}
    write_table(history, args.epochs_out, meta)
    if dynamics is not None:
        write_table(dynamics.to_frame(), args.dynamics_out, meta)
    if args.logits_out:
        write_teacher_logits(args.logits_out, args.class_std_out, model, data, cfg.batch_size * 4, device, meta)
    save_model(args.model_out, model, {"model": teacher["model"], "model_args": teacher["model_args"],
                                       "num_classes": data.num_classes, "in_channels": data.in_channels,
                                       "test_acc": float(selected_epoch(history, cfg.select)["test_acc"]), **meta})
    for epoch, path in zip(score_epochs, args.epoch_models_out):
        model.load_state_dict(kept.state(epoch))
        at = history.loc[history["epoch"] == epoch, "test_acc"]  # (none at epoch 0)
        save_model(path, model, {"model": teacher["model"], "model_args": teacher["model_args"], "epoch": epoch,
                                 "num_classes": data.num_classes, "in_channels": data.in_channels,
                                 "test_acc": float(at.iloc[0]) if len(at) else float("nan"), **meta})
    if resume is not None:
        resume.clear()


def evaluate_loaded(args, spec: dict, data: Dataset, device: torch.device) -> None:
    """A teacher brought from its ``checkpoint``: loaded, evaluated, written as a trained one."""
    teacher = spec["teacher"]
    model = build_model(teacher["model"], data.num_classes, data.in_channels, **teacher["model_args"])
    source = load_weights(model, teacher["model"], teacher["checkpoint"], f"teachers.{spec['name']}.checkpoint")
    batch_size = TrainConfig().batch_size * 4  # the evaluation batch of a teacher trained with the defaults
    start = time.perf_counter()
    nan = float("nan")  # the columns of a trained teacher's rows (pipeline.train), nothing trained
    row = {"epoch": 0, "lr": nan, "steps": 0, "sample_steps": 0, "train_loss": nan, "train_acc": nan,
           "test_acc": nan, "test_loss": nan, "val_acc": nan, "val_loss": nan}
    row["test_acc"], row["test_loss"] = evaluate(model, data.test, batch_size, device)[:2]
    if len(data.held_out):
        row["val_acc"], row["val_loss"] = evaluate(model, data.train, batch_size, device, data.held_out)[:2]
    row["seconds"] = time.perf_counter() - start
    row["images_per_second"] = (len(data.test) + len(data.held_out)) / row["seconds"]
    meta = {"stage": "teacher", "teacher": spec["name"], "spec": spec, "config_hash": stable_hash(spec),
            "checkpoint": source, "device": str(device), "precision": "fp32", "ranks": ranks().world,
            **data_meta(data)}
    print(f"teacher {spec['name']} loaded from {teacher['checkpoint']} (sha256 {source['sha256'][:12]}): "
          f"test_acc {row['test_acc']:.4f}")
    write_table(pd.DataFrame([row]), args.epochs_out, meta)
    if args.dynamics_out:  # nothing trained, nothing recorded: the columns only
        write_table(Dynamics(len(data.train), 0, device).to_frame(), args.dynamics_out, meta)
    if args.logits_out:
        write_teacher_logits(args.logits_out, args.class_std_out, model, data, batch_size, device, meta)
    save_model(args.model_out, model, {"model": teacher["model"], "model_args": teacher["model_args"],
                                       "num_classes": data.num_classes, "in_channels": data.in_channels,
                                       "test_acc": row["test_acc"], **meta})


class EpochModels:
    """The weights at chosen epochs of a run (0: the initialisation), kept in memory and in the
    job's resume folder, so that a resumed run still has those it passed before the interruption."""

    def __init__(self, epochs: list[int], resume: ResumeFolder | None):
        self.epochs, self.resume, self.states = set(epochs), resume, {}

    def __call__(self, epoch: int, model: nn.Module) -> None:
        if epoch in self.epochs:
            self.states[epoch] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if self.resume is not None and ranks().is_main:
                self.resume.save(f"model_epoch{epoch}", self.states[epoch])

    def state(self, epoch: int) -> dict:
        if epoch not in self.states:
            self.states[epoch] = self.resume.load(f"model_epoch{epoch}")
        return self.states[epoch]


def write_teacher_logits(logits_out: str, class_std_out: str, model: nn.Module, data: Dataset, batch_size: int,
                         device: torch.device, meta: dict) -> None:
    """A trained teacher's logits on every un-augmented training sample (which the teacher-output
    scorers read), and MDSLR's class statistics of those logits."""
    logits = predict(model, data.train, batch_size, device)
    meta = {**meta, TEACHER_KEY: meta["config_hash"]}
    save_train_logits(logits_out, logits, meta)
    write_class_logit_std(class_std_out, logits, data, meta)


def write_class_logit_std(path: str, logits: torch.Tensor, data: Dataset, meta: dict) -> None:
    """MDSLR's class statistics of a teacher's training-set ``logits``, over the samples not held out."""
    indices = data.train_indices
    labels = data.train.labels[indices]
    save_class_logit_std(path, class_logit_std(logits[indices], labels, data.num_classes), labels, meta)


if __name__ == "__main__":
    main()
