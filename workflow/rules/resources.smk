# What each job asks a cluster for (the SLURM profile turns these into sbatch options; locally they
# only label the jobs). Training and scoring ask for one GPU unless the experiment says device: cpu;
# selection and aggregation run on CPU. Memory scales with the dataset held in memory; the runtime
# limit with the job's FLOPs (model FLOPs x images it trains on), at a deliberately low assumed
# throughput and twice the estimate, so that a limit is only hit by a job that would never finish.
# Any of them can be overridden per rule in slurm/config.yaml (set-resources). Threads are here
# too: like resources, and unlike params, they are no rerun trigger.
from pipeline.distillation import base_teacher
from pipeline.data import DATASET_SIZES
from pipeline.flops import model_flops
from pipeline.params import parse_params
from pipeline.train import TrainConfig, planned_epochs

GPU = 0 if config["device"] == "cpu" else 1
DATA_SIZE = DATASET_SIZES.get(config["data"]["dataset"])
N_TRAIN = min(DATA_SIZE.train, config["data"].get("train_limit") or DATA_SIZE.train)
# Sustained FLOP/s assumed: well below what an A100/H100 reaches on CIFAR ResNets (10-30 TFLOP/s
# in bf16), and about what 2 CPU cores do.
FLOPS_PER_SECOND = 2e12 if GPU else 2e10
HOST_MEM_MB = 4096 + (
    3 * N_TRAIN * DATA_SIZE.channels * DATA_SIZE.image_size**2 >> 20
    if DATA_SIZE.in_memory
    else 28672
)


def runtime_minutes(flops):
    """Twice the estimated time, plus 15 minutes for start-up, data loading and evaluation."""
    return int(15 + 2 * flops / FLOPS_PER_SECOND / 60)


def forward_flops(entry):
    return model_flops(
        entry["model"],
        entry["model_args"],
        DATA_SIZE.classes,
        DATA_SIZE.channels,
        DATA_SIZE.image_size,
    )


def images_trained(train, samples):
    cfg = parse_params(TrainConfig, train, "train")
    if cfg.steps is None:
        return samples * planned_epochs(cfg, samples)  # (up to train.stop_after)
    return cfg.steps * cfg.batch_size


def training_minutes(entry, samples, teacher=None):
    """Forward and backward (3x forward) of the model, plus the teacher's forward when distilling."""
    per_image = 3 * forward_flops(entry) + (forward_flops(teacher) if teacher else 0)
    return runtime_minutes(per_image * images_trained(entry["train"], samples))


# How often training jobs save their state (epochs), passed to them as a resource: not a param,
# so that changing it reruns no finished job (resources are no rerun trigger); SLURM's executor
# ignores a resource it does not know.
CHECKPOINT_EVERY = config["checkpoint_every"]


def teacher_threads(wildcards):
    return config["teachers"][wildcards.teacher]["threads"]


def pruned_teacher_threads(wildcards):
    return config["pruned_teachers"][wildcards.pruned]["threads"]


def teacher_gpus(wildcards):
    """The GPUs a teacher trains on (data-parallel with several), none with device: cpu."""
    return GPU * config["teachers"][wildcards.teacher]["gpus"]


def teacher_runtime(wildcards):
    teacher = config["teachers"][wildcards.teacher]
    return training_minutes(teacher, N_TRAIN // teacher["gpus"])


def pruned_teacher_runtime(wildcards):
    pruning = config["pruned_teachers"][wildcards.pruned]
    entry = {**base_teacher(config, wildcards.pruned), "train": pruning["train"]}
    return pruning["rounds"] * training_minutes(entry, N_TRAIN)


def proxy_runtime(wildcards):
    """Proxies scored early train only up to their last scoring epoch."""
    proxies = config["proxies"]
    if proxies["score_epochs"]:
        train = {**proxies["train"], "stop_after": max(proxies["score_epochs"])}
        proxies = {**proxies, "train": train}
    return training_minutes(proxies, N_TRAIN)


def scoring_runtime(wildcards):
    """A forward pass (GraNd: a backward too) over the training set with each proxy or the teacher."""
    models = [config["proxies"]] * config["proxies"]["runs"] + [
        base_teacher(config, SCORING_TEACHER)
    ]
    return runtime_minutes(sum(3 * forward_flops(m) * N_TRAIN for m in models))


def teacher_views_runtime(wildcards):
    """K forward passes of the teacher over the training set."""
    return runtime_minutes(
        int(wildcards.views)
        * forward_flops(base_teacher(config, wildcards.viewed))
        * N_TRAIN
    )


def teacher_view_std_runtime(wildcards):
    """One forward pass of the teacher over the training set."""
    return runtime_minutes(
        forward_flops(base_teacher(config, wildcards.viewed)) * N_TRAIN
    )


def student_runtime(wildcards):
    setting = SETTINGS[wildcards.distill]
    teacher = base_teacher(config, setting.teacher) if setting.teacher else None
    student = config["student"]
    if setting.shape_student:
        student = {
            **student,
            "model": teacher["model"],
            "model_args": teacher["model_args"],
        }
    # cached views: no teacher forward pass
    forward_teacher = None if setting.cached_views else teacher
    return training_minutes(
        student, round(KEEPS[wildcards.keep] * N_TRAIN), forward_teacher
    )


# Selection and aggregation read tables only.
CPU_JOB = {"gpu": 0, "mem_mb": 4096, "runtime": 30}
