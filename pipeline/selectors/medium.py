"""Keep the k samples of medium difficulty: MDSLR (Chen et al., ICLR 2025), the window of k samples
around the median score of the group.

With the group sorted ascending by score (equal scores ordered as ``ties`` says, ``order_by_score``),
n samples and m = floor(n / 2), METHODS.md keeps the positions

    [m - (k - floor(k / 2)), m + floor(k / 2)),

a window of exactly k positions. Its end m + floor(k / 2) <= 2 * floor(n / 2) <= n is always in
range, and its start m - ceil(k / 2) is >= 0 for every k < n and for k = n with n even; only for
k = n with n odd (n = 2j + 1: start = j - (j + 1) = -1) does it begin one position before the
group. Documented deviation: the window is then shifted into [0, n) keeping its size k, i.e. the
whole group is kept (the only window of size n there is). ``ties_at_cutoff`` counts the tied
samples split at either end of the window.
"""
from pipeline.selectors import ORDER_PARAMS, SELECTORS, OrderParams, keep_window


def median_window(n: int, k: int) -> tuple[int, int]:
    """Positions ``[start, stop)`` in the ascending order of a group of ``n`` that MDSLR keeps,
    clamped into ``[0, n)`` (see the module docstring)."""
    start = n // 2 - (k - k // 2)
    start = min(max(start, 0), n - k)
    return start, start + k


@SELECTORS.register("medium", OrderParams)
def medium(scores, indices, k, rng, params: OrderParams = ORDER_PARAMS):
    start, stop = median_window(len(indices), k)
    return keep_window(scores, indices, False, start, stop, params, rng)
