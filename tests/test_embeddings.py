"""The scoring teacher's embeddings (rule embeddings, pipeline/stages/embeddings.py): written once
as float16 with the data's fingerprint and a content hash, refused in one line where they are of
other data, of another kind or changed; and ``moderate``, the scorer that reads them, by hand."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import context

from pipeline.checkpoints import save_model, save_torch, save_train_logits
from pipeline.errors import UserError
from pipeline.inference import predict_with_features
from pipeline.scorers import build_scorer
from pipeline.stages import embeddings as embeddings_stage
from pipeline.stages.embeddings import load_embeddings, save_embeddings
from pipeline.stages.scores import load_needs

FINGERPRINT = "0123456789abcdef"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def one_line(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_the_stage_writes_the_teachers_penultimate_features_once_in_float16_with_the_fingerprint(tmp_path):
    from pipeline.data import load_dataset
    from pipeline.models import build_model
    from pipeline.seeding import seeded_init

    data = load_dataset("fashion_mnist", train_limit=60, test_limit=20)
    with seeded_init(0, "embeddings-test"):
        model = build_model("cnn", 10, 1, width=2)
    teacher = tmp_path / "model.pt"
    save_model(teacher, model, {"model": "cnn", "model_args": {"width": 2}, "num_classes": 10, "in_channels": 1,
                                "dataset_fingerprint": data.fingerprint, "stage": "teacher"})
    spec = {"data": {"dataset": "fashion_mnist", "root": None, "train_limit": 60, "test_limit": 20}, "device": "cpu",
            "teacher": "cnn-0123", "batch_size": 16}
    output = tmp_path / "embeddings.pt"
    embeddings_stage.main(["--spec", json.dumps(spec), "--threads", "1", "--teacher", str(teacher),
                           "--output", str(output)])
    state = torch.load(output, weights_only=True)
    _, features = predict_with_features(model, data.train, 16, torch.device("cpu"))
    assert state["embeddings"].dtype == torch.float16 and state["embeddings"].shape == (60, features.shape[1])
    assert torch.equal(state["embeddings"], features.half())  # every training sample, canonical order
    assert state["dataset_fingerprint"] == data.fingerprint and state["stage"] == "embeddings"
    assert state["teacher"] == "cnn-0123" and len(state["content_hash"]) == 16
    assert torch.equal(load_embeddings(output, data.fingerprint), features.half())


def test_a_reader_refuses_another_datasets_embeddings_in_one_line(tmp_path):
    path = tmp_path / "embeddings.pt"
    save_embeddings(path, torch.ones(6, 4), {"dataset_fingerprint": FINGERPRINT})
    with pytest.raises(UserError) as error:
        load_embeddings(path, "fedcba9876543210")
    assert "made from data with fingerprint 0123456789abcdef, but this run's data has fedcba9876543210" in one_line(error, path)


def test_a_reader_refuses_a_file_of_another_kind_or_changed_after_it_was_written(tmp_path):
    logits = tmp_path / "train_logits.pt"
    save_train_logits(logits, torch.zeros(6, 3), {"dataset_fingerprint": FINGERPRINT})
    with pytest.raises(UserError) as error:
        load_embeddings(logits, FINGERPRINT)
    assert "is not a file of embeddings: it has no embeddings" in one_line(error, logits)
    flat = tmp_path / "flat.pt"
    save_torch(flat, {"embeddings": torch.zeros(6), "dataset_fingerprint": FINGERPRINT})
    with pytest.raises(UserError) as error:
        load_embeddings(flat, FINGERPRINT)
    assert "not one row per sample (shape (6,))" in one_line(error, flat)
    changed = tmp_path / "changed.pt"
    save_embeddings(changed, torch.ones(6, 4), {"dataset_fingerprint": FINGERPRINT})
    state = torch.load(changed, weights_only=True)
    state["embeddings"][0, 0] = 2
    torch.save(state, changed)
    with pytest.raises(UserError) as error:
        load_embeddings(changed, FINGERPRINT)
    assert "was changed after it was written" in one_line(error, changed)


def test_features_beyond_float16_are_refused_not_stored_as_infinity(tmp_path):
    with pytest.raises(UserError, match=r"reach 7e\+04, beyond float16's range"):
        save_embeddings(tmp_path / "e.pt", torch.tensor([[1.0, 70000.0]]), {"dataset_fingerprint": FINGERPRINT})
    assert not (tmp_path / "e.pt").exists()


def test_the_scores_stage_loads_embeddings_only_when_given(tmp_path):
    path = tmp_path / "embeddings.pt"
    save_embeddings(path, torch.arange(12.0).reshape(6, 2), {"dataset_fingerprint": FINGERPRINT})
    loaded = load_needs({"embeddings"}, {"embeddings": str(path)}, FINGERPRINT)
    assert torch.equal(loaded["embeddings"], torch.arange(12.0).reshape(6, 2).half())
    with pytest.raises(UserError, match="^this scorer needs the teacher's embeddings of the training set, but none were given$"):
        load_needs({"embeddings"}, {"embeddings": None}, FINGERPRINT)


# ------------------------------------------------------------------ moderate (Moderate-DS)

# tiny's labels are 0, 1, 2, 0, 1, 2
POINTS = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0], [6.0, 8.0], [1.0, 1.0], [5.0, 2.0]], dtype=torch.float16)


def test_moderate_is_the_distance_to_the_class_centre(data):
    scorer = build_scorer("moderate")
    assert scorer.needs == {"embeddings"} and scorer.params.center == "median"
    scores = scorer.score(dataclasses.replace(context(data), embeddings=POINTS))
    # two samples a class: the median (the middle two averaged) is the mean. Class 0: (0, 0) and
    # (6, 8), centre (3, 4): 5 each; class 1: two equal points, 0; class 2: (5, 5) and (5, 2),
    # centre (5, 3.5): 1.5 each
    assert scores.tolist() == [5.0, 0.0, 1.5, 5.0, 0.0, 1.5]
    mean = build_scorer("moderate", {"center": "mean"})
    assert mean.score(dataclasses.replace(context(data), embeddings=POINTS)).tolist() == scores.tolist()


def test_moderate_centre_is_the_coordinate_wise_median_as_the_released_code():
    """Class 0 of nine samples (labels 0, 1, 2, 0, ...) is samples 0, 3, 6 at (0, 0), (1, 3),
    (10, 1): the median centre is (1, 1), distances 2**0.5, 2, 9; the mean centre (11/3, 4/3)."""
    from tiny import random_dataset

    data = random_dataset(9)
    points = torch.zeros(9, 2, dtype=torch.float16)
    points[[0, 3, 6]] = torch.tensor([[0.0, 0.0], [1.0, 3.0], [10.0, 1.0]], dtype=torch.float16)
    median = build_scorer("moderate").score(dataclasses.replace(context(data), embeddings=points))
    assert median[[0, 3, 6]] == pytest.approx([2**0.5, 2.0, 9.0], rel=1e-15)
    mean = build_scorer("moderate", {"center": "mean"}).score(dataclasses.replace(context(data), embeddings=points))
    assert mean[[0, 3, 6]] == pytest.approx([np.hypot(11 / 3, 4 / 3), np.hypot(8 / 3, 5 / 3), np.hypot(19 / 3, 1 / 3)],
                                            rel=1e-15)
    assert median[[1, 2, 4, 5, 7, 8]].tolist() == [0.0] * 6  # the other classes sit at their centre
    with pytest.raises(UserError, match="^moderate center must be 'median' or 'mean', got 'mode'$"):
        build_scorer("moderate", {"center": "mode"})


def test_moderate_takes_the_class_centre_over_the_samples_not_held_out(data):
    held = dataclasses.replace(data, held_out=torch.tensor([3]))  # sample 3 (class 0) held out
    scores = build_scorer("moderate").score(dataclasses.replace(context(held), embeddings=POINTS))
    assert np.isnan(scores[3])  # never scored
    assert scores[[0, 1, 2, 4, 5]].tolist() == [0.0, 0.0, 1.5, 0.0, 1.5]  # class 0 is sample 0 alone


def test_moderate_with_the_medium_selector_keeps_the_median_distances():
    """Moderate-DS: of 5 samples of one class at distances 0.5, 1, 2, 4, 8 from their mean, f = 0.4
    keeps the window [2 - 1, 2 + 1) of the ascending order around position floor(5 / 2) = 2: the
    distances 1 and 2 (MDSLR's window, the medium selector's)."""
    from pipeline.selectors import select_subset

    distances = np.array([8.0, 0.5, 4.0, 1.0, 2.0])
    kept = select_subset("medium", distances, np.zeros(5, int), 0.4, np.random.default_rng(0)).kept
    assert kept.tolist() == [3, 4]


@pytest.mark.parametrize("selector", ["kcenter", "d2"])
def test_a_selector_by_the_embeddings_with_a_random_scorer_is_a_config_error(selector):
    """kcenter ignores the scores, d2 weighs its graph by them: beside the random scorer either
    would be drawn per student seed and taken for the random baseline of the gains."""
    import yaml

    from pipeline.config import validate_config

    config = yaml.safe_load((Path(__file__).parent / "configs" / "tiny.yaml").read_text())
    config["selection"]["selectors"][selector] = ["el2n"]
    validate_config(yaml.safe_load(yaml.safe_dump(config)))
    config["selection"]["selectors"][selector] = ["el2n", "random"]
    with pytest.raises(UserError, match=rf"^config error in selection.selectors.{selector}: {selector} picks by the "
                                        r"embeddings, so scorer 'random' would make it a random baseline; list it "
                                        r"with a scorer that is not a random draw$"):
        validate_config(config)
