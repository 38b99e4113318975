"""Explicit random streams. A run's seed is split into named, independent streams (split, init,
order, augment, ...) so that changing one source of randomness never shifts another, and no
component reseeds the global generators."""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *stream: str) -> int:
    digest = hashlib.sha256(":".join([str(seed), *stream]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # fits int64


def torch_generator(seed: int, *stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *stream))


def numpy_generator(seed: int, *stream: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *stream))


@contextlib.contextmanager
def seeded_init(seed: int, *stream: str):
    """Model constructors draw from the global torch RNG; fork it so the seed stays local."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, *stream))
        yield
