"""The search space: typed dimensions over dotted TrainConfig keys, sampled define-by-run (conditionally).

A dimension may carry ``when: {<dotted key>: <value or list of values>}``: it is sampled only where the
keys it depends on (searched earlier, or fixed by the training preset) take one of those values, so a knob
that does nothing in a trial (``mining.probability`` with mining off) is neither sampled, fed to TPE nor
logged. Optuna's define-by-run interface samples it (:meth:`SearchSpace.define_by_run`); a trial turns its
Tune config into typed values once (:meth:`SearchSpace.decode`) and builds its TrainConfig from them
(:func:`train_config_for`). docs/sweeps.md, "Search space", shows the YAML.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal

from crl_core.config import ConfigBase, ConfigError, config_field, from_dict, get_dotted, set_dotted

__all__ = ["ParamSpec", "SearchSpace", "train_config_for", "nest_space"]


@dataclass
class ParamSpec(ConfigBase):
    """One search dimension: ``uniform``/``loguniform`` floats, ``int`` (inclusive), or ``choice``."""

    type: Literal["uniform", "loguniform", "int", "choice"]
    low: float | None = config_field(None)
    high: float | None = config_field(None)
    values: list[Any] | None = config_field(None, help="choices; lists are allowed (e.g. layer lists)")
    when: dict[str, Any] | None = config_field(None, help="sample only where these dotted keys have these values "
                                                          "(a value or a list of allowed values)")

    def validate(self) -> None:
        if self.type == "choice":
            if not self.values:
                raise ConfigError("choice needs a non-empty 'values' list")
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"{self.type} needs 'low' and 'high'")
        if self.high < self.low or (self.type != "int" and self.high == self.low):
            raise ConfigError(f"'low' ({self.low}) must be below 'high' ({self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ConfigError(f"loguniform needs low > 0, got {self.low}")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ConfigError(f"int bounds must be whole numbers, got {self.low}..{self.high}")

    def bounds(self) -> list[Any]:
        """The values that span the dimension: both ends, or every choice."""
        if self.type == "choice":
            return list(self.values)
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def allowed(self, key: str) -> list[Any]:
        want = (self.when or {})[key]
        return list(want) if isinstance(want, list) else [want]

    def suggest(self, trial, name: str) -> Any:
        """Sample with an Optuna trial; returns the typed value (a list choice travels as its JSON text)."""
        if self.type == "uniform":
            return trial.suggest_float(name, self.low, self.high)
        if self.type == "loguniform":
            return trial.suggest_float(name, self.low, self.high, log=True)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high))
        return self.decode(trial.suggest_categorical(name, self._encoded()))

    def _encoded(self) -> list[Any]:  # Optuna choices must be scalars: lists travel as JSON text
        return [json.dumps(v) if isinstance(v, (list, dict)) else v for v in self.values]

    def decode(self, value: Any) -> Any:
        if self.type != "choice":
            return value
        return self.values[self._encoded().index(value)]

    def encode(self, value: Any) -> Any:
        """The inverse of :meth:`decode`: a typed value as Optuna and the Tune config carry it."""
        if self.type != "choice":
            return value
        if value not in self.values:
            raise ConfigError(f"{value!r} is not one of the choices {self.values}")
        return self._encoded()[self.values.index(value)]


def nest_space(node: dict[str, Any]) -> dict[str, Any]:
    """A search space written with dotted keys, nested by section (so YAML layers and ``key=value``
    overrides merge into it key by key); a dimension (a dict with ``type``) is kept whole, its ``when``
    keys stay dotted; ``null`` (drop) is kept."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if _section(value):
            value = nest_space(value)
        head, _, rest = key.partition(".")
        if rest:
            key, value = head, nest_space({rest: value})
        out[key] = _merge(out[key], value) if _section(value) and _section(out.get(key)) else value
    return out


def _section(value: Any) -> bool:
    return isinstance(value, dict) and "type" not in value


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    merged = dict(a)
    for k, v in b.items():
        if _section(v) and _section(merged.get(k)):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def train_config_for(base: dict[str, Any], values: dict[str, Any], output_dir: str):
    """The TrainConfig of one point of the search space (``values``: dotted key -> typed value)."""
    from crl_core.training import TrainConfig

    data = dict(base)
    for key, value in values.items():
        data = set_dotted(data, key, value)
    data["output_dir"] = output_dir
    return from_dict(TrainConfig, data)


@dataclass
class SearchSpace:
    params: dict[str, ParamSpec]  # dotted key -> dimension, in sampling order

    @classmethod
    def parse(cls, node: dict[str, Any]) -> SearchSpace:
        """The space may be written flat (dotted keys) or nested; ``null`` drops a key or a whole section.
        Conditions must name keys sampled earlier or not searched at all."""
        out: dict[str, ParamSpec] = {}

        def walk(tree: dict[str, Any], prefix: str) -> None:
            for key, spec in tree.items():
                name = f"{prefix}{key}"
                if spec is None:
                    continue
                if isinstance(spec, ParamSpec):
                    out[name] = spec
                elif isinstance(spec, dict) and "type" in spec:
                    out[name] = from_dict(ParamSpec, spec, prefix=f"search_space.{name}.")
                elif isinstance(spec, dict):
                    walk(spec, f"{name}.")
                else:
                    raise ConfigError(f"search_space.{name}: expected {{type: ..., ...}}, got {spec!r}")

        walk(node, "")
        seen: set[str] = set()
        for name, spec in out.items():
            for dep in spec.when or {}:
                if dep == name or (dep in out and dep not in seen):
                    raise ConfigError(f"search_space.{name}.when: '{dep}' must be declared before '{name}'")
                if dep in out and out[dep].type == "choice" and not any(
                        v in out[dep].values for v in spec.allowed(dep)):
                    raise ConfigError(f"search_space.{name}.when: {dep} is never {spec.when[dep]!r} "
                                      f"(its choices: {out[dep].values})")
            seen.add(name)
        return cls(out)

    def active(self, name: str, chosen: dict[str, Any], base: dict[str, Any]) -> bool:
        """Whether dimension ``name`` is sampled, given the values ``chosen`` so far and the preset ``base``."""
        spec = self.params[name]
        for dep in spec.when or {}:
            if dep in self.params:
                if dep not in chosen:
                    return False  # its own condition switched it off
                value = chosen[dep]
            else:
                value = _fixed_value(base, dep)
            if value not in spec.allowed(dep):
                return False
        return True

    def define_by_run(self, base: dict[str, Any]) -> DefineByRun:
        """What Optuna calls per trial: samples the active dimensions in order."""
        return DefineByRun(self, base)

    def decode(self, config: dict[str, Any]) -> dict[str, Any]:
        """A trial's Tune config (the sampled dimensions, list choices as JSON text) -> dotted key -> typed value."""
        return {k: self.params[k].decode(v) for k, v in config.items() if k in self.params}

    def encode(self, values: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`decode`: dotted key -> typed value -> a trial's Tune config."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise ConfigError(f"{', '.join(unknown)} not in the search space (searched: {', '.join(self.params)})")
        return {k: self.params[k].encode(v) for k, v in values.items()}

    def corners(self, keys: list[str], base: dict[str, Any]) -> list[dict[str, Any]]:
        """Every combination of the bounds of ``keys`` (and of the keys their conditions name), each reduced
        to the dimensions active in it: what the pre-flight checks build a TrainConfig for."""
        deps = [d for k in keys for d in (self.params[k].when or {}) if d in self.params]
        names = [n for n in self.params if n in keys or n in deps]
        seen, out = set(), []
        for combo in itertools.product(*(self.params[n].bounds() for n in names)):
            values: dict[str, Any] = {}
            for n, v in zip(names, combo):
                if self.active(n, values, base):
                    values[n] = v
            key = json.dumps(values, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(values)
        return out

    def never_active(self, base: dict[str, Any]) -> list[str]:
        """Dimensions whose condition no trial can meet (the preset fixes the key to another value)."""
        return [n for n, spec in self.params.items()
                if any(d not in self.params and _fixed_value(base, d) not in spec.allowed(d) for d in spec.when or {})]


@dataclass
class DefineByRun:
    """The define-by-run function of a space: an object, not a closure, because Tune pickles its searcher
    (and with it this function) into every experiment snapshot."""

    space: SearchSpace
    base: dict[str, Any]

    def __call__(self, trial) -> None:
        chosen: dict[str, Any] = {}
        for name, spec in self.space.params.items():
            if self.space.active(name, chosen, self.base):
                chosen[name] = spec.suggest(trial, name)


_MISSING = object()


def _fixed_value(base: dict[str, Any], key: str) -> Any:
    """The value a key the space does not search takes: the preset's, else TrainConfig's default."""
    value = get_dotted(base, key, _MISSING)
    return _trainconfig_default(key) if value is _MISSING else value


def _trainconfig_default(key: str) -> Any:
    """A TrainConfig field's default (for a condition on a key the preset leaves at its default)."""
    import dataclasses

    from crl_core.training import TrainConfig

    node: Any = TrainConfig
    value: Any = None
    for part in key.split("."):
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            raise ConfigError(f"search_space: condition key '{key}' is not a TrainConfig key")
        f = fields[part]
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        node = value if dataclasses.is_dataclass(value) else None
    return value
