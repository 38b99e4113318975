"""A distillation setting as one record: parsed and checked from its config entry (or a student's
job spec), with the dict forms the config and job specs hold."""
import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config import validate_config
from pipeline.distillation import DistillSetting
from pipeline.errors import UserError
from pipeline.infobatch import InfoBatchConfig
from pipeline.losses.ce import CrossEntropy
from pipeline.losses.kd import HintonKD
from pipeline.losses.vid import VID

REPO = Path(__file__).resolve().parent.parent
CONFIG = validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


def test_parse_fills_the_loss_defaults():
    setting = DistillSetting.parse("kd", {"loss": "kd", "teacher": "cnn32", "alpha": 0.5, "infobatch": {"ratio": 0.3}})
    assert setting == DistillSetting(name="kd", loss="kd", params=HintonKD.Params(alpha=0.5, temperature=4.0),
                                     teacher="cnn32", infobatch=InfoBatchConfig(ratio=0.3, delta=0.875))
    assert setting.loss_params() == {"alpha": 0.5, "temperature": 4.0, "reshape": False}
    assert setting.spec() == {"loss": "kd", "teacher": "cnn32", "shape_student": False, "cached_views": None,
                              "infobatch": {"ratio": 0.3, "delta": 0.875, "exact": False}, "alpha": 0.5, "temperature": 4.0,
                              "reshape": False}
    labels = DistillSetting.parse("labels", {"loss": "ce"})
    assert labels.params == CrossEntropy.Params() and labels.teacher is None and labels.infobatch is None
    assert labels.spec() == {"loss": "ce", "shape_student": False, "cached_views": None}
    assert labels.loss_params() == {}


def test_spec_round_trips_and_a_job_spec_parses():
    setting = DistillSetting.parse("vid", {"loss": "vid", "teacher": "t", "student_layers": ["features.6"],
                                           "teacher_layers": ["features.2"], "vid_weight": 2})
    assert DistillSetting.parse("vid", setting.spec()) == setting
    assert DistillSetting.parse("vid", {"name": "vid", **setting.spec()}) == setting  # a student's job spec
    assert setting.params == VID.Params(vid_weight=2, student_layers=["features.6"], teacher_layers=["features.2"])


def test_reshaping_statistics_of_an_augmented_pass_are_in_the_spec_only_when_asked_for():
    """Settings without reshape_view_seed keep the spec they had, so their students do not rerun."""
    entry = {"loss": "kd", "teacher": "t", "reshape": True}
    assert "reshape_view_seed" not in DistillSetting.parse("kd", entry).spec()
    setting = DistillSetting.parse("kd", {**entry, "reshape_view_seed": 10})
    assert setting.reshape_view_seed == 10 and setting.spec()["reshape_view_seed"] == 10
    assert DistillSetting.parse("kd", setting.spec()) == setting


def test_build_loss_from_the_record():
    loss = DistillSetting.parse("kd", {"loss": "kd", "teacher": "t", "alpha": 0.5, "reshape": True}).build_loss()
    assert isinstance(loss, HintonKD) and loss.params == HintonKD.Params(0.5, 4.0, True)
    assert (loss.alpha, loss.temperature, loss.reshape, loss.needs_teacher_class_std) == (0.5, 4.0, True, True)


def test_config_entries_are_spec_forms():
    for name, entry in CONFIG["distillation"].items():
        assert DistillSetting.parse(name, entry, config=CONFIG).spec() == entry


@pytest.mark.parametrize("entry, message", [
    ({"loss": "kd"}, "config error in distillation.s.teacher: teacher None is not defined"),
    ({"loss": "ce", "teacher": "t"}, "config error in distillation.s: loss 'ce' uses no teacher; remove 'teacher'"),
    ({"loss": "ce", "shape_student": True}, "config error in distillation.s: shape_student needs a teacher to shape the student from"),
    ({"loss": "ce", "cached_views": 2},
     "config error in distillation.s.cached_views: cached teacher views cannot serve loss 'ce': the loss uses no teacher"),
    ({"loss": "vid", "teacher": "t", "student_layers": ["a"], "teacher_layers": ["b"], "cached_views": 2},
     "config error in distillation.s.cached_views: cached teacher views cannot serve loss 'vid': the loss reads "
     "teacher features, which the cache does not hold (only the teacher's logits)"),
    ({"loss": "kd", "teacher": "t", "reshape_view_seed": 10},
     "config error in distillation.s.reshape_view_seed: loss 'kd' does not reshape the teacher's logits; remove it or "
     "set reshape: true"),
    ({"loss": "kd", "teacher": "t", "alpha": 2}, "kd alpha must be in [0, 1], got 2"),
    ({"loss": "kd", "teacher": "t", "beta": 2},
     "config error in distillation.s: unknown parameter 'beta' for loss 'kd'; allowed: alpha, temperature, reshape"),
    ({"loss": "kld"}, "unknown loss 'kld'; known: ce, dkd, kd, vid"),
    ({"loss": "ce", "infobatch": {"ratio": 1.0}}, "infobatch ratio must be in [0, 1), got 1.0"),
])
def test_parse_checks_the_entry_alone(entry, message):
    with pytest.raises(UserError) as info:
        DistillSetting.parse("s", entry)
    assert str(info.value) == message


def test_parse_checks_against_the_config():
    config = copy.deepcopy(CONFIG)
    with pytest.raises(UserError, match=r"^config error in distillation\.s\.teacher: teacher 'big' is not defined; defined: cnn32$"):
        DistillSetting.parse("s", {"loss": "kd", "teacher": "big"}, config=config)
    DistillSetting.parse("s", {"loss": "kd", "teacher": "big"})  # without a config, any name
    DistillSetting.parse("s", {"loss": "kd", "teacher": "cnn32", "cached_views": 4}, config=config)
    config["student"]["train"]["augment"] = False
    with pytest.raises(UserError, match=r"^config error in distillation\.s\.cached_views: cached teacher views cannot "
                                        r"serve loss 'kd': the cache holds augmented views, but the student trains "
                                        r"without augmentation"):
        DistillSetting.parse("s", {"loss": "kd", "teacher": "cnn32", "cached_views": 4}, config=config)
    with pytest.raises(UserError, match=r"^config error in distillation\.s\.student_layers: SmallCNN has no layer 'x'"):
        DistillSetting.parse("s", {"loss": "vid", "teacher": "cnn32", "student_layers": ["x"], "teacher_layers": ["features.6"]},
                             config=config)
