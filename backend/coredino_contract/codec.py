"""Dataclasses to JSON values and back, following their type hints (the wire format of the protocol)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")


def to_json(obj: Any) -> Any:
    """A dataclass (or container of them) as plain JSON values: dicts, lists, str, numbers, None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    return obj


def from_json(cls: type[T], data: dict) -> T:
    """An instance of the dataclass ``cls`` from :func:`to_json`'s output; unknown keys are ignored
    (a newer peer may send more), missing ones take their defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: _value(hints[k], v) for k, v in data.items() if k in names})


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        return _value(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    if origin is list:
        return [_value(args[0], v) for v in value] if args else list(value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in value)
        return tuple(_value(a, v) for a, v in zip(args, value)) if args else tuple(value)
    if origin is dict:
        key, item = args or (Any, Any)
        return {_value(key, k): _value(item, v) for k, v in value.items()}
    if hint is float and isinstance(value, int):
        return float(value)
    if hint is int and isinstance(value, str):
        return int(value)  # JSON object keys (e.g. cluster id -> cells)
    return value
