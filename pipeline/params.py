"""Component parameters from config: every component (scorer, selector, loss, model, schedule)
declares a frozen dataclass ``Params``, one field per parameter with its type, default and a comment, and
checks its values in ``__post_init__``; its registry checks a config entry against it
(``Registry.params``). The training schedule (``pipeline.train.TrainConfig``) and InfoBatch
(``pipeline.infobatch.InfoBatchConfig``) are read the same way with ``parse_params``."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from pipeline.errors import UserError

P = TypeVar("P")


@dataclasses.dataclass(frozen=True)
class NoParams:
    """The Params of a component without parameters."""


def field_names(cls: type) -> list[str]:
    """The parameters ``cls`` declares, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def check_keys(cls: type, values: Mapping[str, Any], what: str) -> None:
    """An unknown key is one line naming it (every unknown one, sorted) and the allowed ones."""
    allowed = field_names(cls)
    unknown = sorted((key for key in values if key not in allowed), key=str)
    if unknown:
        raise UserError(f"unknown parameter {', '.join(map(repr, unknown))} for {what}; "
                        f"allowed: {', '.join(allowed) or 'none'}")


def read_number(text: str, integer: bool) -> Any:
    """``text`` as an int (``integer``: also "1e3") or a float when it is one, else unchanged, so
    that the caller's own check names it."""
    try:
        number = float(text)
    except ValueError:
        return text
    if not integer:
        return number
    return int(number) if number.is_integer() else text


def read_numbers(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with numeric strings in the int and float fields of ``cls`` read as numbers."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    numeric = {name for name, kind in kinds.items() if kind.split(" | ")[0] in ("int", "float")}
    return {k: read_number(v, kinds[k].startswith("int")) if k in numeric and isinstance(v, str) else v
            for k, v in values.items()}


def parse_params(cls: type[P], values: Mapping[str, Any] | None, where: str) -> P:
    values = dict(values or {})
    check_keys(cls, values, where)
    return cls(**read_numbers(cls, values))


def params_dict(params: Any) -> dict[str, Any]:
    """A Params instance as the plain dict a config and a job spec hold (every field)."""
    return dataclasses.asdict(params)
