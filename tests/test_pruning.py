"""Iterative global magnitude pruning: exact counts on known weights, the 1 - 0.8^n sparsity of n
rounds, and masks that hold through retraining."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from pipeline.errors import UserError
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.pruning import Masks, prunable_weights
from pipeline.train import TrainConfig, fit
from tests.tiny import CPU


def two_layers() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(1, 2, 1, bias=True), nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([5.0, -1.0]).view(2, 1, 1, 1))
        model[0].bias.fill_(0.001)  # smaller than every weight, but biases are never pruned
        model[2].weight.copy_(torch.tensor([[0.5, -4.0], [3.0, 2.0], [-0.2, 6.0]]))
    return model


def test_prune_removes_the_globally_smallest_weights():
    model = two_layers()
    masks = Masks(model)
    masks.prune(0.5)  # 8 weights -> remove the 4 smallest |w| across both layers: 0.2, 0.5, 1, 2
    assert model[0].weight.flatten().tolist() == [5.0, 0.0]
    assert model[2].weight.tolist() == [[0.0, -4.0], [3.0, 0.0], [0.0, 6.0]]
    assert model[0].bias.tolist() == pytest.approx([0.001, 0.001])
    assert masks.sparsity() == 0.5
    masks.prune(0.5)  # of the 4 remaining, remove 3 and 4
    assert model[2].weight.tolist() == [[0.0, 0.0], [0.0, 0.0], [0.0, 6.0]]
    assert model[0].weight.flatten().tolist() == [5.0, 0.0]


def test_masks_start_from_the_zeros_of_a_pruned_model():
    model = two_layers()
    Masks(model).prune(0.5)
    again = Masks(model)  # as when a pruned checkpoint is pruned further
    assert again.sparsity() == 0.5
    again.prune(0.25)  # 4 remaining -> remove 1 (|3|)
    assert model[2].weight.tolist() == [[0.0, -4.0], [0.0, 0.0], [0.0, 6.0]]


@pytest.mark.parametrize("rounds", [1, 2, 4, 7])
def test_sparsity_after_n_rounds(rounds):
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, in_channels=3)
    masks = Masks(model)
    for _ in range(rounds):
        masks.prune(0.2)
    total = sum(w.numel() for w in prunable_weights(model).values())
    # each round removes round(0.2 * remaining): at most half a weight of rounding per round
    assert abs(masks.sparsity() - (1 - 0.8**rounds)) <= rounds * 0.5 / total
    assert masks.sparsity() == pytest.approx(1 - 0.8**rounds, abs=1e-5)


def test_prunes_conv_and_linear_weights_only():
    model = build_model("resnet20", num_classes=10, in_channels=3)
    names = set(prunable_weights(model))
    assert "conv1" in names and "classifier" in names and "layer3.2.conv2" in names
    assert not any("bn" in n for n in names)


def test_pruned_weights_stay_zero_through_retraining(data):
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=3, in_channels=1, width=2)
    masks = Masks(model)
    for _ in range(3):
        masks.prune(0.2)
    pruned = {n: w.detach() == 0 for n, w in prunable_weights(model).items()}
    before = {n: w.detach().clone() for n, w in prunable_weights(model).items()}
    cfg = TrainConfig(epochs=3, batch_size=2, lr=0.5, weight_decay=5e-4)
    fit(model, data, torch.arange(6), cfg, seed=0, device=CPU, loss=build_loss("ce"),
        after_step=masks.apply, log=lambda line: None)
    for name, w in prunable_weights(model).items():
        assert (w[pruned[name]] == 0).all(), name  # momentum and weight decay never revive them
        assert not torch.equal(w[~pruned[name]], before[name][~pruned[name]]), name  # the rest trained
    assert masks.sparsity() == pytest.approx(1 - 0.8**3, abs=0.01)


@pytest.mark.parametrize("rate", [0.0, 1.0, 1.5])
def test_bad_rate(rate):
    with pytest.raises(UserError, match=rf"pruning rate must be in \(0, 1\), got {rate}"):
        Masks(two_layers()).prune(rate)
