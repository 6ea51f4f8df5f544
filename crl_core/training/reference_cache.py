"""The frozen model's hidden states per training row and layer, computed once and reused (docs/method.md,
"Reference-state cache").

A representation method's reference pass (the base model with the adapter disabled, no gradient) gives the
same states for a row at every step: the frozen weights never change. The cache keeps one entry per
(row, hidden-state index): the states of every real token of the row. Entries are per layer, so trials
that search different layer windows in the same process (Ray reuses trial actors) share the layers they
have in common; the KL retain term's frozen logits are the LM head applied to the last hidden state
(index ``depth``, after the final norm), which is cached like any other layer.

An entry is keyed by everything that determines it (:class:`CacheKey`): the base model's weight values, the
row's token ids (which already carry its chat template and its ``max_length`` truncation), the
hidden-state index and the dtype the pass ran in. Token positions are not part of the key: every real
token is kept and a loss's position mask selects from them. A changed base, row, layer or dtype is a new
key, never a stale hit. The store is bounded (``reference_cache_mb``): least recently used entries go
first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["CacheKey", "ReferenceCache", "FILL", "weights_fingerprint", "row_fingerprint", "shared_cache"]

FILL = 1.0  # the value at a batch's padded positions: finite, and masked out by every loss


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A hash of every parameter's and buffer's name, shape and values (as float64, so the same weights held
    in another dtype hash alike: the dtype is a key part of its own). Call it before LoRA is attached."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach()
        h.update(f"{name}:{tuple(t.shape)}".encode())
        if t.numel():
            values = t.to("cpu", torch.float64) if t.is_floating_point() else t.to("cpu")
            h.update(values.contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def row_fingerprint(input_ids: Sequence[int]) -> str:
    """A row's states depend only on its token ids (causal attention, positions 0..n-1)."""
    return hashlib.sha256(torch.tensor(list(input_ids), dtype=torch.int64).numpy().tobytes()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheKey:
    """What determines one cached entry: the states of one row at one hidden-state index."""

    base: str    # weights_fingerprint of the frozen model
    row: str     # row_fingerprint of its token ids
    layer: int   # hidden-state index (0 = embeddings, depth = after the final norm)
    dtype: str   # the dtype the reference pass ran in


class ReferenceCache:
    """A bounded in-memory store of per-(row, layer) reference states [T_row, d]; ``hits`` and ``misses``
    count entries looked up."""

    def __init__(self, max_mb: float = 2048.0) -> None:
        self.max_bytes = int(max_mb * 2**20)
        self._store: OrderedDict[CacheKey, torch.Tensor] = OrderedDict()
        self.nbytes = 0
        self.hits = self.misses = self.evicted = 0

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._store

    def lookup(self, keys: Sequence[CacheKey]) -> set[CacheKey]:
        """The keys not stored yet (counted as misses; the others as hits)."""
        absent = [k for k in keys if k not in self._store]  # per occurrence: a key may repeat in a batch
        self.misses += len(absent)
        self.hits += len(keys) - len(absent)
        return set(absent)

    def put(self, key: CacheKey, states: torch.Tensor) -> None:
        if key in self._store:
            return
        size = states.numel() * states.element_size()
        if size > self.max_bytes:
            return
        self._store[key] = states
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self.nbytes -= old.numel() * old.element_size()
            self.evicted += 1

    def get(self, key: CacheKey) -> torch.Tensor:
        self._store.move_to_end(key)
        return self._store[key]

    def stats(self) -> dict[str, float]:
        looked = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / looked if looked else 0.0,
                "entries": len(self._store), "mb": self.nbytes / 2**20, "evicted": self.evicted}


_SHARED: ReferenceCache | None = None


def shared_cache(max_mb: float) -> ReferenceCache:
    """The process's cache (one per trial actor: reused actors keep it across trials); its bound is the
    largest any trainer of the process asked for."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ReferenceCache(max_mb)
    _SHARED.max_bytes = max(_SHARED.max_bytes, int(max_mb * 2**20))
    return _SHARED
