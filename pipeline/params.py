"""Component parameters from config: every component (scorer, selector, loss, model, schedule)
declares a frozen dataclass ``Params``, one field per parameter with its type, default and a comment, and
checks its values in ``__post_init__``; its registry checks a config entry against it
(``Registry.params``). The training schedule (``pipeline.train.TrainConfig``) and InfoBatch
(``pipeline.infobatch.InfoBatchConfig``) are read the same way with ``parse_params``."""
from __future__ import annotations

import dataclasses
import re
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
        raise TypedError(f"unknown parameter {', '.join(map(repr, unknown))} for {what}; "
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


# The Python types a declared field type admits (a bool is no number here, though Python's bool is an int).
_TYPES = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,), "dict": (dict,)}


def _fits(value: Any, kind: str) -> bool:
    """Whether ``value`` is of the declared type ``kind`` (``float``, ``str | None``,
    ``tuple[int, ...]``, ``Sequence[str]``, ...); a type this check does not know admits anything
    (the Params' own ``__post_init__`` checks it)."""
    for option in (part.strip() for part in kind.split("|")):
        if option == "None":
            if value is None:
                return True
            continue
        items = re.fullmatch(r"(?:tuple|list|Sequence)\[(\w+)(?:, \.\.\.)?\]", option)
        if items:
            if isinstance(value, (list, tuple)) and all(_fits(item, items.group(1)) for item in value):
                return True
        elif option in _TYPES:
            if isinstance(value, _TYPES[option]) and (option == "bool" or not isinstance(value, bool)):
                return True
        else:
            return True
    return False


class TypedError(UserError):
    """A mistake in the keys or types of a component's parameters (not its own range checks)."""


def check_types(cls: type, values: Mapping[str, Any], what: str) -> None:
    """A value of another type than its field declares (a list where a number goes) is one line
    naming it."""
    for field in dataclasses.fields(cls):
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        if field.name in values and not _fits(values[field.name], kind):
            raise TypedError(f"{what} parameter {field.name!r} must be of type {kind}, got {values[field.name]!r}")


def construct(cls: type[P], values: Mapping[str, Any], what: str) -> P:
    """``cls(**values)``; where its own checks trip over a value of another type than its field
    declares (a list compared with a number: TypeError), one line naming it instead."""
    try:
        return cls(**values)
    except TypeError:  # the Params' own checks compared a value of another type (they come first: their words)
        check_types(cls, values, what)
        raise


def parse_params(cls: type[P], values: Mapping[str, Any] | None, where: str) -> P:
    values = dict(values or {})
    check_keys(cls, values, where)
    return construct(cls, read_numbers(cls, values), where)


def params_dict(params: Any) -> dict[str, Any]:
    """A Params instance as the plain dict a config and a job spec hold (every field)."""
    return dataclasses.asdict(params)
