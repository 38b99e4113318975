"""The one training loop, shared by teachers, proxy models and students.

SGD with (Nesterov) momentum and a one-cycle learning rate schedule over a fixed number of epochs
over the given indices (so the cost of a student scales with its keep fraction). Metrics
accumulate on the device and are read once per epoch: the step itself never waits on the host.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.data import Dataset, Split
from pipeline.errors import UserError
from pipeline.infobatch import InfoBatch, InfoBatchConfig
from pipeline.losses import DistillLoss
from pipeline.features import LayerOutputs
from pipeline.seeding import seeded_init, torch_generator


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


def planned_epochs(cfg: TrainConfig, num_indices: int) -> int:
    """Passes over ``num_indices`` samples that the budget needs (the last may be partial)."""
    if cfg.steps is None:
        return cfg.epochs
    return math.ceil(cfg.steps / math.ceil(num_indices / cfg.batch_size))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA device is visible; use 'auto' or 'cpu'")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; allowed: auto, cpu, cuda")
    return torch.device(name)


class Dynamics:
    """Correctness and margin z_y - max_{k != y} z_k of every sample at every presentation,
    taken from the training forward pass itself (augmented view, train mode), as forgetting
    (Toneva et al. 2019) and AUM (Pleiss et al. 2020) define them."""

    def __init__(self, num_samples: int, epochs: int, device: torch.device):
        self.correct = torch.zeros(epochs, num_samples, dtype=torch.bool, device=device)
        self.margin = torch.full((epochs, num_samples), float("nan"), device=device)
        self.seen = torch.zeros(epochs, num_samples, dtype=torch.bool, device=device)

    @torch.no_grad()
    def update(self, epoch: int, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
        self.correct[epoch, indices] = logits.argmax(1) == labels
        self.margin[epoch, indices] = margins(logits.float(), labels)
        self.seen[epoch, indices] = True

    def to_frame(self) -> pd.DataFrame:
        epoch, index = torch.nonzero(self.seen.cpu(), as_tuple=True)
        return pd.DataFrame(
            {
                "sample_index": index.numpy(),
                "epoch": epoch.numpy().astype("int32") + 1,  # 1-based, as in the per-epoch metrics
                "correct": self.correct.cpu()[epoch, index].numpy(),
                "margin": self.margin.cpu()[epoch, index].numpy(),
            }
        )


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y - max_{k != y} z_k per row."""
    target = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return target - others.max(1).values


def one_cycle_lr(progress: float, peak: float) -> float:
    """One-cycle learning rate at ``progress`` in [0, 1] of training: cosine warm-up from peak/25
    over the first 25 %, then cosine annealing to peak/25e4 (the shape of torch's OneCycleLR, as
    a function of progress so that epochs of varying length, as with InfoBatch, keep the schedule)."""
    start, end, warmup = peak / 25, peak / 25e4, 0.25
    if progress < warmup:
        low, high, t = start, peak, progress / warmup
    else:
        low, high, t = peak, end, (progress - warmup) / (1 - warmup)
    return high + (low - high) * (1 + math.cos(math.pi * min(t, 1.0))) / 2


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
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Train ``model`` on ``data.train[indices]``; return one row of metrics per epoch.

    The loss gives per-sample terms; the step minimises their (weighted) batch mean. Parameters the
    loss learns (VID's regressors) are trained with the model, initialised from ``seed``. With
    ``infobatch`` each epoch trains on InfoBatch's share of ``indices`` (``sample_steps`` per row
    counts the samples actually trained on). ``after_step`` runs after every optimizer step (the
    pruning masks use it to keep pruned weights at zero)."""
    if loss.needs_teacher and teacher is None:
        raise UserError(f"loss {type(loss).__name__} needs a teacher")
    if infobatch is not None and cfg.steps is not None:
        raise UserError("infobatch prunes passes over the data; use an epochs budget (train.steps: null) with it")
    epochs = planned_epochs(cfg, len(indices))
    # channels_last: about 2x faster convolutions on CPU (oneDNN) and the layout tensor cores want.
    model.to(device, memory_format=torch.channels_last)
    if teacher is not None:
        teacher.to(device, memory_format=torch.channels_last).eval()
    example, _, _ = next(data.train.batches(indices[:2], 2, device=device))
    with seeded_init(seed, "loss"):
        loss.prepare(model, teacher, example.contiguous(memory_format=torch.channels_last))
    loss.to(device)
    optimizer = torch.optim.SGD(
        [*model.parameters(), *loss.parameters()],
        lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov,
    )
    student_layers = LayerOutputs(model, loss.student_layers)
    teacher_layers = LayerOutputs(teacher, loss.teacher_layers)
    order, augment_rng = torch_generator(seed, "order"), torch_generator(seed, "augment")
    prune_rng = torch_generator(seed, "infobatch")
    pruning = InfoBatch(infobatch, len(data.train), epochs, device) if infobatch else None
    augment = data.augment if cfg.augment else None
    rows, start, global_step = [], time.perf_counter(), 0
    with student_layers, teacher_layers:  # the hooks come off however training ends
        for epoch in range(epochs):
            model.train()
            loss.start_epoch(epoch, epochs)
            epoch_start = time.perf_counter()
            epoch_indices = pruning.plan(epoch, indices, prune_rng) if pruning else indices
            steps = math.ceil(len(epoch_indices) / cfg.batch_size)
            sums: dict[str, torch.Tensor] = {}
            correct = torch.zeros((), device=device)
            seen = epoch_steps = 0
            for step, (x, y, idx) in enumerate(data.train.batches(
                epoch_indices, cfg.batch_size, device=device, order=order, augment=augment, augment_rng=augment_rng
            )):
                if cfg.steps is not None and global_step == cfg.steps:
                    break
                progress = global_step / cfg.steps if cfg.steps else (epoch + step / steps) / epochs
                lr = one_cycle_lr(progress, cfg.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = x.contiguous(memory_format=torch.channels_last)
                logits = model(x)
                teacher_logits = None
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(x)
                terms = loss(logits, y, teacher_logits, student_layers.outputs, teacher_layers.outputs)
                per_sample = sum(terms.values())
                weighted = per_sample * pruning.weight[idx] if pruning else per_sample
                optimizer.zero_grad(set_to_none=True)
                weighted.mean().backward()
                optimizer.step()
                if after_step is not None:
                    after_step()
                global_step += 1
                epoch_steps += 1
                seen += len(y)
                with torch.no_grad():
                    for name, value in terms.items():
                        sums[name] = sums.get(name, 0) + value.detach().sum()
                    correct += (logits.argmax(1) == y).sum()
                    if dynamics is not None:
                        dynamics.update(epoch, logits, y, idx)
                    if pruning is not None:
                        pruning.update(idx, per_sample)
            seconds = time.perf_counter() - epoch_start
            n = seen
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                "steps": epoch_steps,
                "sample_steps": n,
                "train_loss": float(sum(sums.values())) / n,
                **{f"train_{name}": float(value) / n for name, value in sums.items()},
                "train_acc": float(correct) / n,
                "test_acc": float("nan"),
                "test_loss": float("nan"),
                "seconds": seconds,
                "images_per_second": n / seconds,
            }
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs:
                row["test_acc"], row["test_loss"] = evaluate(model, data.test, cfg.batch_size * 4, device)
            rows.append(row)
            elapsed = time.perf_counter() - start
            log(
                f"epoch {epoch + 1}/{epochs} loss {row['train_loss']:.4f} train_acc {row['train_acc']:.4f} "
                f"test_acc {row['test_acc']:.4f} {row['images_per_second']:.0f} img/s "
                f"elapsed {elapsed:.0f}s left {elapsed / (epoch + 1) * (epochs - epoch - 1):.0f}s"
            )
    return pd.DataFrame(rows)


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, device: torch.device) -> torch.Tensor:
    """Logits of every sample of ``split`` in canonical order, un-augmented, in eval mode (CPU)."""
    model.to(device, memory_format=torch.channels_last).eval()
    indices = torch.arange(len(split))
    outputs = [
        model(x.contiguous(memory_format=torch.channels_last)).float()
        for x, _, _ in split.batches(indices, batch_size, device=device)
    ]
    return torch.cat(outputs).cpu()


def evaluate(model: nn.Module, split: Split, batch_size: int, device: torch.device) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on ``split``."""
    logits = predict(model, split, batch_size, device)
    return (
        float((logits.argmax(1) == split.labels).float().mean()),
        float(F.cross_entropy(logits, split.labels)),
    )
