"""Stage 1e: the scoring teacher's embeddings, written once per teacher and read by every scorer
(``moderate``) and selector (``herding``, ``kcenter``, ``d2``) that works in embedding space.

An embedding is the penultimate feature vector h, the input of the model's ``classifier``
(``pipeline.features``), of the un-augmented image in eval mode (``pipeline.inference
.predict_with_features``), for every training sample in canonical order (held-out ones included,
as the teacher's training-set logits: readers take the rows they score or select). Stored as
float16 (N x d; ImageNet's 1.28 M x 512 is 1.3 GB) with the dataset fingerprint, through
``save_torch`` (content hash); ``load_embeddings`` refuses, in one line, a file of another kind,
changed after it was written or made from other data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoints import load_model, load_torch, save_torch
from pipeline.cli import data_meta, parser, setup, stage
from pipeline.errors import UserError
from pipeline.inference import predict_with_features
from pipeline.io import REMAKE

KIND = "file of embeddings"


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--teacher", required=True, help="the scoring teacher's checkpoint")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    teacher, _ = load_model(args.teacher, data.fingerprint, teacher=True)
    _, features = predict_with_features(teacher, data.train, spec["batch_size"], device)
    meta = {"stage": "embeddings", "teacher": spec["teacher"], "spec": spec, "device": str(device), **data_meta(data)}
    save_embeddings(args.output, features, meta)
    print(f"embeddings of {features.shape[0]} samples, {features.shape[1]} features each (float16)")


def save_embeddings(path: str | Path, features: torch.Tensor, meta: dict[str, Any]) -> None:
    """``features`` (N x d) as float16 with ``meta`` (at least dataset_fingerprint). A feature beyond
    float16's range (65504) would be stored as infinity: refused instead."""
    embeddings = features.detach().cpu().to(torch.float16)
    if not torch.isfinite(embeddings).all():
        largest = float(features.abs().max())
        raise UserError(f"the teacher's penultimate features reach {largest:.3g}, beyond float16's range: "
                        f"{path} cannot hold them")
    save_torch(path, {"embeddings": embeddings, **meta})


def load_embeddings(path: str | Path, fingerprint: str) -> torch.Tensor:
    """The N x d float16 embeddings of ``path``, made from the data of ``fingerprint``."""
    return read_embeddings(path, fingerprint)[0]


def read_embeddings(path: str | Path, fingerprint: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """The embeddings of ``path`` and what the file records beside them (teacher, content hash, ...)."""
    state = load_torch(path, KIND, ("embeddings", "dataset_fingerprint"), fingerprint)
    embeddings = state.pop("embeddings")
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        raise UserError(f"{path} is not a {KIND}: its embeddings are not one row per sample (shape "
                        f"{tuple(getattr(embeddings, 'shape', ()))}); {REMAKE}")
    return embeddings, state


if __name__ == "__main__":
    main()
