"""One registry per kind of component (datasets, models, scorers, selectors, losses).

A component registers itself with a decorator, with the frozen dataclass that declares its
parameters (``pipeline.params``): ``@LOSSES.register("kd")`` takes the class's own ``Params``,
``@SELECTORS.register("stratified", Params)`` names it for a function; a component without
parameters gets ``NoParams``. A duplicate name is an error, and an unknown name is an error that
lists the known ones, so a typo in a config fails with the allowed values; ``params`` checks a
config entry's parameters the same way.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Generic, TypeVar

from pipeline.errors import UserError
from pipeline.params import NoParams, TypedError, check_keys, construct, read_numbers

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._params: dict[str, type] = {}

    def register(self, name: str, params: type | None = None) -> Callable[[T], T]:
        """Register under ``name``, with ``params`` (default: the object's ``Params`` attribute,
        else ``NoParams``) as the dataclass of its parameters."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._params[name] = params or getattr(obj, "Params", NoParams)
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}"
            ) from None

    def params_type(self, name: str) -> type:
        """The Params dataclass registered with ``name``."""
        self.get(name)
        return self._params.get(name, NoParams)

    def params(self, name: str, values: Mapping[str, Any] | None = None, where: str | None = None) -> Any:
        """``values`` (a config entry's parameters) checked against the Params of ``name``: the
        Params instance, defaults filled in. An unknown key is one line naming it and the allowed
        ones, prefixed with ``config error in <where>: `` when ``where`` is given; a bad value is
        the Params' own one-line error."""
        cls = self.params_type(name)
        if values is None:
            values = {}
        if isinstance(values, cls):
            return values
        what = f"{self.kind} {name!r}"
        if not isinstance(values, Mapping):
            raise UserError(f"{what} params must be a mapping of names to values, got {values!r}")
        values = read_numbers(cls, values)
        try:
            check_keys(cls, values, what)
            typed = construct(cls, values, what)
        except TypedError as error:  # (a bad value's own message comes from the Params, unprefixed)
            raise UserError(f"config error in {where}: {error}" if where else str(error)) from None
        return typed

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
