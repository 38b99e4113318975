"""The speed benchmark: ``python -m pipeline.bench [--device cuda] [--out bench.parquet]``.

Measures, in one run on the device it is given, the project's own training loop
(``pipeline.train.fit``) and forward pass, and writes one row per measurement to a Parquet table
and a printed summary:

1. training images/s of ``fit`` against a stock loop (torchvision transforms and a DataLoader with
   worker processes feeding the same model, same step code) on the same data;
2. a KD step against a labels-only step, with the teacher online and with its outputs cached
   (``pipeline.teacher_outputs.CachedViews``: 2 views, computed once; the time to compute them is recorded);
3. wall time of training on a subset against the full set, for f in {0.1, 0.3, 0.5, 1.0};
4. forward-only scoring images/s (``pipeline.inference.predict``);
5. on CUDA, the achieved training FLOP/s (3 x forward FLOPs per image, ``pipeline.flops``) and
   its share of the GPU's dense bf16 peak.

The data are CIFAR-shaped random images unless ``--dataset`` names a real one (speed does not
depend on the pixels). Every rate is measured on a second epoch, after a warm-up epoch.
"""
from __future__ import annotations

import argparse
import os
import time

import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.cli import stage
from pipeline.data import load_dataset
from pipeline.data.splits import Augment, Dataset, TensorSplit
from pipeline.devices import resolve_device
from pipeline.flops import count_forward_flops
from pipeline.inference import predict
from pipeline.io import code_version, write_table
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.seeding import seeded_init
from pipeline.teacher_outputs import NoTeacher, OnlineTeacher, TeacherOutputs, compute_cached_views
from pipeline.train import TrainConfig, fit

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by device-name substring.
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "V100": 125e12}
KEEP_FRACTIONS = [0.1, 0.3, 0.5, 1.0]


def synthetic(samples: int, classes: int = 10, channels: int = 3, size: int = 32) -> Dataset:
    g = torch.Generator().manual_seed(0)
    split = lambda n: TensorSplit(  # noqa: E731
        torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8),
        torch.randint(0, classes, (n,), generator=g), (0.5,) * channels, (0.25,) * channels)
    return Dataset("synthetic", split(samples), split(max(samples // 5, 1)), classes, channels,
                   Augment(crop_padding=4, flip=True))


def train_rate(model_name, data, indices, batch_size, device, loss="ce", teacher: TeacherOutputs = NoTeacher(),
               epochs=2) -> tuple[float, float]:
    """Images/s of the last epoch of ``fit``, and the whole call's wall time."""
    with seeded_init(0, "init"):
        model = build_model(model_name, data.num_classes, data.in_channels)
    start = time.perf_counter()
    history = fit(model, data, indices, TrainConfig(epochs=epochs, batch_size=batch_size, eval_every=10**6), seed=0,
                  device=device, loss=build_loss(loss, **({"alpha": 0.9, "temperature": 4.0} if loss == "kd" else {})),
                  teacher=teacher, log=lambda line: None)
    return float(history["images_per_second"].iloc[-1]), time.perf_counter() - start


class _Images(torch.utils.data.Dataset):
    """The split as a map-style dataset of uint8 tensors for torchvision transforms."""

    def __init__(self, split: TensorSplit, transform):
        self.split, self.transform = split, transform

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        return self.transform(self.split.images[i]), self.split.labels[i]


def stock_loop_rate(model_name, data, batch_size, device, workers) -> float:
    """Images/s of the usual loop: torchvision transforms per sample in DataLoader workers,
    pinned host memory, batches copied to the device; same model, optimizer and autocast as fit."""
    import torchvision.transforms.v2 as T

    split = data.train
    transform = T.Compose([T.RandomCrop(split.images.shape[-1], padding=data.augment.crop_padding),
                           T.RandomHorizontalFlip(), T.ToDtype(torch.float32, scale=True),
                           T.Normalize(split.mean, split.std)])
    loader = torch.utils.data.DataLoader(_Images(split, transform), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0, drop_last=False)
    with seeded_init(0, "init"):
        model = build_model(model_name, data.num_classes, data.in_channels)
    model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                fused=device.type == "cuda" or None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    rate = 0.0
    for _ in range(2):  # warm-up epoch, then the measured one
        _sync(device)
        start, seen = time.perf_counter(), 0
        for x, y in loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
        _sync(device)
        rate = seen / (time.perf_counter() - start)
    return rate


def scoring_rate(model_name, data, batch_size, device) -> float:
    with seeded_init(0, "init"):
        model = build_model(model_name, data.num_classes, data.in_channels)
    predict(model, data.train, batch_size, device)  # warm-up
    start = time.perf_counter()
    predict(model, data.train, batch_size, device)  # returns on the host: synchronised
    return len(data.train) / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def run(args) -> pd.DataFrame:
    device = resolve_device(args.device)
    torch.manual_seed(0)
    data = (load_dataset(args.dataset, args.root, train_limit=args.samples) if args.dataset != "synthetic"
            else synthetic(args.samples))
    everything = torch.arange(len(data.train))
    rows = []

    def record(measure, value, unit, **details):
        rows.append({"measure": measure, "value": float(value), "unit": unit, **details})
        print(f"{measure:<32} {value:>14,.2f} {unit}  {details or ''}")

    ours, _ = train_rate(args.model, data, everything, args.batch_size, device)
    stock = stock_loop_rate(args.model, data, args.batch_size, device, args.workers)
    record("train_images_per_second", ours, "images/s", model=args.model, loop="fit")
    record("stock_loader_images_per_second", stock, "images/s", model=args.model, loop=f"DataLoader, {args.workers} workers")
    record("train_speedup_over_stock_loader", ours / stock, "x", model=args.model)

    with seeded_init(1, "init"):
        teacher = build_model(args.teacher, data.num_classes, data.in_channels)
    labels, _ = train_rate(args.student, data, everything, args.batch_size, device)
    online, _ = train_rate(args.student, data, everything, args.batch_size, device, loss="kd", teacher=OnlineTeacher(teacher))
    record("labels_only_images_per_second", labels, "images/s", model=args.student)
    record("kd_online_images_per_second", online, "images/s", model=args.student, teacher=args.teacher)
    record("kd_online_step_cost_over_labels_only", labels / online, "x", model=args.student, teacher=args.teacher)
    start = time.perf_counter()
    views = compute_cached_views(teacher, data, 2, args.teacher, args.score_batch_size, device)
    record("teacher_views_seconds", time.perf_counter() - start, "s", teacher=args.teacher, views=2)
    cached, _ = train_rate(args.student, data, everything, args.batch_size, device, loss="kd", teacher=views)
    record("kd_cached_images_per_second", cached, "images/s", model=args.student, teacher=args.teacher)
    record("kd_cached_speedup_over_online", cached / online, "x", model=args.student, teacher=args.teacher)

    full_seconds = None
    for f in sorted(KEEP_FRACTIONS, reverse=True):
        subset = everything[torch.randperm(len(everything), generator=torch.Generator().manual_seed(0))[: round(f * len(everything))]]
        _, seconds = train_rate(args.model, data, subset, args.batch_size, device, epochs=1)
        full_seconds = full_seconds or seconds
        record("subset_train_seconds", seconds, "s", model=args.model, keep_fraction=f)
        record("subset_time_share_of_full", seconds / full_seconds, "share", model=args.model, keep_fraction=f)

    record("scoring_images_per_second", scoring_rate(args.model, data, args.score_batch_size, device), "images/s", model=args.model)

    flops = 3 * count_forward_flops(build_model(args.model, data.num_classes, data.in_channels), data.in_channels,
                                    data.train.images.shape[-1]) * ours
    record("train_flops_per_second", flops, "FLOP/s", model=args.model)
    peak = bf16_peak(device)
    if peak:
        record("train_share_of_bf16_peak", flops / peak, "share", model=args.model)

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return pd.DataFrame(rows).assign(device=device_name, torch=torch.__version__, dataset=data.name,
                                     samples=len(data.train), batch_size=args.batch_size)


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--dataset", default="synthetic", help="synthetic (CIFAR-shaped random images) or a dataset name")
    p.add_argument("--root", default=None)
    p.add_argument("--samples", type=int, default=50_000, help="training samples")
    p.add_argument("--model", default="resnet20", help="model of the loader, subset, scoring and FLOP measures")
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--score-batch-size", type=int, default=2048)
    p.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1), help="DataLoader workers of the stock loop")
    p.add_argument("--out", default="bench.parquet")
    args = p.parse_args(argv)
    table = run(args)
    write_table(table, args.out, {"stage": "bench", "args": vars(args), "code_version": code_version()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
