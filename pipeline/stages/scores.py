"""Stage 2: score every training sample with one scorer (higher = harder).

Writes ``sample_index, label, score, scorer`` in canonical order (the scorer's name as a column
too, so that the ``scores/`` folder reads as one table), with the scorer's parameters and seed and
the dataset fingerprint in the file's metadata.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.cli import data_meta, parser, setup, stage
from pipeline.errors import UserError
from pipeline.io import stable_hash, write_table
from pipeline.scorers import Scorer, ScoringContext, build_scorer


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--teacher", default=None, help="the reference teacher's checkpoint")
    p.add_argument("--dynamics", default=None, help="the reference teacher's training dynamics")
    p.add_argument("--teacher-logits", default=None, help="the reference teacher's training-set logits")
    p.add_argument("--proxies", nargs="*", default=[], help="the shared proxy models' checkpoints")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    scorer = build_scorer(spec["scorer"], spec["params"])
    ctx = ScoringContext(data, spec["seed"], device, spec["batch_size"],
                         teacher_path=_path(args.teacher), dynamics_path=_path(args.dynamics),
                         teacher_logits_path=_path(args.teacher_logits), proxy_paths=[Path(p) for p in args.proxies])
    scores, batch_size = score_at_largest_batch(scorer, ctx)
    if scores.shape != (len(data.train),):
        raise UserError(f"scorer {scorer.name!r} returned shape {scores.shape}, expected ({len(data.train)},)")
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise UserError(f"scorer {scorer.name!r} gave {len(bad)} NaN or infinite scores, first at sample indices {bad[:5].tolist()}")
    table = pd.DataFrame({"sample_index": np.arange(len(scores)), "label": data.train.labels.numpy(), "score": scores,
                          "scorer": scorer.name})
    write_table(table, args.output, {
        "stage": "scores", "scorer": scorer.name, "params": scorer.params_dict(), "seed": spec["seed"],
        "spec": spec, "config_hash": stable_hash(spec), "scores_hash": scores_hash(table), "device": str(device),
        "batch_size_used": batch_size,
        **data_meta(data),
    })


def score_at_largest_batch(scorer: Scorer, ctx: ScoringContext) -> tuple[np.ndarray, int]:
    """The scores, at the largest batch that fits: ``scoring.batch_size``, halved after each CUDA
    out-of-memory error (scores do not depend on the batch: models score in eval mode)."""
    while True:
        try:
            return np.asarray(scorer.score(ctx), dtype=np.float64), ctx.batch_size
        except torch.cuda.OutOfMemoryError:
            if ctx.batch_size == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"batch {ctx.batch_size} does not fit in GPU memory; scoring again at {ctx.batch_size // 2}")
            ctx = dataclasses.replace(ctx, batch_size=ctx.batch_size // 2)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def scores_hash(table: pd.DataFrame) -> str:
    """Content hash of a score table, which every subset drawn from it records."""
    data = table["sample_index"].to_numpy(np.int64).tobytes() + table["score"].to_numpy(np.float64).tobytes()
    return hashlib.sha256(data).hexdigest()[:12]


if __name__ == "__main__":
    main()
