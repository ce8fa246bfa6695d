"""Strict dataclass configs: YAML file + ``key=value`` overrides -> a typed config object.

Every stage has one dataclass config. Unknown keys and wrong types are a ``ConfigError``
that names the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from s2vt.errors import ConfigError

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a plain (JSON/YAML-safe) dict of a dataclass config."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types.

    Args:
        cls: a dataclass type; nested dataclass fields take nested dicts.
        data: the values; missing keys keep their defaults.
        where: dotted prefix used in error messages.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{where or cls.__name__}' must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{name}' (known keys: {known})")
        kwargs[key] = _coerce(hints[key], value, name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid config '{where or cls.__name__}': {error}") from None


def _coerce(hint: Any, value: Any, name: str) -> Any:
    """Check ``value`` against type ``hint`` (with the usual int->float widening)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where=name)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        real = [option for option in options if option is not type(None)]
        if len(real) == 1:  # ``X | None``: X's own message says what is expected
            return _coerce(real[0], value, name)
        for option in real:
            try:
                return _coerce(option, value, name)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{name}' has the wrong type: {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"config key '{name}' must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{name}' must be a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{name}' must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float:
        return _to_float(value, name)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"config key '{name}' must be true or false, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"config key '{name}' must be an integer, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(
            f"config key '{name}' must be of type {hint.__name__}, got {value!r}"
        )
    return value


# A decimal number as people type it: 5, -2, .5, 1e-3, 2E-4, +1.5e+2. YAML 1.1 (PyYAML) reads
# exponents without a dot ("1e-3") as strings, so float keys parse these strings themselves.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _to_float(value: Any, name: str) -> float:
    """A float config value from a YAML number or a number written as a string."""
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip())
    raise ConfigError(f"config key '{name}' must be of type float, got {value!r}")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["model.hidden_size=512", "lr=1e-3"]`` into a nested dict (values parsed as YAML)."""
    import yaml

    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override")
        node[parts[-1]] = value
    return nested


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"sampling.num_frames": 32, "device": None}`` -> ``{"sampling": {"num_frames": 32}}``.

    Keys are dotted config paths; ``None`` values (flags the user did not give) are left out
    so that they keep the YAML value or the default.
    """
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a ``ConfigError``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_config(
    cls: type[T],
    path: Path | None = None,
    overrides: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> T:
    """Load ``cls``: defaults <- YAML file <- ``extra`` (CLI flags) <- ``key=value`` overrides."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    if extra:
        data = merge(data, extra)
    if overrides:
        data = merge(data, parse_overrides(overrides))
    return config_from_dict(cls, data)


def save_config(config: Any, path: Path) -> None:
    """Write the resolved config next to an artifact (YAML, atomically)."""
    import yaml

    from s2vt.fileio import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))
