"""Keep the k lowest scores (the easiest samples), which Sorscher et al. (2022) find better than
hardest when very little data is kept. Equal scores at the cut-off are ordered as ``ties`` says
(``OrderParams``)."""
from pipeline.selectors import ORDER_PARAMS, SELECTORS, OrderParams, keep_window


@SELECTORS.register("easiest", OrderParams)
def easiest(scores, indices, k, rng, params: OrderParams = ORDER_PARAMS):
    return keep_window(scores, indices, False, 0, k, params, rng)
