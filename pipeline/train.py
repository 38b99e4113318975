"""The one training loop, shared by teachers, proxy models and students.

SGD with (Nesterov) momentum and a one-cycle learning rate schedule over a fixed number of epochs
over the given indices (so the cost of a student scales with its keep fraction). Metrics
accumulate on the device and are read once per epoch: the step itself never waits on the host.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from pipeline.data import Dataset, Split
from pipeline.devices import ranks, sum_across_ranks
from pipeline.dynamics import Dynamics
from pipeline.inference import evaluate
from pipeline.errors import UserError
from pipeline.infobatch import InfoBatch, InfoBatchConfig
from pipeline.progress import progress_bar
from pipeline.losses import DistillLoss
from pipeline.features import LayerOutputs
from pipeline.resume import Preempted, ResumeFolder, StopSignal
from pipeline.schedules import one_cycle_lr
from pipeline.seeding import seeded_init, torch_generator

if TYPE_CHECKING:
    from pipeline.stages.teacher_views import TeacherViews


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1  # peak learning rate of the one-cycle schedule (see one_cycle_lr)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    augment: bool = True  # the dataset's standard training augmentation
    eval_every: int = 1  # test accuracy every n epochs; the final epoch is always evaluated
    # Budget: None trains ``epochs`` passes over the given indices (cost scales with the keep
    # fraction); a number trains exactly that many optimizer steps whatever the subset size (the
    # same compute for every keep fraction), the last pass stopping part-way.
    steps: int | None = None
    compile: bool = False  # torch.compile the model (minutes of compilation; pays off on long GPU runs)


def planned_epochs(cfg: TrainConfig, num_indices: int) -> int:
    """Passes over ``num_indices`` samples that the budget needs (the last may be partial)."""
    if cfg.steps is None:
        return cfg.epochs
    return math.ceil(cfg.steps / math.ceil(num_indices / cfg.batch_size))


def fit(
    model: nn.Module,
    data: Dataset,
    indices: torch.Tensor,
    cfg: TrainConfig,
    *,
    seed: int,
    device: torch.device,
    loss: DistillLoss,
    teacher: nn.Module | None = None,
    dynamics: Dynamics | None = None,
    infobatch: InfoBatchConfig | None = None,
    after_step: Callable[[], None] | None = None,
    teacher_views: "TeacherViews | None" = None,
    resume: ResumeFolder | None = None,
    resume_part: str = "",
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Train ``model`` on ``data.train[indices]``; return one row of metrics per epoch.

    The loss gives per-sample terms; the step minimises their (weighted) batch mean. Parameters the
    loss learns (VID's regressors) are trained with the model, initialised from ``seed``. With
    ``infobatch`` each epoch trains on InfoBatch's share of ``indices`` (``sample_steps`` per row
    counts the samples actually trained on). ``after_step`` runs after every optimizer step (the
    pruning masks use it to keep pruned weights at zero). With ``teacher_views`` (cached teacher
    outputs, ``pipeline.stages.teacher_views``) epoch e trains on the cached view e mod K of every sample
    and takes the teacher's logits from the cache: no teacher forward pass.

    With ``resume``, the whole training state is saved at the start of every ``resume.every``-th
    epoch and, on SIGTERM, after the current step (then ``Preempted`` is raised); a call that
    finds a saved state continues from it and ends exactly as the uninterrupted run would (same
    random streams, same batches: the batches before the saved step are drawn again, not trained).

    Under torchrun (``pipeline.devices``) every rank draws the same permutation and trains on
    its share of each batch; gradients are averaged by DistributedDataParallel, and metrics and
    dynamics are summed over ranks. Each epoch leaves out fewer than world-size samples (the last
    of its permutation) so that every rank takes the same number of steps."""
    if loss.needs_teacher and teacher is None and teacher_views is None:
        raise UserError(f"loss {type(loss).__name__} needs a teacher")
    if teacher_views is not None and loss.teacher_layers:
        raise UserError(f"loss {type(loss).__name__} reads the teacher's features, which cached teacher views do not hold")
    if infobatch is not None and cfg.steps is not None:
        raise UserError("infobatch prunes passes over the data; use an epochs budget (train.steps: null) with it")
    group = ranks()
    epochs = planned_epochs(cfg, len(indices))
    # channels_last: about 2x faster convolutions on CPU (oneDNN) and the layout tensor cores want.
    model.to(device, memory_format=torch.channels_last)
    if teacher is not None:
        teacher.to(device, memory_format=torch.channels_last).eval()
    example, _, _ = next(data.train.batches(indices[:2], 2, device=device))
    with seeded_init(seed, "loss"):
        loss.prepare(model, teacher, example.contiguous(memory_format=torch.channels_last))
    loss.to(device)
    if group.enabled:
        if infobatch is not None or any(True for _ in loss.parameters()):
            raise UserError("data-parallel training (torchrun) supports neither infobatch nor losses with learned parts (vid)")
        if cfg.batch_size % group.world:
            raise UserError(f"batch_size {cfg.batch_size} must be a multiple of the {group.world} ranks")
    forward = DistributedDataParallel(model) if group.enabled else model
    batch_size = cfg.batch_size // group.world
    cuda = device.type == "cuda"
    optimizer = torch.optim.SGD(
        [*model.parameters(), *loss.parameters()],
        lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, fused=cuda or None,
    )
    if cfg.compile:
        forward = torch.compile(forward)
    # On a GPU: bf16 matmuls and convolutions (the loss itself in fp32). The teacher runs in
    # inference mode unless the loss reads its features (VID's hooks need ordinary tensors).
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    teacher_mode = torch.no_grad if loss.teacher_layers else torch.inference_mode
    student_layers = LayerOutputs(model, loss.student_layers)
    teacher_layers = LayerOutputs(teacher, loss.teacher_layers)
    order = torch_generator(seed, "order")
    augment_rng = torch_generator(seed, "augment", *([f"rank{group.rank}"] if group.enabled else []))
    prune_rng = torch_generator(seed, "infobatch")
    pruning = InfoBatch(infobatch, len(data.train), epochs, device) if infobatch else None
    augment = data.augment if cfg.augment else None
    if teacher_views is not None:
        if augment is None:
            raise UserError("cached teacher views are augmented views; they need cfg.augment")
        teacher_views = teacher_views.to(device)
    run = _RunState(epoch=0, step=0, global_step=0, rows=[])
    saved = resume.load("fit", resume_part) if resume else None
    if saved is not None:
        run = _restore(saved, model, loss, optimizer, dynamics, pruning, prune_rng)
    start = time.perf_counter() - run.elapsed
    with student_layers, teacher_layers, StopSignal() as stop:  # the hooks come off however training ends
        for epoch in range(run.epoch, epochs):
            model.train()
            loss.start_epoch(epoch, epochs)
            resuming = run.epoch_indices is not None
            if resuming:  # the saved epoch: its plan and the random streams as they were at its start
                epoch_indices = run.epoch_indices
                order.set_state(run.order_state)
                augment_rng.set_state(run.augment_state)
            else:
                epoch_indices = pruning.plan(epoch, indices, prune_rng) if pruning else indices
                run = run.start_epoch(epoch, epoch_indices, order.get_state(), augment_rng.get_state(), device)
                if resume and group.is_main and epoch > 0 and epoch % resume.every == 0:
                    resume.save("fit", _snapshot(run, start, model, loss, optimizer, dynamics, pruning, prune_rng), resume_part)
            permuted = epoch_indices[torch.randperm(len(epoch_indices), generator=order)]
            if group.enabled:  # equal shares: drop the permutation's last len % world samples
                permuted = permuted[: len(permuted) - len(permuted) % group.world][group.rank :: group.world]
            steps = math.ceil(len(permuted) / batch_size)
            epoch_start = time.perf_counter() - run.epoch_seconds
            cached = teacher_views.view(epoch % len(teacher_views)) if teacher_views is not None else None
            for step, (x, y, idx) in enumerate(progress_bar(data.train.batches(
                permuted, batch_size, device=device, augment=augment, augment_rng=augment_rng, views=cached
            ), steps, f"epoch {epoch + 1}/{epochs}")):
                if step < run.step:  # trained before the interruption: drawn again to replay the streams
                    continue
                if cfg.steps is not None and run.global_step == cfg.steps:
                    break
                progress = run.global_step / cfg.steps if cfg.steps else (epoch + step / steps) / epochs
                lr = one_cycle_lr(progress, cfg.lr)
                for param_group in optimizer.param_groups:
                    param_group["lr"] = lr
                x = x.contiguous(memory_format=torch.channels_last)
                with autocast:
                    logits = forward(x)
                    teacher_logits = None
                    if teacher_views is not None:
                        teacher_logits = teacher_views.logits[epoch % len(teacher_views), idx].float()
                    elif teacher is not None:
                        with teacher_mode():
                            teacher_logits = teacher(x)
                        teacher_logits = teacher_logits.float()  # (a normal tensor again, if made in inference mode)
                    terms = loss(logits.float(), y, teacher_logits, student_layers.outputs, teacher_layers.outputs)
                per_sample = sum(terms.values())
                weighted = per_sample * pruning.weight[idx] if pruning else per_sample
                optimizer.zero_grad(set_to_none=True)
                weighted.mean().backward()
                optimizer.step()
                if after_step is not None:
                    after_step()
                run.global_step += 1
                run.step = step + 1
                run.lr = lr
                with torch.no_grad():
                    for name, value in terms.items():
                        run.sums[name] = run.sums.get(name, 0) + value.detach().sum()
                    run.correct += (logits.argmax(1) == y).sum()
                    run.seen += len(y)
                    if dynamics is not None:
                        dynamics.update(epoch, logits, y, idx)
                    if pruning is not None:
                        pruning.update(idx, per_sample)
                if _stop_requested(stop, group, device, step):
                    run.epoch_seconds = time.perf_counter() - epoch_start
                    if resume is not None and group.is_main:
                        resume.save("fit", _snapshot(run, start, model, loss, optimizer, dynamics, pruning, prune_rng), resume_part)
                    raise Preempted(f"stopped by a signal at epoch {epoch + 1}, step {step + 1}"
                                    + (f"; state saved in {resume.folder}" if resume else "; nothing saved (no --resume)"))
            totals = sum_across_ranks(torch.stack([
                torch.as_tensor(float(run.seen), device=device), run.correct.float(),
                *[torch.as_tensor(v, device=device).float() for v in run.sums.values()],
            ]))
            n, correct, term_sums = float(totals[0]), float(totals[1]), dict(zip(run.sums, totals[2:].tolist()))
            seconds = time.perf_counter() - epoch_start  # after the sync above: the GPU's work included
            row = {
                "epoch": epoch + 1,
                "lr": run.lr,
                "steps": run.step,
                "sample_steps": int(n),
                "train_loss": sum(term_sums.values()) / n,
                **{f"train_{name}": value / n for name, value in term_sums.items()},
                "train_acc": correct / n,
                "test_acc": float("nan"),
                "test_loss": float("nan"),
                "seconds": seconds,
                "images_per_second": n / seconds,
            }
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs:
                row["test_acc"], row["test_loss"] = evaluate(model, data.test, cfg.batch_size * 4, device)
            run.rows.append(row)
            run.epoch_indices = None
            elapsed = time.perf_counter() - start
            log(
                f"epoch {epoch + 1}/{epochs} loss {row['train_loss']:.4f} train_acc {row['train_acc']:.4f} "
                f"test_acc {row['test_acc']:.4f} {row['images_per_second']:.0f} img/s "
                f"elapsed {elapsed:.0f}s left {elapsed / (epoch + 1) * (epochs - epoch - 1):.0f}s"
            )
    if dynamics is not None:
        dynamics.sum_across_ranks()
    return pd.DataFrame(run.rows)


@dataclass
class _RunState:
    """Where training stands: the epoch and the step within it, and what the epoch has summed so far."""

    epoch: int
    step: int
    global_step: int
    rows: list
    epoch_indices: torch.Tensor | None = None  # set while an epoch is under way
    order_state: torch.Tensor | None = None  # the random streams at the start of the epoch
    augment_state: torch.Tensor | None = None
    sums: dict = field(default_factory=dict)
    correct: torch.Tensor | int = 0
    seen: int = 0
    lr: float = float("nan")
    elapsed: float = 0.0
    epoch_seconds: float = 0.0

    def start_epoch(self, epoch, epoch_indices, order_state, augment_state, device) -> "_RunState":
        return _RunState(epoch=epoch, step=0, global_step=self.global_step, rows=self.rows,
                         epoch_indices=epoch_indices, order_state=order_state, augment_state=augment_state,
                         correct=torch.zeros((), dtype=torch.long, device=device), lr=self.lr)


def _stop_requested(stop: StopSignal, group, device: torch.device, step: int) -> bool:
    """A signal stops every rank at the same step: under torchrun the ranks agree every 16th step
    (an all-reduce and a host sync, so not at every step)."""
    if not group.enabled:
        return stop.requested
    return step % 16 == 0 and bool(sum_across_ranks(torch.tensor(float(stop.requested), device=device)) > 0)


def _snapshot(run, start, model, loss, optimizer, dynamics, pruning, prune_rng) -> dict:
    return {
        "run": {**vars(run), "elapsed": time.perf_counter() - start,
                "correct": torch.as_tensor(run.correct).cpu(),
                "sums": {k: torch.as_tensor(v).cpu() for k, v in run.sums.items()}},
        "model": model.state_dict(),
        "loss": loss.state_dict(),
        "optimizer": optimizer.state_dict(),
        "dynamics": vars(dynamics) if dynamics is not None else None,
        "pruning": {"last_loss": pruning.last_loss, "weight": pruning.weight} if pruning is not None else None,
        "prune_rng": prune_rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _restore(saved, model, loss, optimizer, dynamics, pruning, prune_rng) -> _RunState:
    model.load_state_dict(saved["model"])
    loss.load_state_dict(saved["loss"])
    optimizer.load_state_dict(saved["optimizer"])
    if dynamics is not None:
        for name, value in saved["dynamics"].items():
            getattr(dynamics, name).copy_(value)
    if pruning is not None:
        pruning.last_loss.copy_(saved["pruning"]["last_loss"])
        pruning.weight.copy_(saved["pruning"]["weight"])
    prune_rng.set_state(saved["prune_rng"])
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    device = next(model.parameters()).device
    state = dict(saved["run"])
    state["correct"] = state["correct"].to(device)
    state["sums"] = {k: v.to(device) for k, v in state["sums"].items()}
    return _RunState(**state)
