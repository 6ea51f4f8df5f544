"""Name -> implementation registries: the single source of every name a config may use.

    @METRICS.register("benign_accuracy")
    def benign_accuracy(report): ...

    ATTACKS.get("prefil")  # ConfigError: unknown attack 'prefil' (did you mean 'prefill'?)

Each registry names the module that fills it (``populate``); ``get``, ``names`` and ``in`` import that
module first, so a list derived from a registry is always complete and no module keeps its own list of
names. docs/extending.md lists the files each new method, attack, judge, metric, preset or named model
touches (one to four).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from crl_core.config import ConfigError

T = TypeVar("T")

__all__ = ["Registry", "ATTACKS", "JUDGES", "METHODS", "MODELS", "METRICS", "EVAL_PRESETS", "DATA_PRESETS"]


class Registry(Generic[T]):
    def __init__(self, kind: str, populate: str | None = None) -> None:
        self.kind = kind
        self.populate = populate  # module whose import registers every built-in entry
        self._items: dict[str, T] = {}
        self._populated = populate is None

    def _load(self) -> None:
        if not self._populated:
            self._populated = True
            importlib.import_module(self.populate)

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj
        return deco

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown {self.kind} '{name}'{hint}; known: "
                              f"{', '.join(sorted(self._items)) or '(none registered)'}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, Any]]:
        self._load()
        return sorted(self._items.items())


ATTACKS: Registry[Any] = Registry("attack", "crl_core.attacks")
JUDGES: Registry[Any] = Registry("judge", "crl_core.judges")
METHODS: Registry[Any] = Registry("method", "crl_core.methods")
MODELS: Registry[Any] = Registry("model", "crl_core.models.named")
METRICS: Registry[Any] = Registry("metric", "crl_core.metrics")
EVAL_PRESETS: Registry[Any] = Registry("evaluation preset", "crl_core.evaluation.presets")
DATA_PRESETS: Registry[Any] = Registry("data preset", "crl_core.training.data")
