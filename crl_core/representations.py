"""Which hidden states a representation loss sees: layer selection and token positions.

Layer indices follow Hugging Face's ``output_hidden_states``: index 0 is the token embeddings,
index ``l`` (1..L) the output of decoder block ``l-1``, and index ``L`` is **after the final norm**
(it equals ``last_hidden_state``), so it is not comparable in scale with the others.

Token positions (masks over a right-padded batch from :func:`crl_core.chat.collate`):

- ``response``: the assistant's tokens (the published default, ``response_all``);
- ``request``: every real token before the response;
- ``request_last``: the last token before the response;
- ``all``: every real token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from crl_core.config import ConfigBase, ConfigError, config_field

__all__ = ["LayerSelection", "position_mask", "stack_hidden", "POSITIONS"]

POSITIONS = ("response", "request", "request_last", "all")


@dataclass
class LayerSelection(ConfigBase):
    """Hidden-state indices: an explicit list, or ``start`` and ``width`` (indices start..start+width-1)."""

    indices: list[int] | None = config_field(None, help="explicit hidden-state indices (overrides start/width)")
    start: int = config_field(2, min=0, help="first hidden-state index of the window")
    width: int = config_field(2, min=1, help="number of consecutive hidden-state indices")

    def validate(self) -> None:
        if self.indices is not None:
            if not self.indices:
                raise ConfigError("layers.indices: empty list (use null for start/width)")
            if len(set(self.indices)) != len(self.indices):
                raise ConfigError(f"layers.indices: duplicate index in {self.indices}")
            if any(i < 0 for i in self.indices):
                raise ConfigError(f"layers.indices: negative index in {self.indices}")

    def resolve(self, num_layers: int, name: str = "layers") -> list[int]:
        """Indices checked against a model with ``num_layers`` decoder blocks (valid: 0..num_layers)."""
        idx = sorted(self.indices) if self.indices is not None else list(range(self.start, self.start + self.width))
        bad = [i for i in idx if i > num_layers]
        if bad:
            raise ConfigError(f"{name}: hidden-state index {bad[0]} is past the model's depth: it has {num_layers} "
                              f"decoder blocks, so valid indices are 0..{num_layers} (0 = embeddings, "
                              f"{num_layers} = after the final norm)")
        return idx


def position_mask(attention_mask: torch.Tensor, response_mask: torch.Tensor,
                  positions: Literal["response", "request", "request_last", "all"]) -> torch.Tensor:
    """0/1 float mask [B, T] of the positions a loss sees."""
    attn = attention_mask.bool()
    resp = response_mask.bool()
    if positions == "response":
        m = resp
    elif positions == "request":
        m = attn & ~resp
    elif positions == "request_last":
        req = attn & ~resp
        last = (req.long().cumsum(-1) == req.long().sum(-1, keepdim=True)) & req
        m = last
    elif positions == "all":
        m = attn
    else:
        raise ConfigError(f"unknown token positions '{positions}'; known: {', '.join(POSITIONS)}")
    return m.float()


def stack_hidden(hidden_states: Sequence[torch.Tensor], indices: Sequence[int]) -> torch.Tensor:
    """``[L, B, T, d]`` stack of the selected hidden states."""
    return torch.stack([hidden_states[i] for i in indices], dim=0)
