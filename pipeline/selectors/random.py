"""Keep k samples uniformly at random (ignoring the scores), from the seeded generator given."""
import numpy as np

from pipeline.selectors import SELECTORS


@SELECTORS.register("random")
def random(scores, indices, k, rng):
    return np.sort(rng.choice(indices, size=k, replace=False))
