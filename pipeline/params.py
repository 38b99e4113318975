"""Component parameters from config: a frozen dataclass per component, so every parameter has a
type, a default and a docstring in one place, and an unknown key is an error naming it."""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from pipeline.errors import UserError

P = TypeVar("P")


def parse_params(cls: type[P], values: dict[str, Any] | None, where: str) -> P:
    values = dict(values or {})
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise UserError(f"unknown parameter {unknown[0]!r} for {where}; allowed: {', '.join(allowed) or 'none'}")
    return cls(**values)
