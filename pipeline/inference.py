"""Running a trained model over a split, un-augmented, in eval mode: logits (and, where asked, the
penultimate features) of every sample in canonical order. Used by the training loop's evaluation (and the
students' per-class accuracy),
the stages that write a teacher's outputs, and the scorers; it sits below all of them.

In fp32 (TF32 convolutions on GPUs) rather than bf16: scores rank these logits, and bf16's 3
significant digits would tie many of them. Every forward pass here, and the online teacher's, runs
on ``for_inference``'s copy of the model, its BatchNorms folded into the convolutions before them.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.experimental.optimization import fuse

from pipeline.data import Split
from pipeline.data.splits import Views
from pipeline.features import penultimate_features
from pipeline.progress import progress_bar


def for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` (moved to ``device``, channels_last and eval mode, in place) as a copy whose
    BatchNorms that follow a convolution are folded into its weights: the same function up to float
    rounding, without the BatchNorm's separate pass over every activation (1.7x the images per
    second of the default teacher on one CPU thread). A model torch.fx cannot trace (a forward that
    branches on a tensor's shape, as VGG's) is returned itself, unfolded: folding only saves time."""
    # The move happens outside inference mode: parameters converted inside it would become
    # inference tensors, and a model evaluated before training (a teacher about to be pruned)
    # could not train.
    model.to(device, memory_format=torch.channels_last).eval()
    try:
        # A copy: the model itself keeps its BatchNorms and can train on.
        traced = torch.fx.symbolic_trace(copy.deepcopy(model))
    except Exception:  # whatever stops the tracer (control flow, len() of an input, ...): run it as it is
        return model
    return fuse(traced, inplace=True, no_trace=True).to(memory_format=torch.channels_last)


def _logits(model: nn.Module, split: Split, batch_size: int, device: torch.device,
            views: Views | None = None, augment=None, indices: torch.Tensor | None = None) -> torch.Tensor:
    """The logits (CPU float32) of ``model``, a ``for_inference`` copy, on ``split`` (or its ``indices``)."""
    indices = torch.arange(len(split)) if indices is None else indices
    batches = split.batches(indices, batch_size, device=device, augment=augment, views=views)
    with torch.inference_mode():
        return torch.cat([model(x.contiguous(memory_format=torch.channels_last)).float().cpu()
                          for x, _, _ in progress_bar(batches, -(-len(indices) // batch_size),
                                                      f"predicting {len(indices)} samples")])


def predict(model: nn.Module, split: Split, batch_size: int, device: torch.device,
            views: Views | None = None, augment=None) -> torch.Tensor:
    """Logits of every sample of ``split`` in canonical order, eval mode (CPU float32). With
    ``views`` (and the split's ``augment``), on those fixed augmented views instead of the clean images."""
    return _logits(for_inference(model, device), split, batch_size, device, views, augment)


def predict_with_features(model: nn.Module, split: Split, batch_size: int,
                          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and penultimate features h (the input of ``model.classifier``) of every sample of
    ``split``, as ``predict`` (CPU float32)."""
    folded = for_inference(model, device)  # (a traced copy: errors below name the model's own class)
    with penultimate_features(folded) as features:
        logits = _logits(folded, split, batch_size, device)
    if len(features) != len(logits):  # the classifier ran more than once per forward
        raise RuntimeError(f"{type(model).__name__}.classifier saw {len(features)} rows for {len(logits)} samples")
    return logits, features.cat()


class Evaluation(NamedTuple):
    accuracy: float
    loss: float  # mean cross-entropy
    predictions: torch.Tensor  # each sample's predicted class (CPU int64), for per-class accuracy


def evaluate(model: nn.Module, split: Split, batch_size: int, device: torch.device,
             indices: torch.Tensor | None = None) -> Evaluation:
    """Accuracy, mean cross-entropy and predictions on ``split`` (or on its samples ``indices``)."""
    logits = _logits(for_inference(model, device), split, batch_size, device, indices=indices)
    labels = split.labels if indices is None else split.labels[indices]
    predictions = logits.argmax(1)
    return Evaluation(float((predictions == labels).float().mean()), float(F.cross_entropy(logits, labels)), predictions)


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> pd.DataFrame:
    """Accuracy of ``predictions`` (an ``Evaluation``'s) on the samples of each class: one row per
    class (``label``, ``samples``, ``accuracy``; NaN for a class without samples)."""
    samples = torch.bincount(labels, minlength=num_classes)
    correct = torch.bincount(labels[predictions == labels], minlength=num_classes)
    return pd.DataFrame({"label": range(num_classes), "samples": samples.numpy(),
                         "accuracy": (correct.double() / samples.double()).numpy()})
