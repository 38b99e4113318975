"""Learning-rate schedules at chosen points of training, against hand-computed values from the
recipes in shared/RECIPES.md, and a schedule driving the training loop."""
import math

import pytest
import torch

from pipeline.errors import UserError
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.schedules import Clock, build_schedule, schedule_entry
from pipeline.schedules.onecycle import one_cycle_lr
from pipeline.seeding import seeded_init
from pipeline.train import TrainConfig, fit

CPU = torch.device("cpu")


def at_epoch(schedule, base, epoch, epochs, steps_per_epoch=10, step=0):
    """The rate of step ``step`` of 0-based ``epoch``."""
    progress = (epoch + step / steps_per_epoch) / epochs
    return build_schedule(schedule).lr(base, Clock(progress, epoch, epoch + (step + 1) / steps_per_epoch))


def test_one_cycle_lr_shape():
    peak = 0.1
    assert one_cycle_lr(0.0, peak) == pytest.approx(peak / 25)  # start
    assert one_cycle_lr(0.125, peak) == pytest.approx((peak / 25 + peak) / 2)  # half-way up the cosine
    assert one_cycle_lr(0.25, peak) == pytest.approx(peak)  # the peak at 25 %
    assert one_cycle_lr(0.625, peak) == pytest.approx((peak + peak / 25e4) / 2)  # half-way down
    assert one_cycle_lr(1.0, peak) == pytest.approx(peak / 25e4)  # the end
    assert at_epoch({"name": "onecycle"}, peak, 5, 10) == one_cycle_lr(0.5, peak)


def test_repdistiller_steps_at_the_start_of_epochs_151_181_211():
    # RepDistiller: lr 0.05, x0.1 at 150, 180, 210 of 240 epochs; 1-based epoch 150 is 0-based 149
    repdistiller = {"name": "multistep", "milestones": [150, 180, 210], "gamma": 0.1}
    rates = {epoch: at_epoch(repdistiller, 0.05, epoch - 1, 240, step=7) for epoch in (1, 150, 151, 180, 181, 211, 240)}
    assert rates == pytest.approx({1: 0.05, 150: 0.05, 151: 0.005, 180: 0.005, 181: 5e-4, 211: 5e-5, 240: 5e-5})


def test_prune_then_distill_pretraining_steps_by_0_2_at_60_120_160():
    schedule = {"name": "multistep", "milestones": [60, 120, 160], "gamma": 0.2}
    rates = [at_epoch(schedule, 0.1, epoch, 200) for epoch in (0, 59, 60, 119, 120, 159, 160, 199)]
    assert rates == pytest.approx([0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008])


def test_cosine_anneals_every_step_to_min_lr():
    # DeepCore: CosineAnnealingLR(T_max = steps x epochs, eta_min = 1e-4), stepped each iteration:
    # step k of K runs at 1e-4 + (0.1 - 1e-4) (1 + cos(pi k / K)) / 2
    cosine = {"name": "cosine", "min_lr": 1e-4}
    assert at_epoch(cosine, 0.1, 0, 200) == pytest.approx(0.1)
    assert at_epoch(cosine, 0.1, 100, 200) == pytest.approx(1e-4 + (0.1 - 1e-4) / 2)
    k, total = 50 * 10 + 3, 200 * 10  # step 3 of epoch 50
    assert at_epoch(cosine, 0.1, 50, 200, step=3) == pytest.approx(1e-4 + (0.1 - 1e-4) * (1 + math.cos(math.pi * k / total)) / 2)


def test_linear_warmup_multiplies_any_schedule_until_its_last_step():
    schedule = {"name": "multistep", "milestones": [150], "warmup_epochs": 2}
    assert at_epoch(schedule, 0.1, 0, 240, step=0) == pytest.approx(0.1 * (1 / 10) / 2)  # first step: base / 20
    assert at_epoch(schedule, 0.1, 0, 240, step=9) == pytest.approx(0.1 / 2)  # end of the first epoch
    assert at_epoch(schedule, 0.1, 1, 240, step=9) == pytest.approx(0.1)  # the warm-up's last step
    assert at_epoch(schedule, 0.1, 2, 240) == pytest.approx(0.1)


def test_schedule_entries_are_filled_in_and_checked():
    assert TrainConfig().schedule == {"name": "onecycle", "warmup_epochs": 0.0}
    assert schedule_entry({"name": "multistep", "milestones": [2, 4]}) == {
        "name": "multistep", "warmup_epochs": 0.0, "milestones": [2, 4], "gamma": 0.1}
    assert schedule_entry({"name": "cosine"}) == {"name": "cosine", "warmup_epochs": 0.0, "min_lr": 0.0}
    with pytest.raises(UserError, match="^unknown schedule 'step'; known: cosine, multistep, onecycle$"):
        schedule_entry({"name": "step"})
    with pytest.raises(UserError, match="^config error in train.schedule: unknown parameter 'decay' for schedule 'cosine'"):
        schedule_entry({"name": "cosine", "decay": 2})
    with pytest.raises(UserError, match=r"milestones must be increasing epochs >= 1, got \[4, 2\]"):
        schedule_entry({"name": "multistep", "milestones": [4, 2]})
    with pytest.raises(UserError, match="warmup_epochs must be >= 0"):
        TrainConfig(schedule={"name": "onecycle", "warmup_epochs": -1})


def test_the_training_loop_follows_the_schedule(data):
    with seeded_init(0, "init"):
        model = build_model("cnn", 3, 1, width=2)
    cfg = TrainConfig(epochs=4, batch_size=2, lr=0.1, schedule={"name": "multistep", "milestones": [1, 3], "gamma": 0.5})
    history = fit(model, data, torch.arange(6), cfg, seed=0, device=CPU, loss=build_loss("ce"), log=lambda line: None)
    # the lr column is the rate of each epoch's last step
    assert history["lr"].tolist() == pytest.approx([0.1, 0.05, 0.05, 0.025])
