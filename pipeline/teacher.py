"""Stage 1: train a teacher on the full training set.

Writes its checkpoint, per-epoch metrics and the per-sample training dynamics (correctness and
margin of every sample at each presentation) that the forgetting and AUM scorers read.
"""
from __future__ import annotations

import torch

from pipeline.checkpoints import save_model
from pipeline.cli import data_meta, parser, setup, stage
from pipeline.io import stable_hash, write_table
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.params import parse_params
from pipeline.seeding import seeded_init
from pipeline.train import Dynamics, TrainConfig, fit


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--model-out", required=True)
    p.add_argument("--epochs-out", required=True)
    p.add_argument("--dynamics-out", required=True)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    teacher = spec["teacher"]
    cfg = parse_params(TrainConfig, teacher["train"], f"teachers.{spec['name']}.train")
    with seeded_init(teacher["seed"], "init"):
        model = build_model(teacher["model"], data.num_classes, data.in_channels, **teacher["model_args"])
    dynamics = Dynamics(len(data.train), cfg.epochs, device)
    history = fit(model, data, torch.arange(len(data.train)), cfg, seed=teacher["seed"], device=device,
                  loss=build_loss("ce"), dynamics=dynamics)
    meta = {"stage": "teacher", "teacher": spec["name"], "spec": spec, "config_hash": stable_hash(spec),
            "seed": teacher["seed"], "device": str(device), **data_meta(data)}
    write_table(history, args.epochs_out, meta)
    write_table(dynamics.to_frame(), args.dynamics_out, meta)
    save_model(args.model_out, model, {"model": teacher["model"], "model_args": teacher["model_args"],
                                       "num_classes": data.num_classes, "in_channels": data.in_channels,
                                       "test_acc": float(history["test_acc"].iloc[-1]), **meta})


if __name__ == "__main__":
    main()
