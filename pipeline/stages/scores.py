"""Stage 2: score every training sample with one scorer (higher = harder).

Loads exactly what the scorer's ``needs`` names (the reference teacher, its training-set logits,
training dynamics or embeddings, the proxy models), each checked to be made from this run's data, and hands
them to the scorer in a ``ScoringContext``: only stages read and write files. Writes
``sample_index, label, score, scorer`` of every sample not held out for validation, in canonical
order (the scorer's name as a column too, so that the ``scores/`` folder reads as one table), with
the scorer's parameters and seed and the dataset fingerprint in the file's metadata.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.checkpoints import load_model, load_train_logits
from pipeline.cli import data_meta, parser, setup, stage
from pipeline.errors import UserError
from pipeline.io import read_table, scores_hash, stable_hash, write_table
from pipeline.scorers import Scorer, ScoringContext, build_scorer
from pipeline.stages.embeddings import load_embeddings

# The one-line error for each thing a scorer needs and the job was not given.
MISSING = {
    "teacher": "this scorer needs a trained teacher, but none was given",
    "teacher_logits": "this scorer needs the teacher's training-set logits, but none were given",
    "dynamics": "this scorer needs the teacher's training dynamics, but none were given",
    "embeddings": "this scorer needs the teacher's embeddings of the training set, but none were given",
    "proxies": "this scorer needs the proxy models, but none were given",
}


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--teacher", default=None, help="the reference teacher's checkpoint")
    p.add_argument("--dynamics", default=None, help="the reference teacher's training dynamics")
    p.add_argument("--teacher-logits", default=None, help="the reference teacher's training-set logits")
    p.add_argument("--embeddings", default=None, help="the reference teacher's embeddings of the training set")
    p.add_argument("--proxies", nargs="*", default=[], help="the shared proxy models' checkpoints")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    scorer = build_scorer(spec["scorer"], spec["params"])
    given = {"teacher": args.teacher, "teacher_logits": args.teacher_logits, "dynamics": args.dynamics,
             "embeddings": args.embeddings, "proxies": args.proxies}
    ctx = ScoringContext(data, spec["seed"], device, spec["batch_size"], **load_needs(scorer.needs, given, data.fingerprint))
    scores, batch_size = score_at_largest_batch(scorer, ctx)
    if scores.shape != (len(data.train),):
        raise UserError(f"scorer {scorer.name!r} returned shape {scores.shape}, expected ({len(data.train)},)")
    scored = data.train_indices.numpy()  # held-out validation samples are never scored
    bad = scored[~np.isfinite(scores[scored])]
    if len(bad):
        raise UserError(f"scorer {scorer.name!r} gave {len(bad)} NaN or infinite scores, first at sample indices {bad[:5].tolist()}")
    table = pd.DataFrame({"sample_index": scored, "label": data.train.labels.numpy()[scored], "score": scores[scored],
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


def load_needs(needs, given: dict, fingerprint: str) -> dict:
    """What ``needs`` names, loaded from the files ``given`` (a path, or a list of paths for
    ``proxies``), as keyword arguments of ``ScoringContext``. A needed file that was not given is
    one line (``MISSING``); a file made from other data than ``fingerprint`` is refused."""
    loaded = {}
    for need in sorted(needs):
        source = given.get(need)
        if not source:
            raise UserError(MISSING[need])
        loaded[need] = LOADERS[need](source, fingerprint)
    return loaded


def read_dynamics(path: str | Path, fingerprint: str) -> pd.DataFrame:
    """The columns every such table has; the ones added later are checked by the scorers that read
    them (``pipeline.dynamics.per_epoch``), whose errors name the file (``attrs["path"]``)."""
    frame = read_table(path, "table of training dynamics", ("sample_index", "epoch", "correct", "margin"), fingerprint)[0]
    frame.attrs["path"] = str(path)
    return frame


# Each need's reader: every one refuses, in one line, a file of another kind or made from other data.
LOADERS = {
    "teacher": lambda path, fingerprint: load_model(path, fingerprint, teacher=True)[0],
    "teacher_logits": load_train_logits,
    "dynamics": read_dynamics,
    "embeddings": load_embeddings,
    "proxies": lambda paths, fingerprint: [load_model(path, fingerprint, teacher=True)[0] for path in paths],
}


if __name__ == "__main__":
    main()
