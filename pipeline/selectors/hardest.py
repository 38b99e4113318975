"""Keep the k highest scores (the hardest samples): the usual rule for forgetting, GraNd and EL2N
at moderate keep fractions (Paul et al. 2021; Toneva et al. 2019)."""
from pipeline.selectors import NO_PARAMS, SELECTORS, order_by_score


@SELECTORS.register("hardest")
def hardest(scores, indices, k, rng, params=NO_PARAMS):
    return order_by_score(scores, indices, descending=True)[:k]
