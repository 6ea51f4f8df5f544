"""Chat templating that knows which tokens are the assistant's, and explicit padding.

Representation losses and attacks need to know exactly which positions hold the response. The
template is rendered twice: the conversation up to the generation prompt, and the whole
conversation. The first must be a prefix of the second (checked); the two parts are tokenized
separately and concatenated, so the prompt/response boundary is exact and the response keeps its
end-of-turn token (the published code drops it, see docs/footguns.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

__all__ = ["ChatEncoding", "ChatTemplateError", "encode_chat", "collate", "render_prompt"]


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be split into prompt and response."""


@dataclass
class ChatEncoding:
    input_ids: list[int]
    response_mask: list[int]  # 1 where the token belongs to the assistant's reply
    prompt_length: int
    meta: dict = field(default_factory=dict)

    @property
    def response_length(self) -> int:
        return len(self.input_ids) - self.prompt_length


def _messages(prompt: str, system: str | None, response: str | None = None) -> list[dict]:
    msgs = []
    if system is not None:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": prompt})
    if response is not None:
        msgs.append({"role": "assistant", "content": response})
    return msgs


def render_prompt(tokenizer, prompt: str, system: str | None = None) -> str:
    """The conversation text up to and including the assistant's generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(f"tokenizer {type(tokenizer).__name__} has no chat template")
    return tokenizer.apply_chat_template(_messages(prompt, system), tokenize=False, add_generation_prompt=True)


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_chat(tokenizer, prompt: str, response: str | None = None, system: str | None = None,
                close_turn: bool = True, max_length: int | None = None) -> ChatEncoding:
    """Token ids for a one-turn chat, with a response mask.

    ``response=None`` encodes only the prompt (ready for generation). ``close_turn=False`` leaves
    the assistant turn open after ``response`` (a prefill: the model continues it).
    ``max_length`` truncates the prompt from the left so the response is kept whole.
    """
    prompt_text = render_prompt(tokenizer, prompt, system)
    prompt_ids = _ids(tokenizer, prompt_text)
    response_ids: list[int] = []
    if response is not None:
        if close_turn:
            full = tokenizer.apply_chat_template(_messages(prompt, system, response), tokenize=False)
            if not full.startswith(prompt_text):
                raise ChatTemplateError(
                    "the chat template renders the prompt differently with and without the answer; "
                    "cannot locate the response tokens")
            tail = full[len(prompt_text):]
        else:
            tail = response
        response_ids = _ids(tokenizer, tail)
    if max_length is not None and len(prompt_ids) + len(response_ids) > max_length:
        keep = max_length - len(response_ids)
        if keep < 1:
            response_ids = response_ids[:max_length - 1]
            keep = 1
        prompt_ids = prompt_ids[-keep:]
    ids = prompt_ids + response_ids
    return ChatEncoding(ids, [0] * len(prompt_ids) + [1] * len(response_ids), len(prompt_ids))


def collate(encodings: Sequence[ChatEncoding], pad_id: int,
            padding_side: Literal["left", "right"]) -> dict[str, torch.Tensor]:
    """Pad a batch. Returns input_ids, attention_mask, response_mask and position_ids.

    Position ids count only real tokens, so left padding does not shift a prompt's positions.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if not encodings:
        raise ValueError("cannot collate an empty batch")
    width = max(len(e.input_ids) for e in encodings)
    ids, attn, resp = [], [], []
    for e in encodings:
        pad = width - len(e.input_ids)
        if padding_side == "left":
            ids.append([pad_id] * pad + e.input_ids)
            attn.append([0] * pad + [1] * len(e.input_ids))
            resp.append([0] * pad + e.response_mask)
        else:
            ids.append(e.input_ids + [pad_id] * pad)
            attn.append([1] * len(e.input_ids) + [0] * pad)
            resp.append(e.response_mask + [0] * pad)
    attention = torch.tensor(attn, dtype=torch.long)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": attention,
            "response_mask": torch.tensor(resp, dtype=torch.long), "position_ids": positions}
