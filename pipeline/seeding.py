"""Explicit random streams. A run's seed is split into named, independent streams (split, init,
order, augment, ...) so that changing one source of randomness never shifts another, and no
component reseeds the global generators."""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Seeds:
    """The seeds of a training run's three sources of randomness, so that a study can vary one at a
    time: model (and learned loss parts') initialisation, data order (with InfoBatch's drops), and
    augmentation."""

    init: int
    order: int
    augment: int

    @classmethod
    def of(cls, seed: "int | Seeds", streams: dict[str, Any] | None = None) -> "Seeds":
        """``seed`` for every stream that ``streams`` (config ``seed_streams``) does not fix."""
        if isinstance(seed, Seeds):
            return seed
        streams = streams or {}
        return cls(**{name: seed if streams.get(name) is None else streams[name] for name in ("init", "order", "augment")})
