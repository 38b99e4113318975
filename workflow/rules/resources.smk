# What each job asks a cluster for (the SLURM profile turns these into sbatch options; locally they
# only label the jobs). Training and scoring ask for one GPU unless the experiment says device: cpu;
# selection and aggregation run on CPU. Memory scales with the dataset held in memory; the runtime
# limit with the job's FLOPs (model FLOPs x images it trains on), at the config's throughput
# (measured by pipeline.bench; by default a deliberately low one) and a margin over the estimate,
# so that a limit is only hit by a job that would never finish.
# Any of them can be overridden per rule in slurm/config.yaml (set-resources). Threads are here
# too: like resources, and unlike params, they are no rerun trigger.
GPU = 0 if config["device"] == "cpu" else 1
DATA_SIZE = EXPERIMENT.size
THROUGHPUT = config["throughput"]
FLOPS_PER_SECOND = THROUGHPUT["gpu_flops_per_second" if GPU else "cpu_flops_per_second"]
HOST_MEM_MB = 4096 + (
    3 * EXPERIMENT.n_train * DATA_SIZE.channels * DATA_SIZE.image_size**2 >> 20
    if DATA_SIZE.in_memory
    else 28672
)


def runtime_minutes(flops):
    """The margin times the estimated time, plus the minutes for start-up, data loading and
    evaluation."""
    return int(
        THROUGHPUT["startup_minutes"]
        + THROUGHPUT["margin"] * flops / FLOPS_PER_SECOND / 60
    )


def runtime(rule):
    """The runtime limit of a job of ``rule``: its FLOPs (pipeline.jobs.Experiment.flops) at the
    assumed throughput; a teacher trained on several GPUs splits them."""

    def minutes(wildcards):
        job = Job.of(rule, **dict(wildcards.items()))
        gpus = teacher_entry(wildcards)["gpus"] if rule == "teachers" else 1
        return runtime_minutes(EXPERIMENT.flops(job) / gpus)

    return minutes


# How often training jobs save their state (epochs), passed to them as a resource: not a param,
# so that changing it reruns no finished job (resources are no rerun trigger); SLURM's executor
# ignores a resource it does not know.
CHECKPOINT_EVERY = config["checkpoint_every"]


def teacher_threads(wildcards):
    return teacher_entry(wildcards)["threads"]


def pruned_teacher_threads(wildcards):
    job = shared_job("pruned_teachers", wildcards)
    return config["pruned_teachers"][EXPERIMENT.config_name(job)]["threads"]


def scores_gpu(wildcards):
    """A GPU for a scorer that runs models (the proxies or the teacher); none for one that reads
    tables or the teacher's saved logits (random, forgetting, aum, teacher_ce on clean images).
    """
    return GPU if EXPERIMENT.flops(shared_job("scores", wildcards)) else 0


def teacher_gpus(wildcards):
    """The GPUs a teacher trains on (data-parallel with several), none with device: cpu."""
    return GPU * teacher_entry(wildcards)["gpus"]


# Selection and aggregation read tables only.
CPU_JOB = {"gpu": 0, "mem_mb": 4096, "runtime": 30}
