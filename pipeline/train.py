"""The one training loop, shared by teachers, proxy models and students.

SGD with (Nesterov) momentum and a learning-rate schedule (one-cycle by default) over a fixed number of epochs
over the given indices (so the cost of a student scales with its keep fraction), or a fixed number
of steps. Metrics accumulate on the device and are read once per epoch: the step itself never
waits on the host. What the loop does not decide lives elsewhere: where teacher logits come from
(``pipeline.teacher_outputs``), which samples an epoch trains on (``pipeline.infobatch``), the
schedule (``pipeline.schedules``), the per-sample record (``pipeline.dynamics``), saved state
(``pipeline.resume``) and evaluation (``pipeline.inference``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.data import Dataset
from pipeline.devices import Ranks, ranks, sum_across_ranks
from pipeline.dynamics import Dynamics
from pipeline.errors import UserError
from pipeline.features import LayerOutputs
from pipeline.inference import evaluate
from pipeline.infobatch import InfoBatch, InfoBatchConfig
from pipeline.losses import DistillLoss
from pipeline.progress import progress_bar
from pipeline.resume import Preempted, ResumeFolder, StopSignal, capture, restore
from pipeline.schedules import Clock, build_schedule, schedule_entry
from pipeline.seeding import Seeds, seeded_init, torch_generator
from pipeline.teacher_outputs import NoTeacher, TeacherOutputs


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1  # base learning rate (the peak of the one-cycle schedule)
    # the learning-rate schedule and its parameters (pipeline.schedules), filled in on parsing
    schedule: dict = field(default_factory=lambda: {"name": "onecycle"})
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
    # The model a run ends with: "last" (the final epoch's), or "best_val" (the evaluated epoch of
    # the highest validation accuracy, the first of equals; needs data.validation_fraction > 0).
    select: str = "last"
    # Train only the first n epochs of the schedule (which still spans ``epochs``): a model taken
    # early inside a long run, as Paul et al. score EL2N at epoch 20 of 200. None: the whole run.
    stop_after: int | None = None
    # The forward pass's precision: "bf16" (autocast to bfloat16, the loss in fp32), "fp32", or
    # "auto": bf16 on a GPU, fp32 on the CPU (whose bf16 is slow without AMX).
    precision: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "schedule", schedule_entry(self.schedule))
        if self.select not in SELECT:
            raise UserError(f"train.select must be one of {', '.join(SELECT)}, got {self.select!r}")
        if self.precision not in PRECISIONS:
            raise UserError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


SELECT = ("last", "best_val")
PRECISIONS = ("auto", "bf16", "fp32")


def resolved_precision(cfg: TrainConfig, device: torch.device) -> str:
    """The precision a run trains in on ``device``: bf16 or fp32 (``TrainConfig.precision``)."""
    if cfg.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return cfg.precision


def selected_epoch(history: pd.DataFrame, select: str) -> pd.Series:
    """The row of ``fit``'s history whose model a run ends with (``TrainConfig.select``)."""
    if select == "best_val":
        return history.loc[history["val_acc"].idxmax()]
    return history.iloc[-1]


def schedule_epochs(cfg: TrainConfig, num_indices: int) -> int:
    """Passes over ``num_indices`` samples that the budget needs (the last may be partial)."""
    if cfg.steps is None:
        return cfg.epochs
    return math.ceil(cfg.steps / math.ceil(num_indices / cfg.batch_size))


def planned_epochs(cfg: TrainConfig, num_indices: int) -> int:
    """Passes a run trains: the budget's, or the first ``stop_after`` of them."""
    return min(schedule_epochs(cfg, num_indices), cfg.stop_after or math.inf)


def fit(
    model: nn.Module,
    data: Dataset,
    indices: torch.Tensor,
    cfg: TrainConfig,
    *,
    seed: int | Seeds,
    device: torch.device,
    loss: DistillLoss,
    teacher: TeacherOutputs = NoTeacher(),
    dynamics: Dynamics | None = None,
    infobatch: InfoBatchConfig | None = None,
    after_step: Callable[[], None] | None = None,
    after_epoch: Callable[[int, nn.Module], None] | None = None,
    resume: ResumeFolder | None = None,
    log: Callable[[str], None] = print,
    test_predictions: list[torch.Tensor] | None = None,
) -> pd.DataFrame:
    """Train ``model`` on ``data.train[indices]``; return one row of metrics per epoch.

    The loss gives per-sample terms; the step minimises their (weighted) batch mean, with the
    teacher's logits (and features) from ``teacher``. Parameters the loss learns (VID's regressors)
    are trained with the model, initialised from the init seed. ``seed``: the seeds of the
    initialisation, order and augmentation streams, or one int for all three. With ``infobatch``
    each epoch trains on InfoBatch's share of ``indices`` (``sample_steps`` per row counts the
    samples actually trained on). ``after_step`` runs after every optimizer step (the pruning masks
    use it to keep pruned weights at zero), ``after_epoch(epochs_done, model)`` after every epoch
    (to keep a model taken inside the run). With a validation split (``data.held_out``) every
    evaluated epoch records ``val_acc``; ``cfg.select: best_val`` ends with that epoch's weights.

    With ``resume``, the whole training state is saved at the start of every ``resume.every``-th
    epoch and, on SIGTERM, after the current step (then ``Preempted`` is raised); a call that
    finds a saved state continues from it and ends exactly as the uninterrupted run would (same
    random streams, same batches: the batches before the saved step are drawn again, not trained).

    Under torchrun (``pipeline.devices``) every rank draws the same permutation and trains on its
    share of each batch; gradients are averaged by DistributedDataParallel, and metrics and
    dynamics are summed over ranks. Each epoch leaves out fewer than world-size samples (the last
    of its permutation) so that every rank takes the same number of steps.

    ``test_predictions``, a list, gets the test-set predictions of the model the run ends with
    (for its per-class accuracy without another pass over the test set)."""
    group = ranks()
    seeds = Seeds.of(seed)
    _check(cfg, data, loss, infobatch, group)
    epochs = schedule_epochs(cfg, len(indices))  # what the schedule spans
    trained = planned_epochs(cfg, len(indices))  # what is trained
    teacher = teacher.start(loss, cfg.augment, device)
    model.to(device, memory_format=torch.channels_last)
    example, _, _ = next(data.train.batches(indices[:2], 2, device=device))
    with seeded_init(seeds.init, "loss"):
        loss.prepare(model, teacher.model, example.contiguous(memory_format=torch.channels_last))
    loss.to(device)
    cuda = device.type == "cuda"
    optimizer = torch.optim.SGD(
        [*model.parameters(), *loss.parameters()],
        lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, fused=cuda or None,
    )
    forward = DistributedDataParallel(model) if group.enabled else model
    if cfg.compile:
        forward = torch.compile(forward)
    schedule = build_schedule(cfg.schedule)
    streams = _Streams(seeds, group)
    pruning = InfoBatch(infobatch, len(data.train), epochs, device) if infobatch else None
    best = _BestModel(model) if cfg.select == "best_val" else None
    # Everything a saved state restores, by name.
    parts = {"model": model, "loss": loss, "optimizer": optimizer, "dynamics": dynamics, "pruning": pruning,
             "prune_rng": streams.infobatch, "best": best}
    run = _Progress()
    saved = resume.load("fit") if resume else None
    if saved is not None:
        run = _Progress.from_state(saved["run"], device)
        restore(saved["parts"], parts)

    def save_state(started: float) -> None:
        if resume is not None and group.is_main:
            resume.save("fit", {"run": run.state(time.perf_counter() - started), "parts": capture(parts)})

    start = time.perf_counter() - run.elapsed
    with LayerOutputs(model, loss.student_layers) as student_layers, StopSignal() as stop:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolved_precision(cfg, device) == "bf16")
        step = _Step(forward, loss, student_layers, teacher, optimizer, pruning, dynamics, after_step, autocast)
        try:
            for epoch in range(run.epoch, trained):
                model.train()
                loss.start_epoch(epoch, epochs)
                if run.epoch_indices is not None:  # the saved epoch: its plan and the random streams as they were
                    streams.set_state(run.stream_states)
                else:
                    epoch_indices = pruning.plan(epoch, indices, streams.infobatch) if pruning else indices
                    run.start_epoch(epoch, epoch_indices, streams.state(), device)
                    if epoch > 0 and resume is not None and epoch % resume.every == 0:
                        save_state(start)
                permuted = _share(run.epoch_indices[torch.randperm(len(run.epoch_indices), generator=streams.order)], group)
                batch_size = cfg.batch_size // group.world
                steps = math.ceil(len(permuted) / batch_size)
                epoch_start = time.perf_counter() - run.epoch_seconds
                batches = data.train.batches(permuted, batch_size, device=device,
                                             augment=data.augment if cfg.augment else None,
                                             augment_rng=streams.augment, views=teacher.views(epoch))
                for i, batch in enumerate(progress_bar(batches, steps, f"epoch {epoch + 1}/{trained}")):
                    if i < run.step:  # trained before the interruption: drawn again to replay the streams
                        continue
                    if cfg.steps is not None and run.global_step == cfg.steps:
                        break
                    progress = run.global_step / cfg.steps if cfg.steps else (epoch + i / steps) / epochs
                    step(batch, epoch, schedule.lr(cfg.lr, Clock(progress, epoch, epoch + (i + 1) / steps)), run)
                    run.step = i + 1
                    if _stop_requested(stop, group, device, i):
                        run.epoch_seconds = time.perf_counter() - epoch_start
                        save_state(start)
                        raise Preempted(f"stopped by a signal at epoch {epoch + 1}, step {i + 1}"
                                        + (f"; state saved in {resume.folder}" if resume else "; nothing saved (no --resume)"))
                row = _epoch_row(run, epoch, epoch_start, device)
                if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == trained:
                    test = evaluate(model, data.test, cfg.batch_size * 4, device)
                    row["test_acc"], row["test_loss"], run.test_predictions = test
                    if len(data.held_out):
                        row["val_acc"], row["val_loss"] = evaluate(model, data.train, cfg.batch_size * 4, device,
                                                                   data.held_out)[:2]
                    if best is not None:
                        best.update(row["val_acc"], model, test.predictions)
                run.finish_epoch(row)
                if after_epoch is not None:
                    after_epoch(epoch + 1, model)
                elapsed = time.perf_counter() - start
                log(
                    f"epoch {epoch + 1}/{trained} loss {row['train_loss']:.4f} train_acc {row['train_acc']:.4f} "
                    f"test_acc {row['test_acc']:.4f} {row['images_per_second']:.0f} img/s "
                    f"elapsed {elapsed:.0f}s left {elapsed / (epoch + 1) * (trained - epoch - 1):.0f}s"
                )
        finally:  # the hooks on the teacher come off however training ends
            teacher.stop()
    if dynamics is not None:
        dynamics.sum_across_ranks()
    if best is not None:
        model.load_state_dict(best.weights)
    if test_predictions is not None:
        test_predictions.append(best.predictions if best is not None else run.test_predictions)
    return pd.DataFrame(run.rows)


def _check(cfg: TrainConfig, data: Dataset, loss: DistillLoss, infobatch: InfoBatchConfig | None, group: Ranks) -> None:
    if cfg.select == "best_val" and not len(data.held_out):
        raise UserError("train.select: best_val needs a validation split (data.validation_fraction > 0)")
    if infobatch is not None and cfg.steps is not None:
        raise UserError("infobatch prunes passes over the data; use an epochs budget (train.steps: null) with it")
    if group.enabled:
        if infobatch is not None or any(True for _ in loss.parameters()):
            raise UserError("data-parallel training (torchrun) supports neither infobatch nor losses with learned parts (vid)")
        if cfg.batch_size % group.world:
            raise UserError(f"batch_size {cfg.batch_size} must be a multiple of the {group.world} ranks")


def _share(permuted: torch.Tensor, group: Ranks) -> torch.Tensor:
    """This rank's share of an epoch's permutation: equal shares, the last len % world samples dropped."""
    if not group.enabled:
        return permuted
    return permuted[: len(permuted) - len(permuted) % group.world][group.rank :: group.world]


class _Streams:
    """The loop's random streams: the order of samples, their augmentation (one per rank under
    torchrun) and InfoBatch's drops (from the order seed)."""

    def __init__(self, seeds: Seeds, group: Ranks):
        self.order = torch_generator(seeds.order, "order")
        self.augment = torch_generator(seeds.augment, "augment", *([f"rank{group.rank}"] if group.enabled else []))
        self.infobatch = torch_generator(seeds.order, "infobatch")

    def state(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.order.get_state(), self.augment.get_state()

    def set_state(self, states: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.order.set_state(states[0])
        self.augment.set_state(states[1])


class _Step:
    """One optimizer step on one batch: forward (under ``autocast``: bf16 where the run's precision
    says so, the loss in fp32), backward, step; the epoch's sums, the dynamics and InfoBatch's
    losses updated on the device."""

    def __init__(self, forward, loss, student_layers, teacher, optimizer, pruning, dynamics, after_step, autocast):
        self.forward, self.loss, self.student_layers, self.teacher = forward, loss, student_layers, teacher
        self.optimizer, self.pruning, self.dynamics, self.after_step = optimizer, pruning, dynamics, after_step
        self.autocast = autocast

    def __call__(self, batch, epoch: int, lr: float, run: "_Progress") -> None:
        x, y, idx = batch
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast:
            logits = self.forward(x)
            teacher_logits = self.teacher.logits(x, idx, epoch)
            terms = self.loss(logits.float(), y, teacher_logits, self.student_layers.outputs, self.teacher.features)
        per_sample = sum(terms.values())
        weighted = per_sample * self.pruning.weight[idx] if self.pruning else per_sample
        self.optimizer.zero_grad(set_to_none=True)
        weighted.mean().backward()
        self.optimizer.step()
        if self.after_step is not None:
            self.after_step()
        run.global_step += 1
        run.lr = lr
        with torch.no_grad():
            for name, value in terms.items():
                run.sums[name] = run.sums.get(name, 0) + value.detach().sum()
            run.correct += (logits.argmax(1) == y).sum()
            run.seen += len(y)
            if self.dynamics is not None:
                self.dynamics.update(epoch, logits, y, idx)
            if self.pruning is not None:
                self.pruning.update(idx, per_sample)


@dataclass
class _Progress:
    """Where training stands: the epoch and the step within it, what the epoch has summed so far,
    and the rows of the finished epochs."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    rows: list = field(default_factory=list)
    epoch_indices: torch.Tensor | None = None  # set while an epoch is under way
    stream_states: tuple | None = None  # the order and augmentation streams at the start of the epoch
    sums: dict = field(default_factory=dict)
    correct: torch.Tensor | int = 0
    seen: int = 0
    lr: float = float("nan")
    test_predictions: torch.Tensor | None = None  # of the last evaluated epoch
    elapsed: float = 0.0
    epoch_seconds: float = 0.0

    def start_epoch(self, epoch: int, epoch_indices: torch.Tensor, stream_states: tuple, device: torch.device) -> None:
        self.epoch, self.step, self.epoch_indices, self.stream_states = epoch, 0, epoch_indices, stream_states
        self.sums, self.correct, self.seen, self.epoch_seconds = {}, torch.zeros((), dtype=torch.long, device=device), 0, 0.0

    def finish_epoch(self, row: dict) -> None:
        self.rows.append(row)
        self.epoch_indices = None

    def state(self, elapsed: float) -> dict:
        return {**vars(self), "elapsed": elapsed, "correct": torch.as_tensor(self.correct).cpu(),
                "sums": {k: torch.as_tensor(v).cpu() for k, v in self.sums.items()}}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> "_Progress":
        return cls(**{**state, "correct": state["correct"].to(device),
                      "sums": {k: v.to(device) for k, v in state["sums"].items()}})


def _epoch_row(run: _Progress, epoch: int, epoch_start: float, device: torch.device) -> dict:
    """The epoch's metrics, summed over ranks: one host sync per epoch."""
    totals = sum_across_ranks(torch.stack([
        torch.as_tensor(float(run.seen), device=device), run.correct.float(),
        *[torch.as_tensor(v, device=device).float() for v in run.sums.values()],
    ]))
    n, correct, term_sums = float(totals[0]), float(totals[1]), dict(zip(run.sums, totals[2:].tolist()))
    seconds = time.perf_counter() - epoch_start  # after the sync above: the GPU's work included
    return {
        "epoch": epoch + 1,
        "lr": run.lr,
        "steps": run.step,
        "sample_steps": int(n),
        "train_loss": sum(term_sums.values()) / n,
        **{f"train_{name}": value / n for name, value in term_sums.items()},
        "train_acc": correct / n,
        "test_acc": float("nan"),
        "test_loss": float("nan"),
        "val_acc": float("nan"),  # on the held-out training samples (data.validation_fraction)
        "val_loss": float("nan"),
        "seconds": seconds,
        "images_per_second": n / seconds,
    }


class _BestModel:
    """The weights of the evaluated epoch with the highest validation accuracy so far (the first of
    equals), kept on the model's device and saved with the rest of a run's state."""

    def __init__(self, model: nn.Module):
        self.val_acc = -1.0
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.predictions: torch.Tensor | None = None  # its test-set predictions

    def update(self, val_acc: float, model: nn.Module, predictions: torch.Tensor) -> None:
        if val_acc > self.val_acc:
            self.val_acc, self.predictions = val_acc, predictions
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"val_acc": self.val_acc, "weights": self.weights, "predictions": self.predictions}

    def load_state_dict(self, state: dict) -> None:
        self.val_acc, self.weights, self.predictions = state["val_acc"], state["weights"], state.get("predictions")


def _stop_requested(stop: StopSignal, group: Ranks, device: torch.device, step: int) -> bool:
    """A signal stops every rank at the same step: under torchrun the ranks agree every 16th step
    (an all-reduce and a host sync, so not at every step)."""
    if not group.enabled:
        return stop.requested
    return step % 16 == 0 and bool(sum_across_ranks(torch.tensor(float(stop.requested), device=device)) > 0)
