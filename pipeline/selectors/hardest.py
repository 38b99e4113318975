"""Keep the k highest scores (the hardest samples): the usual rule for forgetting, GraNd and EL2N
at moderate keep fractions (Paul et al. 2021; Toneva et al. 2019). Equal scores at the cut-off are
ordered as ``ties`` says (``OrderParams``)."""
from pipeline.selectors import ORDER_PARAMS, SELECTORS, OrderParams, keep_window


@SELECTORS.register("hardest", OrderParams)
def hardest(scores, indices, k, rng, params: OrderParams = ORDER_PARAMS):
    return keep_window(scores, indices, True, 0, k, params, rng)
