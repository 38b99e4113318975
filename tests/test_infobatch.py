"""InfoBatch's dynamic pruning: which samples an epoch drops and how the rest are weighted."""
import pytest
import torch

from pipeline.errors import UserError
from pipeline.infobatch import InfoBatch, InfoBatchConfig

CPU = torch.device("cpu")


def test_infobatch_drops_only_well_learned_samples_and_reweights_the_rest():
    info = InfoBatch(InfoBatchConfig(ratio=0.5, delta=0.5), num_samples=6, epochs=4, device=CPU)
    indices = torch.arange(6)
    # first epoch: every last loss is 1, none is below the mean, nothing is dropped
    assert torch.equal(info.plan(0, indices, torch.Generator().manual_seed(0)), indices)
    info.update(indices, torch.tensor([0.1, 0.2, 0.9, 1.0, 0.05, 2.0]))
    # mean 4.25 / 6 = 0.708: samples 0, 1, 4 are well learned; each is dropped where rand < 0.5
    draws = torch.rand(6, generator=torch.Generator().manual_seed(3))
    dropped = {i for i in (0, 1, 4) if draws[i] < 0.5}
    kept = info.plan(1, indices, torch.Generator().manual_seed(3))
    assert set(kept.tolist()) == set(range(6)) - dropped
    for i in range(6):
        expected = 2.0 if i in {0, 1, 4} - dropped else 1.0  # 1 / (1 - 0.5) for kept well-learned
        assert info.weight[i].item() == expected
    # epochs from delta * epochs = 2 on use every sample with weight 1
    assert torch.equal(info.plan(2, indices, torch.Generator().manual_seed(3)), indices)
    assert torch.equal(info.weight, torch.ones(6))


@pytest.mark.parametrize("ratio,delta", [(1.0, 0.5), (-0.1, 0.5), (0.5, 1.5)])
def test_infobatch_bad_parameters(ratio, delta):
    with pytest.raises(UserError, match="infobatch"):
        InfoBatchConfig(ratio=ratio, delta=delta)
