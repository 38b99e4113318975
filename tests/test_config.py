"""Config validation: the default validates with every default filled in, and each mistake is one
line naming the bad key or value and what is allowed."""
import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config, validate_config
from pipeline.distillation import SETTING_KEYS, DistillSetting, base_teacher
from pipeline.errors import UserError
from pipeline.losses.kd import HintonKD

REPO = Path(__file__).resolve().parent.parent
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_validates_and_fills_defaults():
    config = load_config(REPO / "config" / "config.yaml")
    assert config["scoring"] == {"teacher": "cnn32", "seed": 0, "batch_size": 1024, "threads": 1}
    assert config["student"]["train"]["momentum"] == 0.9  # TrainConfig default
    assert config["student"]["train"]["epochs"] == 20  # from the file
    assert config["scorers"]["forgetting"] == {"never_learned": "max"}
    assert config["distillation"]["kd"] == {"loss": "kd", "teacher": "cnn32", "alpha": 0.9, "temperature": 4,
                                            "reshape": False, "shape_student": False, "cached_views": None}
    assert config["data"]["train_limit"] is None
    assert config["selection"]["class_balanced"] is True


def test_tiny_config_validates():
    assert load_config(REPO / "tests" / "configs" / "tiny.yaml")["experiment"] == "tiny"


def _set(config, path, value):
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


DELETE = object()

BAD = [
    ("experimnt", "x", "unknown key 'experimnt'; allowed: checkpoint_every, data, device, distillation, experiment"),
    ("data.datset", "x", "config error in data: unknown key 'datset'; allowed: augment, dataset, download, image_size, label_noise, path, root"),
    ("data.dataset", "mnist", "unknown dataset 'mnist'; known: cifar10, cifar100, fashion_mnist, image_folder, imagenet, npz, svhn, tiny_imagenet"),
    ("teachers.cnn32.model", "resnet9", "unknown model 'resnet9'; known: cnn, mobilenetv2"),
    ("teachers.cnn32.train.epohcs", 3, "unknown key 'epohcs'; allowed: augment, batch_size, compile, epochs"),
    ("teachers.cnn32.gpus", 3, "config error in teachers.cnn32: train.batch_size 128 is not a multiple of gpus 3"),
    ("checkpoint_every", 0, "config error in checkpoint_every: 0 is less than the minimum of 1"),
    ("scorers.el3n", {}, "unknown scorer 'el3n'; known: aum, dual, dual_difficulty, dyn_unc, el2n, entropy, forgetting, grand, least_confidence"),
    ("scorers.el2n", {"runs": 3}, "unknown parameter 'runs' for scorer 'el2n'; allowed: epoch"),
    ("scorers.grand", {"mode": "full", "runs": 3},
     "config error in scorers.grand: unknown parameter 'runs' for scorer 'grand'; allowed: epoch, mode, chunk_size"),
    ("student.model_args", {"depth": 3},
     "config error in student.model_args: unknown parameter 'depth' for model 'cnn'; allowed: width, widths"),
    ("teachers.cnn32.model_args", {"widht": 3}, "config error in teachers.cnn32.model_args: unknown parameter 'widht'"),
    ("proxies.model_args", {"depth": 3}, "config error in proxies.model_args: unknown parameter 'depth' for model 'cnn'"),
    ("proxies.rounds", 3, "config error in proxies: unknown key 'rounds'; allowed: model, model_args, runs, score_epochs, seed"),
    ("scorers.forgetting", {"never_learned": "sometimes"}, "never_learned must be 'max' or 'zero', got 'sometimes'"),
    ("selection.selectors", {"hardst": ["random"]}, "unknown selector 'hardst'; known: d2, dual_beta, easiest, hardest, herding, kcenter, medium, random, stratified"),
    ("selection.selectors", {"stratified": {"scorers": ["el2n"], "betta": 0.1}}, "unknown parameter 'betta' for selector 'stratified'; allowed: ties, beta, strata, cutoff_scorer"),
    ("selection.selectors", {"stratified": {"scorers": ["el2n"], "beta": 1.5}}, "stratified: beta (hard cutoff share) must be a number in [0, 1), got 1.5"),
    ("distillation.kd.infobatch", {"rate": 0.5}, "config error in distillation.kd.infobatch: unknown key 'rate'; allowed: delta, exact, ratio"),
    ("distillation.kd.infobatch", {"ratio": 1.0}, "infobatch ratio must be in [0, 1), got 1.0"),
    ("scorers", {"random": {}}, "selection.selectors.hardest: scorer 'el2n' is not configured under scorers"),
    ("selection.keep_fractions", [0.1, 1.5], "selection.keep_fractions: 1.5 is outside (0, 1]"),
    ("selection.keep_fractions", [0, 0.5], "selection.keep_fractions: 0 is outside (0, 1]"),
    ("selection.keep_fractions", [1e-9, 0.5], "config error in selection.keep_fractions: 1e-09 keeps no sample of the "
                                              "60000 selected from (the smallest that keeps one: 8.33e-06)"),
    ("distillation.kd.teacher", "resnet", "distillation.kd.teacher: teacher 'resnet' is not defined; defined: cnn32"),
    ("distillation.kd.teacher", DELETE, "distillation.kd.teacher: teacher None is not defined"),
    ("distillation.kd.alpha", 1.5, "kd alpha must be in [0, 1], got 1.5"),
    ("distillation.kd.temperature", 0, "kd temperature must be > 0, got 0"),
    ("distillation.kd.beta", 2, "unknown parameter 'beta' for loss 'kd'; allowed: alpha, temperature, reshape"),
    ("distillation.kd.beta", 2, "config error in distillation.kd: unknown parameter 'beta' for loss 'kd'"),
    ("distillation.labels.teacher", "cnn32", "config error in distillation.labels: loss 'ce' uses no teacher; remove 'teacher'"),
    ("distillation.kd.loss", "crd", "unknown loss 'crd'; known: ce, dkd, kd, vid"),
    ("distillation.kd.reshape", "yes", "config error in distillation.kd.reshape: 'yes' is not valid under any of the given schemas"),
    ("distillation.vid", {"loss": "vid", "teacher": "cnn32", "student_layers": ["layer1"], "teacher_layers": ["features.6"]},
     "config error in distillation.vid.student_layers: SmallCNN has no layer 'layer1'; layers: features, features.0, "),
    ("distillation.vid", {"loss": "vid", "teacher": "cnn32", "student_layers": ["features.6"], "teacher_layers": ["head"]},
     "config error in distillation.vid.teacher_layers: SmallCNN has no layer 'head'; layers: features, features.0, "),
    ("distillation.vid", {"loss": "vid", "teacher": "cnn32"}, "vid needs student_layers and teacher_layers of the same non-zero length"),
    ("distillation.dkd", {"loss": "dkd", "teacher": "cnn32", "nckd_weight": -8}, "dkd nckd_weight must be >= 0, got -8"),
    ("distillation.labels.shape_student", True, "distillation.labels: shape_student needs a teacher to shape the student from"),
    ("distillation.labels.cached_views", 4, "config error in distillation.labels.cached_views: cached teacher views cannot serve loss 'ce': the loss uses no teacher"),
    ("distillation.vid", {"loss": "vid", "teacher": "cnn32", "student_layers": ["features.6"], "teacher_layers": ["features.6"], "cached_views": 4},
     "loss 'vid': the loss reads teacher features, which the cache does not hold"),
    ("distillation.kd.cached_views", 0, "config error in distillation.kd.cached_views: 0 is less than the minimum of 1"),
    ("pruned_teachers", {"p": {"teacher": "cnn32", "rounds": 2, "rate": 1.5}}, "config error in pruned_teachers.p.rate: 1.5 is outside (0, 1)"),
    ("pruned_teachers", {"p": {"teacher": "cnn32", "rounds": 2, "rate": 0}}, "config error in pruned_teachers.p.rate: 0 is outside (0, 1)"),
    ("pruned_teachers", {"p": {"teacher": "ghost", "rounds": 2}}, "pruned_teachers.p.teacher: teacher 'ghost' is not defined; defined: cnn32, p"),
    ("pruned_teachers", {"p": {"teacher": "q", "rounds": 1}, "q": {"teacher": "p", "rounds": 1}}, "pruned_teachers.p.teacher: a cycle p -> q -> p"),
    ("pruned_teachers", {"cnn32": {"teacher": "cnn32", "rounds": 1}}, "pruned_teachers.cnn32: the name 'cnn32' is already a teacher"),
    ("pruned_teachers", {"p": {"teacher": "cnn32", "rounds": 0}}, "config error in pruned_teachers.p.rounds: 0 is less than the minimum of 1"),
    ("report", {"compare": ["colour"]}, "config error in report.compare.0: 'colour' is not one of"),
    ("device", "tpu", "config error in device: 'tpu' is not one of ['auto', 'cpu', 'cuda']"),
    ("scoring.teacher", "big", "scoring.teacher: teacher 'big' is not defined"),
    ("student.model_args", {"width": -1}, "config error in student.model_args: model 'cnn' cannot be built with "
                                          "{'width': -1} for fashion_mnist (10 classes, 1 channels): RuntimeError: "),
    ("student.model_args", {"width": 0}, "config error in student.model_args: model 'cnn' cannot be built with "
                                         "{'width': 0} for fashion_mnist (10 classes, 1 channels): its layer features.0 "
                                         "would have no weights (a width or channel count of 0)"),
    ("teachers.cnn32.model_args", {"widths": [4, 0, 8]}, "its layer features.4 would have no weights"),
    ("teachers.cnn32.model_args", {"width": 2.5}, "config error in teachers.cnn32.model_args: model 'cnn' cannot be built "
                                                  "with {'width': 2.5} for fashion_mnist (10 classes, 1 channels): ValueError"),
    ("selection.selectors", {"stratified": {"scorers": ["el2n"], "beta": 0.95}},
     "config error in selection.selectors.stratified.beta: the hard cutoff beta = 0.95 leaves 300 of a class of at "
     "least 6000 samples selected from, fewer than the budget 600 of keep fraction 0.1; keep beta + keep fraction at most 1"),
    ("student.train.schedule", {"name": "multistep", "milestones": [{"at": 3}]},
     "config error in student.train.schedule: schedule 'multistep' parameter 'milestones' must be of type tuple[int, ...]"),
    ("student.train.schedule", {"name": "cosine", "min_lr": [0.1]},
     "config error in student.train.schedule: schedule 'cosine' parameter 'min_lr' must be of type float, got [0.1]"),
    ("distillation.kd.alpha", [0.5], "config error in distillation.kd"),
    ("scorers.grand", {"chunk_size": "many"}, "config error in scorers.grand: scorer 'grand' parameter 'chunk_size' must be of type int"),
    ("data.dataset", "mnist", "config error in data.dataset: unknown dataset 'mnist'"),
    ("student.model", "resnet9", "config error in student.model: unknown model 'resnet9'"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_one_clear_line(path, value, message):
    config = copy.deepcopy(DEFAULT)
    _set(config, path, value)
    with pytest.raises(UserError) as error:
        validate_config(config)
    text = str(error.value)
    assert message in text
    assert "\n" not in text


def test_cached_views_without_augmentation_is_refused():
    config = copy.deepcopy(DEFAULT)
    config["distillation"]["kd"]["cached_views"] = 4
    config["student"]["train"]["augment"] = False
    with pytest.raises(UserError, match="distillation.kd.cached_views: cached teacher views cannot serve loss 'kd': the cache holds augmented views, but the student trains without augmentation"):
        validate_config(config)


def test_missing_config_file():
    with pytest.raises(UserError, match="config file nowhere.yaml not found"):
        load_config("nowhere.yaml")


def test_shaped_student_needs_a_supported_teacher_family():
    config = copy.deepcopy(DEFAULT)
    config["teachers"]["cnn32"] = {"model": "mobilenetv2"}
    config["distillation"]["kd"]["shape_student"] = True
    with pytest.raises(UserError, match=r"distillation.kd.shape_student: cannot shape a student from 'mobilenetv2'; "
                                        r"supported: cnn, resnet110, resnet20, resnet32, resnet32x4, resnet56, resnet8x4, vgg11, vgg13, vgg19, vgg8$"):
        validate_config(config)


@pytest.mark.parametrize("study", sorted((REPO / "config" / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_study_configs_validate(study):
    config = load_config(study)
    assert config["report"]["title"] and config["report"]["compare"]


def test_distillation_settings_are_their_records_dict_forms():
    config = copy.deepcopy(DEFAULT)
    config["distillation"]["kd_ib"] = {"loss": "kd", "teacher": "cnn32", "alpha": 0.5, "infobatch": {"ratio": 0.3}}
    validated = validate_config(config)
    for name, entry in validated["distillation"].items():
        setting = DistillSetting.parse(name, entry)
        assert setting.spec() == entry
        assert setting.loss_params() == {k: v for k, v in entry.items() if k not in SETTING_KEYS}
    kd = DistillSetting.parse("kd", validated["distillation"]["kd"])
    assert kd.params == HintonKD.Params(alpha=0.9, temperature=4, reshape=False) and kd.teacher == "cnn32"
    assert validated["distillation"]["kd_ib"]["infobatch"] == {"ratio": 0.3, "delta": 0.875, "exact": False}


def test_model_args_and_selector_params_are_kept_as_written():
    # checked against their Params but not filled in: job specs (and their reruns) are built from them
    config = copy.deepcopy(DEFAULT)
    config["selection"]["selectors"]["stratified"] = {"scorers": ["el2n"], "beta": 0.1}
    validated = validate_config(config)
    assert validated["selection"]["selectors"]["stratified"] == {"scorers": ["el2n"], "params": {"beta": 0.1}}
    assert validated["selection"]["selectors"]["hardest"]["params"] == {}
    assert validated["student"]["model_args"] == {"width": 8}
    assert validated["scorers"]["grand"] == {"epoch": None, "mode": "last_layer", "chunk_size": 64}  # scorers: every default


def test_base_teacher_follows_pruned_teachers():
    config = copy.deepcopy(DEFAULT)
    config["pruned_teachers"] = {"p": {"teacher": "cnn32", "rounds": 1}, "q": {"teacher": "p", "rounds": 1}}
    validated = validate_config(config)
    assert base_teacher(validated, "q") is validated["teachers"]["cnn32"]
    assert base_teacher(validated, "cnn32") is validated["teachers"]["cnn32"]


def test_numeric_strings_in_numeric_fields_are_numbers():
    # YAML 1.1 reads 5e-4 (no dot) as a string; so may a `snakemake --config` override arrive
    config = yaml.safe_load("weight_decay: 5e-4\nlr: 1e-1\nepochs: '3'\nbatch_size: 1e2\n")
    assert config == {"weight_decay": "5e-4", "lr": "1e-1", "epochs": "3", "batch_size": "1e2"}
    raw = copy.deepcopy(DEFAULT)
    raw["student"]["train"].update(config)
    raw["distillation"]["kd"]["alpha"] = "5e-1"  # a loss parameter (its Params' float field)
    validated = validate_config(raw)
    train = validated["student"]["train"]
    assert (train["weight_decay"], train["lr"], train["epochs"], train["batch_size"]) == (5e-4, 0.1, 3, 100)
    assert type(train["epochs"]) is int and validated["distillation"]["kd"]["alpha"] == 0.5
    raw["student"]["train"]["weight_decay"] = "a lot"
    with pytest.raises(UserError, match="^config error in student.train.weight_decay: 'a lot' is not of type 'number'$"):
        validate_config(raw)
    raw["student"]["train"].update(weight_decay=5e-4, epochs="2.5")
    with pytest.raises(UserError, match="^config error in student.train.epochs: '2.5' is not of type 'integer'$"):
        validate_config(raw)


def test_proxies_scored_inside_their_run():
    config = copy.deepcopy(DEFAULT)
    config["proxies"]["train"] = {"epochs": 200}
    config["proxies"]["score_epochs"] = [0, 20]
    config["scorers"]["el2n"] = {"epoch": 20}
    config["scorers"]["grand"] = {"epoch": 0}
    validated = validate_config(config)
    assert validated["scorers"]["el2n"] == {"epoch": 20} and validated["scorers"]["grand"]["epoch"] == 0
    config["scorers"]["el2n"] = {"epoch": 30}
    with pytest.raises(UserError, match=r"^config error in scorers.el2n.epoch: the proxies are kept at epochs \[0, 20\] "
                                        r"\(proxies.score_epochs\), not 30$"):
        validate_config(config)
    config["scorers"]["el2n"] = {}
    config["proxies"]["score_epochs"] = [250]
    with pytest.raises(UserError, match="^config error in proxies.score_epochs: 250 is beyond the schedule's 200 epochs"):
        validate_config(config)


def test_a_validation_split_for_what_needs_one():
    config = copy.deepcopy(DEFAULT)
    config["report"] = {"metric": "test_acc_at_best_val"}
    with pytest.raises(UserError, match="^config error in report.metric: test_acc_at_best_val needs a validation split"):
        validate_config(config)
    config["teachers"]["cnn32"]["train"] = {"select": "best_val"}
    config["report"] = {}
    with pytest.raises(UserError, match="^config error in teachers.cnn32.train.select: best_val needs a validation split"):
        validate_config(config)
    config["data"]["validation_fraction"] = 0.1
    config["report"] = {"metric": "test_acc_at_best_val"}
    validated = validate_config(config)
    assert validated["data"]["validation_stratified"] is True and validated["data"]["validation_seed"] == 0


def test_a_cutoff_scorer_must_be_configured():
    config = copy.deepcopy(DEFAULT)
    config["selection"]["selectors"]["stratified"] = {"scorers": ["el2n"], "beta": 0.1, "cutoff_scorer": "aum"}
    assert validate_config(config)["selection"]["selectors"]["stratified"]["params"]["cutoff_scorer"] == "aum"
    config["selection"]["selectors"]["stratified"]["cutoff_scorer"] = "auc"
    with pytest.raises(UserError, match="^config error in selection.selectors.stratified: scorer 'auc' is not configured"):
        validate_config(config)


def test_a_keep_fraction_that_keeps_nothing_of_the_limited_and_held_out_data_is_refused():
    """600 training samples with 10 % held out for validation leave 540 to select from: 0.5 / 540
    keeps one (rounded half up), 0.0007 x 540 = 0.378 none."""
    config = copy.deepcopy(DEFAULT)
    config["data"].update(train_limit=600, validation_fraction=0.1)
    config["selection"]["keep_fractions"] = [0.5 / 540]
    validate_config(copy.deepcopy(config))
    config["selection"]["keep_fractions"] = [0.0007]
    with pytest.raises(UserError, match=r"^config error in selection.keep_fractions: 0.0007 keeps no sample of "
                                        r"the 540 selected from \(the smallest that keeps one: 0.000926\)$"):
        validate_config(config)


def test_precision_is_in_a_training_spec_only_when_set():
    """train.precision: auto (the default) is left out of the validated section, so the specs of
    jobs from before the option are unchanged and nothing reruns; bf16 or fp32 are kept."""
    config = validate_config(copy.deepcopy(DEFAULT))
    assert "precision" not in config["student"]["train"] and "precision" not in config["teachers"]["cnn32"]["train"]
    written = copy.deepcopy(DEFAULT)
    written["student"]["train"]["precision"] = "fp32"
    assert validate_config(written)["student"]["train"]["precision"] == "fp32"


def test_a_stratified_cutoff_is_refused_exactly_where_it_cannot_fill_the_budget():
    """Not class-balanced, no hold-out: the group is the 100 samples, so the check is exact: beta
    0.5 leaves 50, enough for f = 0.5 (50), not for f = 0.51 (51). Class-balanced, 100 samples of 10
    classes: beta 0.92 and f = 0.1 leave a class of 10 one sample, its budget: accepted (whether a
    smaller class fails by rounding is the subset job's to say, from the labels)."""
    config = copy.deepcopy(DEFAULT)
    config["data"]["train_limit"] = 100
    config["selection"].update(class_balanced=False, keep_fractions=[0.5])
    config["selection"]["selectors"]["stratified"] = {"scorers": ["el2n"], "beta": 0.5}
    validate_config(copy.deepcopy(config))
    config["selection"]["keep_fractions"] = [0.51]
    with pytest.raises(UserError, match=r"^config error in selection.selectors.stratified.beta: the hard cutoff beta = "
                                        r"0.5 leaves 50 of the 100 samples selected from, fewer than the budget 51"):
        validate_config(copy.deepcopy(config))
    config["selection"].update(class_balanced=True, keep_fractions=[0.1])
    config["selection"]["selectors"]["stratified"]["beta"] = 0.92
    validate_config(config)
