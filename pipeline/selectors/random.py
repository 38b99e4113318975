"""Keep k samples uniformly at random (ignoring the scores), from the seeded generator given."""
import numpy as np

from pipeline.selectors import NO_PARAMS, SELECTORS


@SELECTORS.register("random")
def random(scores, indices, k, rng, params=NO_PARAMS):
    return np.sort(rng.choice(indices, size=k, replace=False))
