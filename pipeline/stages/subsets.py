"""Stage 3: select the kept subset for one (scorer, selector, keep fraction).

Reads a score table (refused, in one line, unless it is the job's scorer's on the job's data
config), writes the kept canonical indices with their labels and the subset's keys
(``scorer, selector, keep_fraction``, so that the ``subsets/`` folder reads as one table), and records the
selector, keep fraction, seed, the score table's content hash and the dataset fingerprint, so any
student can be traced to its data; also the selector's parameters as used (defaults filled in, e.g.
``ties``) and ``ties_at_cutoff``, the number of samples whose score equals that of a sample on the
other side of a cut-off (summed over the classes), i.e. whose membership the tie order decided.

A drawn subset (spec ``draw``: a student seed, with selection.random_draws: per_student_seed) is a
fresh random draw for that seed: the selection is seeded by it and, for a scorer whose scores are a
random draw (``random``), the scores are redrawn with it, exactly as that scorer scores with that
seed; ``draw`` is then a column and in the metadata.

A selector that picks by geometry (herding, kcenter, d2: ``needs_embeddings``) is given the scoring
teacher's embeddings (``--embeddings``; refused unless made from the scores' data) and computes
its distances on ``--device`` (the config's device, resolved where the job runs); the metadata's
``embeddings`` records their teacher, content hash and that device (None for other selectors).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import torch

from pipeline.cli import stage
from pipeline.devices import resolve_device
from pipeline.errors import UserError
from pipeline.io import REMAKE, read_table, require_same_data, scores_hash, stable_hash, write_table
from pipeline.params import params_dict
from pipeline.scorers import SCORERS
from pipeline.seeding import numpy_generator
from pipeline.selectors import second_scorer, select_subset
from pipeline.stages.embeddings import read_embeddings


@stage
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=json.loads)
    p.add_argument("--scores", required=True)
    p.add_argument("--cutoff-scores", default=None, help="the second scorer's score table (stratified's cutoff_scorer, dual_beta's mean_scorer)")
    p.add_argument("--embeddings", default=None, help="the scoring teacher's embeddings (herding, kcenter, d2)")
    p.add_argument("--device", default="cpu", help="where the selector computes distances between embeddings")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    spec = args.spec
    scores, meta = read_scores(args.scores, spec["scorer"], spec["data"])
    index = scores["sample_index"].to_numpy()
    if not (np.diff(index) > 0).all():  # every scored sample once, in canonical order (held-out ones left out)
        raise UserError(f"{args.scores} is not in canonical sample order")
    cutoff = None
    if args.cutoff_scores is not None:
        table, cutoff_meta = read_scores(args.cutoff_scores, second_scorer(spec["selector"], spec["params"]), spec["data"])
        require_same_data(args.cutoff_scores, cutoff_meta["dataset_fingerprint"], meta["dataset_fingerprint"])
        if not np.array_equal(table["sample_index"].to_numpy(), index):
            raise UserError(f"{args.cutoff_scores} scores other samples than {args.scores}")
        cutoff = table["score"].to_numpy()
    draw = spec.get("draw")
    values = scores["score"].to_numpy()
    scorer = SCORERS.get(spec["scorer"])
    if draw is not None and scorer.draws_at_random:
        values = scorer.redraw(index, draw)
    embeddings, embeddings_record = None, None
    if args.embeddings is not None:
        device = resolve_device(args.device)
        embeddings, record = scored_embeddings(args.embeddings, index, meta["dataset_fingerprint"], device)
        # which teacher's embeddings, by their content hash, and where the distances ran
        embeddings_record = {"teacher": record.get("teacher"), "content_hash": record.get("content_hash"),
                             "device": str(device)}
    rng = numpy_generator(spec["seed"], "select", spec["selector"])
    selection = select_subset(spec["selector"], values, scores["label"].to_numpy(),
                              spec["keep_fraction"], rng, spec["class_balanced"], spec.get("params"), cutoff, embeddings)
    kept = index[selection.kept]  # positions in the table -> canonical sample indices
    table = pd.DataFrame({"sample_index": kept, "label": scores["label"].to_numpy()[selection.kept], "scorer": spec["scorer"],
                          "selector": spec["selector"], "keep_fraction": float(spec["keep_fraction"]),
                          **({"draw": draw} if draw is not None else {})})
    print(f"kept {len(kept)} of {len(scores)} samples ({spec['selector']} by {spec['scorer']}, f = {spec['keep_fraction']}; "
          f"{selection.ties_at_cutoff} tied samples at the cut-off)")
    write_table(table, args.output, {
        "stage": "subsets", "scorer": spec["scorer"], "selector": spec["selector"],
        "keep_fraction": spec["keep_fraction"], "class_balanced": spec["class_balanced"], "seed": spec["seed"],
        "selector_params": spec.get("params", {}), "selector_params_used": params_dict(selection.params),
        "ties_at_cutoff": selection.ties_at_cutoff, "draw": draw, "embeddings": embeddings_record,
        "scores_hash": meta["scores_hash"], "spec": spec, "config_hash": stable_hash(spec),
        "dataset": meta["dataset"], "dataset_fingerprint": meta["dataset_fingerprint"],
    })


def scored_embeddings(path: str, index: np.ndarray, fingerprint: str,
                      device: torch.device) -> tuple[torch.Tensor, dict]:
    """The embeddings of the scored samples ``index`` (canonical), in the score table's order, on
    ``device``, and the file's record; refused in one line unless made from the data the scores
    were (``fingerprint``)."""
    embeddings, record = read_embeddings(path, fingerprint)
    if len(embeddings) <= index.max():
        raise UserError(f"{path} holds the embeddings of {len(embeddings)} samples, but sample {index.max()} was scored; "
                        f"{REMAKE}")
    return embeddings[torch.tensor(index)].to(device), record


def read_scores(path: str, scorer: str, data: dict) -> tuple[pd.DataFrame, dict]:
    """The score table at ``path``, refused in one line unless it is a score table, of ``scorer`` on
    the data config ``data`` (the job reads no data, so the config stands for its fingerprint), with
    the scores its record's ``scores_hash`` says."""
    scores, meta = read_table(path, "score table", ("sample_index", "label", "score"))
    require_scores_of(path, meta, scorer, data)
    if scores_hash(scores) != meta.get("scores_hash"):
        raise UserError(f"{path} was changed after it was written: its scores hash to {scores_hash(scores)}, its "
                        f"record says {meta.get('scores_hash')}; {REMAKE}")
    return scores, meta


def require_scores_of(path: str, meta: dict, scorer: str, data: dict) -> None:
    """The score table the job was given is its scorer's, on its data config: a table put in the
    wrong place stops the job in one line instead of selecting from other samples."""
    found = {"scorer": meta.get("scorer"), "data": (meta.get("spec") or {}).get("data")}
    for key, expected in (("scorer", scorer), ("data", data)):
        if found[key] != expected:
            raise UserError(f"{path} holds scores with {key} {found[key]!r}, not this job's {expected!r}; delete it "
                            f"(or run snakemake --forcerun scores) so that it is scored again")


if __name__ == "__main__":
    main()
