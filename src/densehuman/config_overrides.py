"""Overriding frozen configuration dataclasses: YAML files and ``--set key=value`` items, with errors that name the
key (and the file); also their JSON/YAML-ready dicts. Works on any nested frozen dataclass (``densehuman.config``'s
``Config``, the whole-body training config)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigValueError(ValueError):
    """A config value out of its range; the message names the key (``solver.base_lr``)."""

    def __init__(self, key: str, detail: str) -> None:
        self.key, self.detail = key, detail
        super().__init__(f"config key '{key}' {detail}")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON/YAML-ready dict (tuples become lists)."""
    return json_ready(dataclasses.asdict(config))


def json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def apply_overrides(config: Any, overrides: dict[str, Any], where: str = "") -> Any:
    """A copy of a (nested) frozen dataclass with the fields in ``overrides`` replaced; unknown keys raise."""
    if not isinstance(overrides, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping of fields, got {type(overrides).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise ValueError(f"unknown config key '{path}'; valid keys here: {', '.join(sorted(fields))}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            changes[key] = apply_overrides(current, value, path)
        else:
            changes[key] = _coerce(value, hints[key], path)
    try:
        return dataclasses.replace(config, **changes)
    except ConfigValueError as err:  # raised by this level's dataclass (deeper levels raised above, qualified)
        raise ConfigValueError(f"{where}.{err.key}" if where else err.key, err.detail) from None


_EXPONENT_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key '{path}' takes a list, got {value!r}")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, path) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key '{path}' takes true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key '{path}' takes an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.match(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-6 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key '{path}' takes a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"config key '{path}' takes a string, got {value!r}")
        return value
    return value


def load_overrides(path: str | Path) -> dict[str, Any]:
    """The overrides of a YAML config file (``preset:`` removed); errors name the file."""
    from densehuman.validation import InputError, read_yaml

    data = read_yaml(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, "the top level must be a mapping of config sections")
    data.pop("preset", None)
    return data


def apply_config_file(config: Any, path: str | Path) -> Any:
    """``config`` with the overrides of the YAML file ``path``; every error names the file and the key."""
    from densehuman.validation import InputError

    overrides = load_overrides(path)
    try:
        return apply_overrides(config, overrides)
    except ValueError as err:
        raise InputError(path, str(err)) from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["solver.base_lr=0.02", "model.densepose.head=deeplab"]`` -> nested overrides (values parsed as YAML)."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value, e.g. solver.base_lr=0.02")
        key, text = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ValueError(f"--set {item!r}: empty key")
        dotted = ".".join(parts)
        if dotted in given:
            raise ValueError(f"--set {item!r}: {dotted} is already set by --set {given[dotted]!r}")
        given[dotted] = item
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: '{p}' is both a value and a section")
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({err})") from None
    return out
