"""A teacher brought from a file instead of trained (``teachers.<t>.checkpoint``): what the config
refuses with it, the teacher stage's outputs for it, and RepDistiller's/mdistiller's released
layout mapped onto the zoo's models (``pipeline.models.released``)."""
import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from pipeline.checkpoints import load_class_logit_std, load_model, load_train_logits, save_model
from pipeline.cli import load_data
from pipeline.config import validate_config
from pipeline.errors import UserError
from pipeline.io import read_table
from pipeline.losses.kd import class_logit_std
from pipeline.models import build_model
from pipeline.models.released import check_checkpoints, zoo_state_dict
from pipeline.seeding import seeded_init
from pipeline.stages import teachers

REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_data = pytest.mark.skipif(not FASHION_MNIST.exists(),
                                reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
DATA = {"dataset": "fashion_mnist", "root": None, "train_limit": 60, "test_limit": 20}
OUTPUTS = ("model.pt", "epochs.parquet", "dynamics.parquet", "logits.pt", "class_std.parquet")


def tiny_config(**teacher) -> dict:
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["teachers"]["t4"] = {"model": "cnn", "model_args": {"width": 4}, "threads": 1, **teacher}
    return config


def refusal(config: dict) -> str:
    with pytest.raises(UserError) as error:
        validate_config(config)
    message = str(error.value)
    assert "\n" not in message
    return message


# The config

def test_a_loaded_teacher_has_no_training_keys_and_its_path_is_not_needed_to_load_the_config():
    config = tiny_config(checkpoint="teachers/elsewhere/model.pt")
    config["scorers"] = {name: {} for name in ("random", "el2n", "teacher_ce", "margin")}
    config["selection"]["selectors"] = {"hardest": ["random", "el2n", "teacher_ce"]}
    validated = validate_config(config)  # the file does not exist: a dry run plans without it
    assert validated["teachers"]["t4"] == {"model": "cnn", "model_args": {"width": 4}, "threads": 1, "gpus": 1,
                                           "checkpoint": "teachers/elsewhere/model.pt"}
    with pytest.raises(UserError) as error:  # where the files are checked (the workflow's onstart)
        check_checkpoints(validated)
    assert str(error.value).startswith("teachers.t4.checkpoint: teachers/elsewhere/model.pt does not exist")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("scorer", ["forgetting", "aum"])
def test_scorers_of_training_dynamics_are_refused_for_a_loaded_scoring_teacher(scorer):
    config = tiny_config(checkpoint="t4.pt")
    config["scorers"] = {"el2n": {}, scorer: {}, "teacher_ce": {}}
    config["selection"]["selectors"] = {"hardest": ["el2n"]}
    message = refusal(config)
    assert message == (
        f"config error in scorers.{scorer}: {scorer} reads the training dynamics of scoring.teacher 't4', which is "
        f"loaded from teachers.t4.checkpoint, not trained; use a scorer of the teacher's outputs (entropy, "
        f"least_confidence, margin, teacher_ce) or of the proxies (el2n, grand), or set scoring.teacher to a "
        f"trained teacher")
    # with a trained teacher to score with, the loaded one can still teach the students
    config["teachers"]["trained"] = {"model": "cnn", "model_args": {"width": 2}, "train": {"epochs": 1}}
    config["scoring"] = {"teacher": "trained"}
    assert validate_config(config)["teachers"]["t4"]["checkpoint"] == "t4.pt"


def test_a_pruned_teacher_can_start_from_a_loaded_one():
    """Pruning reads only the teacher's weights (and retrains with its own train section)."""
    config = tiny_config(checkpoint="t4.pt")
    config["scorers"] = {"el2n": {}}
    config["selection"]["selectors"] = {"hardest": ["el2n"]}
    config["pruned_teachers"] = {"t4_pruned": {"teacher": "t4", "rounds": 1, "train": {"epochs": 1}}}
    assert validate_config(config)["pruned_teachers"]["t4_pruned"]["teacher"] == "t4"


@pytest.mark.parametrize("extra, message", [
    ({"train": {"epochs": 2}}, "config error in teachers.t4: a teacher with a checkpoint is loaded, not trained; "
                               "remove train (or the checkpoint, to train it)"),
    ({"seed": 3, "seed_streams": {"init": 1}}, "config error in teachers.t4: a teacher with a checkpoint is loaded, "
                                                "not trained; remove seed, seed_streams (or the checkpoint, to train it)"),
    ({"gpus": 2}, "config error in teachers.t4.gpus: a teacher with a checkpoint is only evaluated, on one GPU; "
                  "remove gpus"),
])
def test_training_keys_given_with_a_checkpoint_are_refused(extra, message):
    assert refusal(tiny_config(checkpoint="t4.pt", **extra)) == message


def test_torchvision_weights_only_for_torchvision_models_on_imagenet():
    assert refusal(tiny_config(checkpoint="torchvision")) == (
        "config error in teachers.t4.checkpoint: torchvision's pretrained weights exist only for torchvision's "
        "models (resnet18, resnet34, resnet50), not 'cnn'; give the path of a trained cnn instead")
    config = tiny_config(checkpoint="torchvision")
    config["teachers"]["t4"].update(model="resnet18", model_args={})
    assert refusal(config).startswith("config error in teachers.t4.checkpoint: torchvision's weights are "
                                      "ImageNet's (1000 classes, 3 channels), not fashion_mnist's (10 classes")
    config["data"] = {"dataset": "imagenet", "train_limit": 600, "test_limit": 200}
    config["teachers"]["t4"]["model_args"] = {"width_per_group": 128}
    assert "remove them from model_args" in refusal(config)
    config["teachers"]["t4"]["model_args"] = {}
    config["scorers"] = {"el2n": {}}
    config["selection"]["selectors"] = {"hardest": ["el2n"]}
    assert validate_config(config)["teachers"]["t4"]["checkpoint"] == "torchvision"
    check_checkpoints(validate_config(config))  # torchvision's weights: downloaded by the job, not checked here


# The teacher stage

def run_stage(folder: Path, checkpoint: str, model: str = "cnn", model_args: dict | None = None) -> dict[str, Path]:
    out = {name: folder / name for name in OUTPUTS}
    spec = {"data": DATA, "device": "cpu", "name": "t",
            "teacher": {"model": model, "model_args": model_args or {}, "checkpoint": checkpoint, "gpus": 1}}
    teachers.main(["--spec", json.dumps(spec), "--threads", "1", "--model-out", str(out["model.pt"]),
                   "--epochs-out", str(out["epochs.parquet"]), "--dynamics-out", str(out["dynamics.parquet"]),
                   "--logits-out", str(out["logits.pt"]), "--class-std-out", str(out["class_std.parquet"])])
    return out


def logits_by_hand(model: torch.nn.Module, split) -> torch.Tensor:
    """The model's eval-mode logits on the normalised images, without the pipeline's batching."""
    x = (split.images.float() / 255 - torch.tensor(split.mean).view(1, -1, 1, 1)) / torch.tensor(split.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return model.eval()(x)


@needs_data
@pytest.mark.parametrize("layout", ["pipeline", "repdistiller"])
def test_a_loaded_teacher_writes_what_a_trained_one_does_from_the_weights_it_was_given(tmp_path, layout):
    """This pipeline's own model.pt (cnn) and a RepDistiller checkpoint of a resnet8x4, as their
    ckpt_epoch_240.pth: the outputs are those of evaluating the model the test built."""
    model_name, args = ("cnn", {"width": 2}) if layout == "pipeline" else ("resnet8x4", {})
    with seeded_init(5, "test-teacher"):
        model = build_model(model_name, 10, 1, **args)
    with torch.no_grad():  # running statistics that matter in eval mode
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    file = tmp_path / "given.pth"
    if layout == "pipeline":
        save_model(file, model, {"model": model_name, "model_args": args, "num_classes": 10, "in_channels": 1,
                                 "dataset_fingerprint": "another run's"})
    else:
        torch.save({"epoch": 240, "model": repdistiller_layout(model_name, model.state_dict()), "accuracy": 0.5}, file)
    out = run_stage(tmp_path / "t", str(file), model_name, args)

    data = load_data(DATA)
    test_logits, train_logits = logits_by_hand(model, data.test), logits_by_hand(model, data.train)
    epochs, meta = read_table(out["epochs.parquet"])
    assert len(epochs) == 1 and epochs["epoch"].iloc[0] == 0 and epochs["steps"].iloc[0] == 0
    assert epochs["test_acc"].iloc[0] == pytest.approx(float((test_logits.argmax(1) == data.test.labels).float().mean()))
    assert epochs["test_loss"].iloc[0] == pytest.approx(float(F.cross_entropy(test_logits, data.test.labels)), rel=1e-5)
    assert meta["checkpoint"] == {"path": str(file), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
    assert meta["spec"]["teacher"]["checkpoint"] == str(file)

    logits = load_train_logits(out["logits.pt"], data.fingerprint)
    assert torch.allclose(logits, train_logits, atol=1e-5)
    assert torch.allclose(load_class_logit_std(out["class_std.parquet"], data.fingerprint),
                          class_logit_std(train_logits, data.train.labels, 10), atol=1e-5)
    dynamics, dynamics_meta = read_table(out["dynamics.parquet"])
    assert len(dynamics) == 0 and list(dynamics.columns) == ["sample_index", "epoch", "correct", "margin",
                                                             "true_prob", "prob_change"]
    assert dynamics_meta["checkpoint"]["sha256"] == meta["checkpoint"]["sha256"]

    loaded, spec = load_model(out["model.pt"], data.fingerprint)  # this run's data now, not the file's
    assert spec["test_acc"] == epochs["test_acc"].iloc[0] and spec["checkpoint"] == meta["checkpoint"]
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


@needs_data
@pytest.mark.parametrize("damage", ["missing", "truncated", "not torch", "no state dict", "another model"])
def test_a_missing_or_damaged_checkpoint_is_one_line_naming_it(tmp_path, capsys, damage):
    with seeded_init(0, "test-teacher"):
        model = build_model("cnn", 10, 1, width=2)
    file = tmp_path / "given.pth"
    if damage == "truncated":
        torch.save({"model": model.state_dict()}, file)
        file.write_bytes(file.read_bytes()[:300])
    elif damage == "not torch":
        file.write_text("resnet32x4_vanilla\n")
    elif damage == "no state dict":
        torch.save({"epoch": 240, "accuracy": 0.7}, file)
    elif damage == "another model":
        torch.save({"model": build_model("cnn", 10, 1, width=4).state_dict()}, file)
    with pytest.raises(SystemExit) as exit_info:
        run_stage(tmp_path / "t", str(file), "cnn", {"width": 2})
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in error
    assert error.startswith(f"error: teachers.t.checkpoint {file}" if damage == "another model"
                            else f"error: teachers.t.checkpoint: {file}")
    expected = {"missing": "does not exist", "truncated": "is not a readable torch checkpoint",
                "not torch": "is not a readable torch checkpoint", "no state dict": "holds no state dict",
                "another model": "shapes differ: features.0.weight (4, 1, 3, 3) in the file, (2, 1, 3, 3)"}[damage]
    assert expected in error
    assert not (tmp_path / "t" / "model.pt").exists()


# RepDistiller's / mdistiller's layout: each zoo key renamed the way their models name it (read
# from their models/*.py), independently of pipeline.models.released.

_MOBILENET_FIRST = [3, 4, 6, 9, 13, 16, 19]  # the zoo's feature index of each stage's first unit


def _mobilenet(key: str) -> str:
    m = re.match(r"features\.(\d+)\.(.*)", key)
    if m is None:
        return re.sub(r"^classifier\.", "classifier.0.", key)
    n, rest = int(m[1]), m[2]
    if n < 3:
        return f"conv1.{n}.{rest}"
    if n >= 20:
        return f"conv2.{n - 20}.{rest}"
    stage = max(s for s, first in enumerate(_MOBILENET_FIRST) if first <= n)
    return f"blocks.{stage}.{n - _MOBILENET_FIRST[stage]}.{rest}"


def _shufflenetv2(key: str) -> str:
    def conv_bn(sequence_index: str, k: int) -> str:  # the zoo's <k>.0 is a conv, <k>.1 its BN
        return ("conv" if sequence_index == "0" else "bn") + str(k)

    key = re.sub(r"^conv([12])\.([01])\.", lambda m: conv_bn(m[2], int(m[1])) + ".", key)
    down = {"left.0": 1, "left.1": 2, "right.0": 3, "right.1": 4, "right.2": 5}
    key = re.sub(r"^(layer\d)\.0\.(left|right)\.(\d)\.([01])\.",
                 lambda m: f"{m[1]}.0.{conv_bn(m[4], down[f'{m[2]}.{m[3]}'])}.", key)
    key = re.sub(r"^(layer\d)\.(\d+)\.branch\.(\d)\.([01])\.", lambda m: f"{m[1]}.{m[2]}.{conv_bn(m[4], int(m[3]) + 1)}.", key)
    return re.sub(r"^classifier\.", "linear.", key)


THEIR_NAMES = {
    "resnet": lambda k: re.sub(r"^classifier\.", "fc.", k.replace(".shortcut.", ".downsample.")),
    "wrn": lambda k: re.sub(r"^classifier\.", "fc.", re.sub(r"^bn\.", "bn1.", re.sub(
        r"^(block\d)\.(\d+)\.", r"\1.layer.\2.", k.replace(".shortcut.", ".convShortcut.")))),
    "vgg": lambda k: k,
    "mobilenetv2": _mobilenet,
    "shufflenetv1": lambda k: re.sub(r"^classifier\.", "linear.", k),
    "shufflenetv2": _shufflenetv2,
}


def repdistiller_layout(model_name: str, state: dict) -> dict:
    family = next(f for f in THEIR_NAMES if model_name.startswith(f))
    return {THEIR_NAMES[family](k): v for k, v in state.items()}


# models, and keys their definitions have, which the renaming must produce
RELEASED = [
    ("resnet8x4", ["layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_var", "fc.weight"]),
    ("resnet20", ["layer2.0.downsample.0.weight", "layer3.2.bn2.bias", "fc.bias"]),
    ("wrn_16_2", ["block1.layer.0.convShortcut.weight", "block3.layer.1.bn2.weight", "bn1.running_mean", "fc.weight"]),
    ("vgg8", ["block0.0.weight", "block0.1.running_mean", "block4.0.bias", "classifier.weight"]),
    ("mobilenetv2", ["conv1.0.weight", "blocks.0.0.conv.0.weight", "blocks.6.0.conv.7.running_var",
                     "conv2.1.weight", "classifier.0.bias"]),
    ("shufflenetv1", ["layer1.0.conv1.weight", "layer3.3.bn3.bias", "linear.weight"]),
    ("shufflenetv2", ["conv1.weight", "bn1.bias", "layer1.0.conv5.weight", "layer1.0.bn1.running_mean",
                      "layer3.3.bn3.running_var", "conv2.weight", "bn2.weight", "linear.bias"]),
]


@pytest.mark.parametrize("model_name, their_keys", RELEASED, ids=[name for name, _ in RELEASED])
def test_released_layout_maps_onto_the_zoo_model(model_name, their_keys):
    with seeded_init(1, "test-released"):
        model = build_model(model_name, 100, 3).eval()
        fresh = build_model(model_name, 100, 3).eval()
    theirs = {"module." + k if model_name == "resnet20" else k: v  # (a DataParallel prefix is dropped)
              for k, v in repdistiller_layout(model_name, model.state_dict()).items()}
    assert set(their_keys) <= {k.removeprefix("module.") for k in theirs}
    fresh.load_state_dict(zoo_state_dict(model_name, theirs, fresh, "given.pth"))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    # the zoo's own naming passes through unchanged
    assert zoo_state_dict(model_name, model.state_dict(), fresh, "model.pt").keys() == model.state_dict().keys()


def test_torchvision_layout_maps_onto_the_zoo_resnet():
    import torchvision.models

    with seeded_init(2, "test-torchvision"):
        theirs = torchvision.models.resnet18(weights=None).eval()
        zoo = build_model("resnet18", 1000, 3).eval()
    zoo.load_state_dict(zoo_state_dict("resnet18", theirs.state_dict(), zoo, "torchvision"))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(zoo(x), theirs(x))


def test_torchvision_checkpoint_loads_the_hub_cache_file_and_names_it(tmp_path, monkeypatch):
    """``checkpoint: torchvision`` reads torchvision's default weights from torch's hub cache (here
    a file the test puts there, so nothing is downloaded) and records which weights and their sha256."""
    import torchvision.models

    from pipeline.models.released import load_weights, torchvision_file

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with seeded_init(3, "test-torchvision"):
        theirs = torchvision.models.resnet18(weights=None).eval()
        zoo = build_model("resnet18", 1000, 3).eval()
    cached = torchvision_file("resnet18")
    assert cached.parent == tmp_path / "hub" / "checkpoints"
    cached.parent.mkdir(parents=True)
    torch.save(theirs.state_dict(), cached)
    source = load_weights(zoo, "resnet18", "torchvision", "teachers.t.checkpoint")
    assert source == {"torchvision": "ResNet18_Weights.IMAGENET1K_V1",
                      "url": f"https://download.pytorch.org/models/{cached.name}",
                      "sha256": hashlib.sha256(cached.read_bytes()).hexdigest()}
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(zoo(x), theirs(x))


def test_a_state_dict_that_does_not_fit_names_its_keys():
    model = build_model("resnet8x4", 100, 3)
    theirs = repdistiller_layout("resnet8x4", model.state_dict())
    del theirs["layer2.0.downsample.0.weight"]
    theirs["layer4.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(UserError) as error:
        zoo_state_dict("resnet8x4", theirs, model, "ckpt_epoch_240.pth")
    assert str(error.value) == (
        "ckpt_epoch_240.pth does not fit model 'resnet8x4' (after renaming its keys to the zoo's): missing keys "
        "layer2.0.shortcut.0.weight; unexpected keys layer4.0.conv1.weight")
    cifar10 = build_model("resnet8x4", 10, 3)  # a CIFAR-100 teacher for CIFAR-10 data
    with pytest.raises(UserError) as error:
        zoo_state_dict("resnet8x4", copy.deepcopy(repdistiller_layout("resnet8x4", model.state_dict())), cifar10, "t.pth")
    assert str(error.value).endswith("shapes differ: classifier.weight (100, 256) in the file, (10, 256) in the "
                                     "model, classifier.bias (100,) in the file, (10,) in the model")
