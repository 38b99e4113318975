"""Keep the k lowest scores (the easiest samples), which Sorscher et al. (2022) find better than
hardest when very little data is kept."""
from pipeline.selectors import NO_PARAMS, SELECTORS, order_by_score


@SELECTORS.register("easiest")
def easiest(scores, indices, k, rng, params=NO_PARAMS):
    return order_by_score(scores, indices, descending=False)[:k]
