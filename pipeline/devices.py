"""Where a job computes: the device a config names, and data-parallel training on several GPUs of
one node (torchrun), for teachers of large datasets.

``torchrun --nproc_per_node=G -m pipeline.stages.teachers ...`` starts G copies of a stage; each finds its
rank in the environment torchrun sets, joins the process group (NCCL on GPUs, gloo on CPU) and
trains on its share of every batch (see ``pipeline.train.fit``); only rank 0 writes files. Without
torchrun (WORLD_SIZE unset) everything runs in one process, as usual.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pipeline.errors import UserError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# Set by SLURM in a job (or step) that was given GPUs.
GPU_GIVEN = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")


def resolve_device(name: str) -> torch.device:
    """The device of ``device: auto | cpu | cuda``. ``auto`` is CUDA when torch sees a GPU, and
    the CPU only in a job that was given none: a job SLURM gave GPUs that torch cannot see (no
    driver, a CPU-only torch) stops in one line instead of training on the CPU for days."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        given = [f"{var}={os.environ[var]}" for var in GPU_GIVEN if os.environ.get(var)]
        if given:
            raise UserError(f"this job was given a GPU ({', '.join(given)}) but torch sees none (torch "
                            f"{torch.__version__}, CUDA build {torch.version.cuda}); check the node's driver and "
                            f"the environment's torch, or set device: cpu to train on the CPU")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA device is visible; use 'auto' or 'cpu'")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; allowed: auto, cpu, cuda")
    return torch.device(name)


def ranks() -> Ranks:
    """This process's place in the job (one process: rank 0 of 1)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def start(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun; return the device this rank trains on."""
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        return device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"rank with LOCAL_RANK={local_rank} has no GPU: {torch.cuda.device_count()} visible")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise sum over ranks (the tensor itself in one process)."""
    if ranks().enabled:
        dist.all_reduce(tensor)
    return tensor
