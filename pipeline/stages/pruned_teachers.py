"""Stage 1b: prune a trained teacher ("prune, then distill"; see ``pipeline.pruning``).

Each round removes ``rate`` of the remaining Conv2d/Linear weights by global magnitude, then
retrains the pruned teacher from its current weights with a fresh one-cycle learning-rate schedule
(learning-rate rewinding) while the masks stay fixed. Writes the pruned teacher as an ordinary
checkpoint that any student can name as its teacher, its training-set logits and class
statistics (as the teacher stage), the per-epoch metrics of every retraining, and one row per round
with the sparsity measured on the weights and the test accuracy before and after retraining.
Resumable (``--resume``): finished rounds are kept, and the round under way continues where it was.
"""
from __future__ import annotations

import pandas as pd

from pipeline.checkpoints import load_model, save_model
from pipeline.cli import add_resume_arguments, data_meta, parser, resume_folder, setup, stage
from pipeline.devices import ranks
from pipeline.inference import evaluate
from pipeline.io import stable_hash, write_table
from pipeline.losses import build_loss
from pipeline.params import parse_params
from pipeline.pruning import Masks
from pipeline.stages.teachers import write_teacher_logits
from pipeline.train import TrainConfig, fit, selected_epoch


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--teacher", required=True, help="checkpoint of the teacher to prune")
    p.add_argument("--model-out", required=True)
    p.add_argument("--epochs-out", required=True)
    p.add_argument("--rounds-out", required=True)
    p.add_argument("--logits-out", required=True)
    p.add_argument("--class-std-out", required=True)
    add_resume_arguments(p)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    pruning = spec["pruning"]
    cfg = parse_params(TrainConfig, pruning["train"], f"pruned_teachers.{spec['name']}.train")
    model, parent = load_model(args.teacher, data.fingerprint, teacher=True)
    model.to(device)
    masks = Masks(model).to(device)
    test_batch = cfg.batch_size * 4
    rounds = [{"round": 0, "sparsity": masks.sparsity(), "test_acc_pruned": float("nan"),
               "test_acc": evaluate(model, data.test, test_batch, device)[0]}]
    histories = []
    resume = resume_folder(args, spec, [args.teacher])
    done = resume.load("rounds") if resume else None
    if done is not None:  # the rounds finished before an interruption
        model.load_state_dict(done["model"])
        rounds, histories = done["rounds"], [pd.DataFrame(h) for h in done["histories"]]
        masks = Masks(model).to(device)  # the zeros of the weights are the masks
    for r in range(len(rounds), pruning["rounds"] + 1):
        masks.prune(pruning["rate"])
        pruned_acc = evaluate(model, data.test, test_batch, device)[0]
        history = fit(model, data, data.train_indices, cfg, seed=pruning["seed"] + r, device=device,
                      loss=build_loss("ce"), after_step=masks.apply, resume=resume and resume.for_part(f"round{r}"))
        histories.append(history.assign(round=r))
        rounds.append({"round": r, "sparsity": masks.sparsity(), "test_acc_pruned": pruned_acc,
                       "test_acc": float(selected_epoch(history, cfg.select)["test_acc"])})
        print(f"round {r}: sparsity {rounds[-1]['sparsity']:.4f}, test accuracy {pruned_acc:.4f} after pruning, "
              f"{rounds[-1]['test_acc']:.4f} after retraining")
        if resume is not None and ranks().is_main:
            resume.save("rounds", {"model": model.state_dict(), "rounds": rounds,
                                   "histories": [h.to_dict("list") for h in histories]})
    if not ranks().is_main:
        return
    meta = {"stage": "prune_teacher", "teacher": spec["name"], "parent": pruning["teacher"], "spec": spec,
            "config_hash": stable_hash(spec), "seed": pruning["seed"], "device": str(device), **data_meta(data)}
    write_table(pd.concat(histories, ignore_index=True), args.epochs_out, meta)
    write_table(pd.DataFrame(rounds).assign(teacher=spec["name"], parent=pruning["teacher"]), args.rounds_out, meta)
    write_teacher_logits(args.logits_out, args.class_std_out, model, data, test_batch, device, meta)
    save_model(args.model_out, model, {"model": parent["model"], "model_args": parent["model_args"],
                                       "num_classes": data.num_classes, "in_channels": data.in_channels,
                                       "test_acc": rounds[-1]["test_acc"], "sparsity": rounds[-1]["sparsity"], **meta})
    if resume is not None:
        resume.clear()


if __name__ == "__main__":
    main()
