"""InfoBatch's dynamic pruning: which samples an epoch drops and how the rest are weighted, the
reference's stop epoch, keep-share clamp and exact count (NUS-HPC-AI-Lab/InfoBatch)."""
from fractions import Fraction

import pytest
import torch

from pipeline.errors import UserError
from pipeline.infobatch import InfoBatch, InfoBatchConfig, keep_share, kept_count, pruned_epochs

CPU = torch.device("cpu")
# last losses after one epoch: mean 4.25 / 6 = 0.708, so samples 0, 1 and 4 are well learned
LOSSES = torch.tensor([0.1, 0.2, 0.9, 1.0, 0.05, 2.0])


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_infobatch_drops_only_well_learned_samples_and_reweights_the_rest():
    info = InfoBatch(InfoBatchConfig(ratio=0.5, delta=0.5), num_samples=6, epochs=4, device=CPU)
    indices = torch.arange(6)
    # first epoch: every last loss is 1, none is below the mean, nothing is dropped
    assert torch.equal(info.plan(0, indices, gen(0)), indices)
    info.update(indices, LOSSES)
    # samples 0, 1, 4 are well learned; each is dropped where rand < 0.5
    draws = torch.rand(6, generator=gen(3))
    dropped = {i for i in (0, 1, 4) if draws[i] < 0.5}
    kept = info.plan(1, indices, gen(3))
    assert set(kept.tolist()) == set(range(6)) - dropped
    for i in range(6):
        expected = 2.0 if i in {0, 1, 4} - dropped else 1.0  # 1 / (1 - 0.5) for kept well-learned
        assert info.weight[i].item() == expected
    # epochs from delta * epochs = 2 on use every sample with weight 1
    assert torch.equal(info.plan(2, indices, gen(3)), indices)
    assert torch.equal(info.weight, torch.ones(6))


# ------------------------------------------------------------------ stop epoch


@pytest.mark.parametrize("delta, epochs, pruned", [
    (0.875, 10, 8),  # 8.75: epochs 0..7 (the reference); `epoch < 8.75` pruned 0..8, nine
    (0.5, 4, 2),  # integer 2: epochs 0, 1 (both rules agree)
    (0.75, 4, 3),
    (0.875, 8, 7),
    (0.875, 200, 175),
    (0.875, 1, 0),  # 0.875: no epoch pruned
    (1, 10, 10), (1.0, 7, 7),
    (0, 10, 0), (0.0, 3, 0),
    (0.29, 100, 29),  # exact decimal: the reference's float product 28.999999999999996 gives 28
])
def test_pruned_epochs(delta, epochs, pruned):
    assert pruned_epochs(delta, epochs) == pruned


@pytest.mark.parametrize("delta, epochs", [(0.875, 10), (0.5, 4), (0.875, 200), (0.6, 7), (0.33, 10), (1.0, 5)])
def test_pruned_epochs_is_the_reference_sampler_rule(delta, epochs):
    # the reference's IBSampler: the constructor's reset() takes iterations 0, so epoch e is planned
    # with iterations = e + 1 and prunes while iterations <= num_epochs * delta
    reference = sum(1 for e in range(epochs) if e + 1 <= epochs * delta)
    assert pruned_epochs(delta, epochs) == reference


def test_delta_0875_of_10_epochs_prunes_epochs_0_to_7_and_resets_the_weights_after():
    info = InfoBatch(InfoBatchConfig(ratio=0.5, delta=0.875, exact=True), num_samples=6, epochs=10, device=CPU)
    indices = torch.arange(6)
    assert info.stop == 8
    info.update(indices, LOSSES)
    for epoch in range(8):  # every pruned epoch drops 3 - floor(0.5 * 3) = 2 of the well-learned 0, 1, 4
        kept = info.plan(epoch, indices, gen(epoch))
        assert len(kept) == 4 and {2, 3, 5} <= set(kept.tolist())
        assert sorted(info.weight.tolist()) == [1.0] * 5 + [2.0]
    # epoch 8 (the first of the last 10 - 8) trains on all with weight 1: the reference resets its
    # weights only when its counter equals 8.75 + 1, never, and would keep one sample at weight 2
    for epoch in (8, 9):
        assert torch.equal(info.plan(epoch, indices, gen(epoch)), indices)
        assert torch.equal(info.weight, torch.ones(6))


# ------------------------------------------------------------------ keep share and its clamp


def test_keep_share_is_clamped_at_a_tenth():
    assert keep_share(0.5) == Fraction(1, 2) and keep_share(0.3) == Fraction(7, 10) and keep_share(0) == 1
    assert keep_share(0.9) == Fraction(1, 10)  # exact: 1 - 0.9 is 1/10, not 0.09999999999999998
    assert keep_share(0.95) == Fraction(1, 10) and keep_share(0.999) == Fraction(1, 10)
    assert InfoBatchConfig(ratio=0.95).kept_weight == 10.0  # the reference's 1 / 0.1
    assert InfoBatchConfig(ratio=0.95).drop_probability == 0.9
    # up to 0.9, the weight and probability are those from before the clamp, to the bit
    for ratio in (0.0, 0.3, 0.5, 0.7, 0.9):
        assert InfoBatchConfig(ratio=ratio).kept_weight == 1.0 / (1.0 - ratio)
        assert InfoBatchConfig(ratio=ratio).drop_probability == ratio


def test_bernoulli_drop_probability_is_clamped_at_0_9():
    # samples 0..19 well learned (loss 0.1 against a mean of ~4.9), sample 20 not (loss 100)
    info = InfoBatch(InfoBatchConfig(ratio=0.95, delta=1.0), num_samples=21, epochs=2, device=CPU)
    indices = torch.arange(21)
    info.update(indices, torch.cat([torch.full((20,), 0.1), torch.tensor([100.0])]))
    draws = torch.rand(21, generator=gen(1))
    # a draw in [0.9, 0.95) is kept under the clamp and would be dropped without it
    between = [i for i in range(20) if 0.9 <= draws[i] < 0.95]
    assert between
    kept = info.plan(1, indices, gen(1))
    assert kept.tolist() == [i for i in range(20) if draws[i] >= 0.9] + [20]
    assert set(between) <= set(kept.tolist())
    assert all(info.weight[i].item() == (10.0 if i < 20 else 1.0) for i in kept.tolist())


# ------------------------------------------------------------------ exact count


def test_kept_count_floors_as_the_reference_int():
    assert kept_count(0.5, 3) == 1  # int(0.5 * 3) = int(1.5) = 1 (round() would give 2): drop 2
    assert kept_count(0.3, 5) == 3  # int(0.7 * 5) = int(3.5) = 3: drop 2
    assert kept_count(0.5, 4) == 2 and kept_count(0.5, 1) == 0 and kept_count(0.5, 0) == 0
    assert kept_count(0.95, 20) == 2  # keep share clamped at 0.1: drop 18, not 19
    assert kept_count(0.95, 9) == 0  # int(0.1 * 9) = 0: all 9 dropped
    assert kept_count(0.8, 10) == 2  # exact 0.2 * 10; the reference's floats int(1.9999999999999996) give 1
    assert kept_count(0, 7) == 7


@pytest.mark.parametrize("seed, perm, kept_one", [(0, [2, 0, 1], 4), (1, [1, 2, 0], 1), (2, [0, 2, 1], 0)])
def test_exact_mode_keeps_the_first_of_a_seeded_permutation(seed, perm, kept_one):
    # well-learned 0, 1, 4 (positions in indices, ascending); ratio 0.5 keeps floor(0.5 * 3) = 1:
    # the candidate at torch.randperm(3)[0], i.e. [0, 1, 4][perm[0]]; the other two are dropped
    assert torch.randperm(3, generator=gen(seed)).tolist() == perm
    info = InfoBatch(InfoBatchConfig(ratio=0.5, delta=0.5, exact=True), num_samples=6, epochs=4, device=CPU)
    indices = torch.arange(6)
    info.update(indices, LOSSES)
    kept = info.plan(1, indices, gen(seed))
    assert kept.tolist() == sorted([2, 3, 5, kept_one])
    assert info.weight.tolist() == [2.0 if i == kept_one else 1.0 for i in range(6)]


def test_exact_mode_counts_per_epoch_and_the_clamp():
    # 100 samples: the 40 even ones below 80 at loss 0.1, the others 5.0 (mean 3.04): 40 well learned
    losses = torch.tensor([0.1 if i % 2 == 0 and i < 80 else 5.0 for i in range(100)])
    for ratio, keep in ((0.5, 20), (0.3, 28), (0.95, 4), (0.9, 4), (0.33, 26)):  # floor(share * 40)
        info = InfoBatch(InfoBatchConfig(ratio=ratio, delta=1.0, exact=True), num_samples=100, epochs=3, device=CPU)
        info.update(torch.arange(100), losses)
        for seed in range(3):
            kept = info.plan(1, torch.arange(100), gen(seed))
            well = [i for i in kept.tolist() if losses[i] < 1]
            assert len(kept) == 60 + keep and len(well) == keep
            weight = 1.0 / (1.0 - ratio) if ratio <= 0.9 else 10.0
            assert all(info.weight[i].item() == pytest.approx(weight) for i in well)
            assert (info.weight != 1).sum().item() == keep
    # a permuted indices tensor: the candidates are taken in its order, the draw is the same
    info = InfoBatch(InfoBatchConfig(ratio=0.5, delta=1.0, exact=True), num_samples=6, epochs=2, device=CPU)
    info.update(torch.arange(6), LOSSES)
    order = torch.tensor([4, 5, 3, 1, 2, 0])  # well learned at positions 0 (4), 3 (1), 5 (0)
    kept = info.plan(0, order, gen(0))  # randperm(3) = [2, 0, 1] -> keeps position 5: sample 0
    assert kept.tolist() == [5, 3, 2, 0]


def test_exact_mode_same_seed_same_plan_and_default_is_bernoulli():
    assert InfoBatchConfig().exact is False
    info = InfoBatch(InfoBatchConfig(exact=True), num_samples=6, epochs=8, device=CPU)
    info.update(torch.arange(6), LOSSES)
    assert info.plan(1, torch.arange(6), gen(5)).tolist() == info.plan(1, torch.arange(6), gen(5)).tolist()


@pytest.mark.parametrize("ratio,delta", [(1.0, 0.5), (-0.1, 0.5), (0.5, 1.5)])
def test_infobatch_bad_parameters(ratio, delta):
    with pytest.raises(UserError, match="infobatch"):
        InfoBatchConfig(ratio=ratio, delta=delta)


@pytest.mark.parametrize("exact", [1, "true", None])
def test_infobatch_exact_must_be_a_boolean(exact):
    with pytest.raises(UserError, match=r"^infobatch exact must be true or false, got "):
        InfoBatchConfig(exact=exact)
