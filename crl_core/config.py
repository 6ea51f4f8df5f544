"""Typed, validated configuration: YAML files -> dataclasses, with ``key=value`` overrides.

Every config in crl-sweep is a dataclass that inherits :class:`ConfigBase`.  Field types are checked
when the dataclass is built (directly or from a dict), numeric ranges and choices come from field
metadata (``min``, ``max``, ``choices``), and cross-field rules live in ``validate()``.  Unknown keys
are rejected with a did-you-mean suggestion, so a typo never silently falls back to a default.

    cfg = load_config(TrainConfig, "configs/x.yaml", ["lora.rank=8", "triplet.margin_harmful=0.5"])
    save_resolved_config(cfg, out_dir)   # resolved_config.yaml with the config hash
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "ConfigError",
    "ConfigBase",
    "config_field",
    "from_dict",
    "to_dict",
    "load_yaml",
    "parse_overrides",
    "apply_overrides",
    "load_config",
    "config_hash",
    "save_resolved_config",
    "set_dotted",
    "get_dotted",
    "flatten_dotted",
    "RESOLVED_CONFIG_NAME",
]

RESOLVED_CONFIG_NAME = "resolved_config.yaml"


class ConfigError(ValueError):
    """A configuration is invalid. The message names the offending key."""


def config_field(default: Any = dataclasses.MISSING, *, help: str = "", min: float | None = None,
                 max: float | None = None, choices: typing.Sequence[Any] | None = None,
                 default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with help text and range/choice metadata checked at validation time."""
    meta = {"help": help, "min": min, "max": max, "choices": tuple(choices) if choices else None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _suggest(name: str, candidates: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it, converted where lossless."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:  # Optional[X]: X's own message says more
            raise ConfigError(errors[0])
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}"
                              f"{_suggest(str(value), [str(a) for a in allowed])}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for section '{key}', got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):  # nan passes every min/max comparison, so it is refused here
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    return value


def _check_field(obj: Any, f: dataclasses.Field, tp: Any, key: str) -> None:
    value = getattr(obj, f.name)
    value = _coerce(value, tp, key)
    object.__setattr__(obj, f.name, value)
    meta = f.metadata or {}
    if value is None:
        return
    vals = value if isinstance(value, (list, tuple)) else [value]
    for v in vals:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi = meta.get("min"), meta.get("max")
            if lo is not None and v < lo:
                raise ConfigError(f"{key}: {v} is below the minimum {lo}")
            if hi is not None and v > hi:
                raise ConfigError(f"{key}: {v} is above the maximum {hi}")
        choices = meta.get("choices")
        if choices and v not in choices:
            raise ConfigError(f"{key}: {v!r} is not one of {list(choices)}"
                              f"{_suggest(str(v), [str(c) for c in choices])}")


class ConfigBase:
    """Mixin for config dataclasses: type/range checks on construction, then ``validate()``."""

    _prefix: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            _check_field(self, f, hints[f.name], f.name)
        self.validate()

    def validate(self) -> None:
        """Cross-field rules; raise ConfigError. Override in subclasses."""

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def from_dict(cls: type, data: dict[str, Any] | None, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (nested) dict, rejecting unknown keys with a suggestion."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        k = unknown[0]
        raise ConfigError(f"unknown config key '{prefix}{k}'{_suggest(str(k), names)}; "
                          f"valid keys here: {', '.join(sorted(names))}")
    hints = get_type_hints(cls)
    kwargs = {}
    for k, v in data.items():
        tp = hints[k]
        try:
            kwargs[k] = _coerce(v, tp, f"{prefix}{k}")
        except ConfigError:
            raise
    missing = [n for n, f in names.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"missing required config key '{prefix}{missing[0]}'")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        if prefix and not msg.startswith(prefix):
            msg = f"{prefix}{msg}"
        raise ConfigError(msg) from None


def to_dict(cfg: Any) -> Any:
    """Plain, YAML/JSON-serialisable dict of a config (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def parse_overrides(overrides: typing.Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1,2]"]`` -> ``{"a": {"b": 3}, "c": [1, 2]}``; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (dotted keys for sections)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{item}' conflicts with an earlier override of '{part}'")
            node = nxt
        node[parts[-1]] = value
    return out


def apply_overrides(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``updates`` into a copy of ``base``."""
    merged = dict(base)
    for k, v in updates.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = apply_overrides(merged[k], v)
        else:
            merged[k] = v
    return merged


def set_dotted(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the dotted ``key`` (``"triplet.margin_benign"``) set to ``value``."""
    node: dict[str, Any] = {}
    cur = node
    parts = key.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    return apply_overrides(data, node)


def get_dotted(data: dict[str, Any], key: str, default: Any = None) -> Any:
    """The value at the dotted ``key`` of a nested dict, or ``default`` where a part is missing."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten_dotted(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a.b": x}``: one row per leaf (for MLflow params)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten_dotted(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def load_config(cls: type, path: str | Path | None = None, overrides: typing.Iterable[str] = (),
                base: dict[str, Any] | None = None) -> Any:
    """Defaults <- ``base`` dict <- YAML file <- ``key=value`` overrides, validated into ``cls``."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = apply_overrides(data, load_yaml(path))
    data = apply_overrides(data, parse_overrides(overrides))
    return from_dict(cls, data)


def config_hash(cfg: Any, length: int = 12) -> str:
    """Stable hash of a config's resolved values (key order and float formatting independent)."""
    payload = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def save_resolved_config(cfg: Any, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``resolved_config.yaml`` (the config, its class and hash) next to an output."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"config_class": f"{type(cfg).__module__}.{type(cfg).__qualname__}",
           "config_hash": config_hash(cfg), "config": to_dict(cfg)}
    if extra:
        doc.update(extra)
    path = folder / RESOLVED_CONFIG_NAME
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
