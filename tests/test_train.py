"""The training loop: its determinism, its budgets, and training with InfoBatch and after evaluation."""
import math
from dataclasses import replace

import pandas as pd
import pytest
import tiny
import torch

from pipeline.errors import UserError
from pipeline.inference import evaluate
from pipeline.infobatch import InfoBatchConfig
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.schedules.onecycle import one_cycle_lr
from pipeline.seeding import Seeds, seeded_init
from pipeline.train import TrainConfig, fit, selected_epoch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return tiny.random_dataset(24)


def train(data, seed, infobatch=None, epochs=2):
    with seeded_init(seed, "init"):
        model = build_model("cnn", 3, 1, width=2)
    history = fit(model, data, torch.arange(24), TrainConfig(epochs=epochs, batch_size=8, momentum=0.5),
                  seed=seed, device=CPU, loss=build_loss("ce"), infobatch=infobatch, log=lambda line: None)
    return model, history


def test_same_seed_same_model_other_seed_other_model(data):
    a, history_a = train(data, seed=0)
    b, history_b = train(data, seed=0)
    c, _ = train(data, seed=1)
    for (name, x), y, z in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(x, y), name
    assert any(not torch.equal(x, z) for x, z in zip(a.state_dict().values(), c.state_dict().values()))
    assert history_a.drop(columns=["seconds", "images_per_second"]).equals(
        history_b.drop(columns=["seconds", "images_per_second"]))
    assert list(history_a["sample_steps"]) == [24, 24]
    # the recorded lr is the schedule's value at the last step: progress (1 + 2/3) / 2
    assert history_a["lr"].iloc[-1] == pytest.approx(one_cycle_lr((1 + 2 / 3) / 2, 0.1))


def test_a_model_evaluated_before_training_still_trains(data):
    """evaluate() runs in inference mode; the model it moves (channels_last) must stay trainable,
    as a teacher evaluated before each pruning round is."""
    with seeded_init(0, "init"):
        model = build_model("cnn", 3, 1, width=2)
    evaluate(model, data.test, 4, CPU)
    assert not any(p.is_inference() for p in model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    fit(model, data, torch.arange(24), TrainConfig(epochs=1, batch_size=8), seed=0, device=CPU,
        loss=build_loss("ce"), log=lambda line: None)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_fit_with_infobatch_trains_on_fewer_samples_then_all(data):
    _, history = train(data, seed=0, infobatch=InfoBatchConfig(ratio=0.9, delta=0.75), epochs=4)
    steps = list(history["sample_steps"])
    assert steps[0] == 24 and steps[3] == 24  # first epoch (no losses yet) and the annealing epoch
    assert steps[1] < 24 and steps[2] < 24
    assert math.isfinite(history["train_loss"].iloc[-1])


def test_a_steps_budget_trains_exactly_that_many_steps_whatever_the_subset(data):
    for n in (8, 24):  # 1 and 3 batches of 8 per pass
        with seeded_init(0, "init"):
            model = build_model("cnn", 3, 1, width=2)
        history = fit(model, data, torch.arange(n), TrainConfig(epochs=1, batch_size=8, steps=5), seed=0,
                      device=CPU, loss=build_loss("ce"), log=lambda line: None)
        # n = 8: five passes of one step; n = 24: one full pass of 3 steps and a partial pass of 2
        assert list(history["steps"]) == ([1] * 5 if n == 8 else [3, 2])
        assert list(history["sample_steps"]) == ([8] * 5 if n == 8 else [24, 16])
        assert history["lr"].iloc[-1] == pytest.approx(one_cycle_lr(4 / 5, 0.1))  # the 5th step's progress
        assert not math.isnan(history["test_acc"].iloc[-1])


def test_a_steps_budget_does_not_combine_with_infobatch(data):
    with pytest.raises(UserError, match="infobatch"):
        fit(build_model("cnn", 3, 1, width=2), data, torch.arange(8), TrainConfig(steps=3), seed=0, device=CPU,
            loss=build_loss("ce"), infobatch=InfoBatchConfig(), log=lambda line: None)


def test_seed_streams_vary_one_source_at_a_time(data):
    """An int seeds all three streams; Seeds sets them one by one, and each alone changes the run."""
    def weights(seed):
        with seeded_init(Seeds.of(seed).init, "init"):
            model = build_model("cnn", 3, 1, width=2)
        fit(model, data, torch.arange(24), TrainConfig(epochs=1, batch_size=8), seed=seed, device=CPU,
            loss=build_loss("ce"), log=lambda line: None)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert Seeds.of(3) == Seeds(3, 3, 3) and Seeds.of(3, {"init": 0, "order": None}) == Seeds(0, 3, 3)
    assert torch.equal(weights(0), weights(Seeds(0, 0, 0)))
    assert not torch.equal(weights(Seeds(0, 0, 0)), weights(Seeds(0, 1, 0)))  # order alone
    assert not torch.equal(weights(Seeds(0, 0, 0)), weights(Seeds(0, 0, 1)))  # augmentation alone
    assert not torch.equal(weights(Seeds(0, 0, 0)), weights(Seeds(5, 0, 0)))  # initialisation alone


def test_validation_is_evaluated_on_held_out_samples_and_best_val_keeps_that_epochs_model(data):
    """With a validation split every evaluated epoch records val_acc on the held-out samples, which
    are never trained on; select: best_val ends with the weights of the first epoch of the highest
    validation accuracy."""
    held = replace(data, held_out=torch.tensor([0, 1, 2, 3, 4, 5]))
    trained_on = []

    predictions = {}

    def train(select, epochs=5):
        with seeded_init(0, "init"):
            model = build_model("cnn", 3, 1, width=2)
        model.register_forward_pre_hook(lambda m, args: trained_on.append(args[0].shape[0]) if m.training else None)
        cfg = TrainConfig(epochs=epochs, batch_size=6, lr=0.5, select=select)
        predictions[select] = []
        history = fit(model, held, held.train_indices, cfg, seed=0, device=CPU, loss=build_loss("ce"),
                      log=lambda line: None, test_predictions=predictions[select])
        return model, history

    last, history = train("last")
    assert sum(trained_on) == 5 * 18  # the 18 samples not held out, every epoch
    assert history["val_acc"].notna().all()
    assert history["val_acc"].iloc[-1] == evaluate(last, held.train, 8, CPU, held.held_out)[0]
    best, history_best = train("best_val")
    pd.testing.assert_frame_equal(history.drop(columns=["seconds", "images_per_second"]),
                                  history_best.drop(columns=["seconds", "images_per_second"]))
    chosen = selected_epoch(history, "best_val")
    assert chosen["epoch"] < history["epoch"].iloc[-1]  # (all tie here: the first epoch, not the last)
    assert chosen["epoch"] == history.loc[history["val_acc"] == history["val_acc"].max(), "epoch"].min()
    best_test = evaluate(best, held.test, 8, CPU)
    assert best_test[:2] == (chosen["test_acc"], chosen["test_loss"])
    # the test-set predictions of the model each run ends with, for its per-class accuracy
    assert torch.equal(predictions["best_val"][0], best_test.predictions)
    assert torch.equal(predictions["last"][0], evaluate(last, held.test, 8, CPU).predictions)
    with pytest.raises(UserError, match="best_val needs a validation split"):
        fit(build_model("cnn", 3, 1, width=2), data, torch.arange(24), TrainConfig(epochs=1, select="best_val"),
            seed=0, device=CPU, loss=build_loss("ce"), log=lambda line: None)
    without = fit(build_model("cnn", 3, 1, width=2), data, torch.arange(24), TrainConfig(epochs=1),
                  seed=0, device=CPU, loss=build_loss("ce"), log=lambda line: None)
    assert without["val_acc"].isna().all()


def first_step_loss(data, **train) -> float:
    """The loss of the first batch (before any update): one step of a seeded model."""
    with seeded_init(0, "init"):
        model = build_model("cnn", 3, 1, width=2)
    cfg = TrainConfig(epochs=1, steps=1, batch_size=8, **train)
    history = fit(model, data, torch.arange(24), cfg, seed=0, device=CPU, loss=build_loss("ce"), log=lambda line: None)
    return float(history["train_loss"].iloc[0])


def test_precision_bf16_autocasts_the_forward_pass_on_the_cpu_too(data):
    """train.precision: bf16 runs the forward pass under torch.autocast (on the CPU here), within
    bf16's rounding of fp32 and not equal to it; auto is fp32 on the CPU."""
    fp32, bf16 = first_step_loss(data, precision="fp32"), first_step_loss(data, precision="bf16")
    assert bf16 == pytest.approx(fp32, rel=2e-2) and bf16 != fp32
    assert first_step_loss(data) == fp32  # auto: fp32 on the CPU
    with pytest.raises(UserError, match="train.precision must be one of auto, bf16, fp32, got 'fp16'"):
        TrainConfig(precision="fp16")


def test_compiled_training_matches_eager_on_the_cpu(data):
    """train.compile: the inductor-compiled model's first two steps give eager's losses."""
    def two_steps(compile_model):
        with seeded_init(0, "init"):
            model = build_model("cnn", 3, 1, width=2)
        cfg = TrainConfig(epochs=1, steps=2, batch_size=8, compile=compile_model)
        return fit(model, data, torch.arange(24), cfg, seed=0, device=CPU, loss=build_loss("ce"),
                   log=lambda line: None)["train_loss"].iloc[0]
    assert two_steps(True) == pytest.approx(two_steps(False), rel=1e-4)
