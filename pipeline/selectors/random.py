"""Keep k samples uniformly at random (ignoring the scores), from the seeded generator given. It has
no cut-off by score, so no ties at one (``ties_at_cutoff`` 0) and no ``ties`` parameter."""
import numpy as np

from pipeline.selectors import NO_PARAMS, SELECTORS, Picked


@SELECTORS.register("random")
def random(scores, indices, k, rng, params=NO_PARAMS):
    return Picked(np.sort(rng.choice(indices, size=k, replace=False)))


# its subset is a seeded random draw: redrawn per student seed with selection.random_draws: per_student_seed
random.draws_at_random = True
