"""Name -> implementation registries, so a method, attack or judge is added in one place.

    @ATTACKS.register("prefill")
    class PrefillAttack: ...

    ATTACKS.get("prefil")  # ConfigError: unknown attack 'prefil' (did you mean 'prefill'?)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from crl_core.config import ConfigError

T = TypeVar("T")

__all__ = ["Registry", "ATTACKS", "JUDGES", "METHODS", "MODELS"]


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj
        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown {self.kind} '{name}'{hint}; known: "
                              f"{', '.join(sorted(self._items)) or '(none registered)'}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._items.items())


ATTACKS: Registry[Any] = Registry("attack")
JUDGES: Registry[Any] = Registry("judge")
METHODS: Registry[Any] = Registry("method")
MODELS: Registry[Any] = Registry("model")
