"""Area under the margin (Pleiss et al. 2020): the mean over the teacher's training epochs of the
margin z_y - max_{k != y} z_k of the sample's logits at its presentation (recorded by
``pipeline.dynamics.Dynamics``), negated so that higher = harder: AUM = -(1/T) sum_t margin_t.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import UserError
from pipeline.scorers import SCORERS, Scorer


def aum(margins: np.ndarray) -> np.ndarray:
    """``margins``: (num_samples, num_epochs); the negated mean margin per sample (float64)."""
    return -np.asarray(margins, dtype=np.float64).mean(axis=1)


@SCORERS.register("aum")
class AUM(Scorer):
    needs = frozenset({"dynamics"})

    def score(self, ctx):
        frame = ctx.dynamics
        epochs = range(1, int(frame["epoch"].max()) + 1) if len(frame) else range(1, 2)
        margins = (
            frame.pivot(index="sample_index", columns="epoch", values="margin")
            .reindex(index=range(len(ctx.data.train)), columns=epochs)
            .to_numpy(dtype=np.float64)
        )
        scored = ctx.data.train_indices.numpy()  # the teacher never saw the held-out samples
        incomplete = scored[np.isnan(margins[scored]).any(axis=1)]
        if len(incomplete):
            shown = ", ".join(str(i) for i in incomplete[:10]) + (", ..." if len(incomplete) > 10 else "")
            raise UserError(
                f"aum needs every sample's margin at every epoch of the teacher's training, but the dynamics "
                f"are incomplete for {len(incomplete)} samples: {shown}"
            )
        return aum(margins)
