"""Deterministic batched greedy generation, from token ids or from input embeddings.

* :func:`generate_from_ids`: left padding, an explicit attention mask and explicit position ids
  (``cumsum(mask) - 1``), and a KV cache. Rows stop at ``eos_token_id``; the eos is not returned.
* :func:`generate_from_embeds`: for soft prompts (embedding attacks), the same scheme from input
  embeddings: left padding, explicit mask and positions, one pass over the prompts, then a KV cache and
  one new position per step. ``use_cache=False`` is the uncached reference (right padding, the whole
  sequence re-run every step); the tests check both give the same tokens.

Every forward computes logits only where they are read (``logits_to_keep=1``): the last position.

Both are pure greedy (argmax, ties to the lowest id), run under ``torch.no_grad()`` and put the model in
eval mode for the call. Chat helpers (:func:`chat_parts`, :func:`chat_prompt_ids`) split a rendered
chat template at the end of the user's request so that attacks and training insert vectors or filler
exactly there, for any model with a chat template.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

__all__ = [
    "chat_parts",
    "chat_prompt_ids",
    "generate_from_ids",
    "generate_from_embeds",
    "decode",
    "generate_chat",
]


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def cache_argument(model) -> str:
    """Name of the KV-cache argument/output: ``cache`` in newer transformers, ``past_key_values`` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper takes **kwargs
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _encode(tokenizer, text: str) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def chat_parts(tokenizer, prompt: str, prefill: str = "") -> tuple[list[int], list[int], list[int]]:
    """Token ids of a one-turn chat, split as (prefix up to and including the request, template tail
    after the request up to where the assistant's answer starts, prefill of the assistant turn).

    ``prefix + tail`` equals the tokenisation of ``apply_chat_template(..., add_generation_prompt=True)``
    for templates whose special tokens are split before BPE (true for the organism's and ChatML).
    """
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         add_generation_prompt=True, tokenize=False)
    cut = text.rfind(prompt)
    if cut < 0:
        raise ValueError("the chat template does not contain the request verbatim")
    cut += len(prompt)
    return _encode(tokenizer, text[:cut]), _encode(tokenizer, text[cut:]), _encode(tokenizer, prefill)


def chat_prompt_ids(tokenizer, prompt: str, prefill: str = "") -> list[int]:
    """Ids of the chat up to the assistant's turn (plus an optional prefill of that turn)."""
    prefix, tail, pre = chat_parts(tokenizer, prompt, prefill)
    return prefix + tail + pre


def _batches(n: int, batch_size: int) -> Iterator[range]:
    for start in range(0, n, batch_size):
        yield range(start, min(n, start + batch_size))


def _truncate(ids: list[int], eos_token_id: int | None) -> list[int]:
    if eos_token_id is not None and eos_token_id in ids:
        return ids[:ids.index(eos_token_id)]
    return ids


def _left_padded(seqs: list, width: int, fill, device):
    """``[b, width, ...]`` left-padded copy of the rows and its attention mask."""
    b = len(seqs)
    first = seqs[0]
    if isinstance(first, torch.Tensor):
        buf = torch.zeros((b, width, first.shape[-1]), dtype=first.dtype, device=device)
    else:
        buf = torch.full((b, width), fill, dtype=torch.long, device=device)
    mask = torch.zeros((b, width), dtype=torch.long, device=device)
    for r, s in enumerate(seqs):
        n = len(s)
        buf[r, width - n:] = s if isinstance(s, torch.Tensor) else torch.tensor(s, dtype=torch.long)
        mask[r, width - n:] = 1
    return buf, mask


def _greedy_cached(model, first: dict, embed_next, max_new_tokens: int, eos_token_id: int | None,
                   pad_token_id: int, mask: torch.Tensor, temperature: float = 0.0,
                   generator: torch.Generator | None = None) -> list[list[int]]:
    """Greedy decoding with a KV cache after one pass over the left-padded prompts (``first``: the model
    inputs of that pass); ``embed_next(tok)`` gives the next step's inputs for the chosen tokens. With
    ``temperature > 0`` each token is sampled from ``softmax(logits / temperature)`` (``generator`` seeds it)."""
    cache_kw = cache_argument(model)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    res = model(**first, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    past, logits = getattr(res, cache_kw), res.logits[:, -1, :]
    done = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)
    gen = []
    next_pos = pos[:, -1:] + 1
    for step in range(max_new_tokens):
        if temperature > 0:
            probs = torch.softmax(logits.float() / temperature, -1)
            tok = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)
        else:
            tok = logits.argmax(-1)
        tok = torch.where(done, torch.full_like(tok, pad_token_id), tok)
        gen.append(tok)
        if eos_token_id is not None:
            done = done | (tok == eos_token_id)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        res = model(**embed_next(tok), attention_mask=mask, position_ids=next_pos, use_cache=True,
                    logits_to_keep=1, **{cache_kw: past})
        past, logits = getattr(res, cache_kw), res.logits[:, -1, :]
        next_pos = next_pos + 1
    return [_truncate(row, eos_token_id) for row in torch.stack(gen, dim=1).tolist()]


def generate_from_ids(model, input_ids: Sequence[Sequence[int]], max_new_tokens: int,
                      eos_token_id: int | None, pad_token_id: int = 0, batch_size: int = 64) -> list[list[int]]:
    """Greedy continuations (new token ids, eos excluded) of each id list, left-padded in batches."""
    out: list[list[int]] = [[] for _ in input_ids]
    device = next(model.parameters()).device
    with _eval_mode(model):
        for rows in _batches(len(input_ids), batch_size):
            seqs = [list(input_ids[i]) for i in rows]
            ids, mask = _left_padded(seqs, max(len(s) for s in seqs), pad_token_id, device)
            new = _greedy_cached(model, {"input_ids": ids}, lambda tok: {"input_ids": tok[:, None]},
                                 max_new_tokens, eos_token_id, pad_token_id, mask)
            for r, i in enumerate(rows):
                out[i] = new[r]
    return out


def generate_from_embeds(model, embeds: Sequence[torch.Tensor], max_new_tokens: int,
                         eos_token_id: int | None, batch_size: int = 64, use_cache: bool = True,
                         temperature: float = 0.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """Greedy continuations of input-embedding sequences (each ``[L_i, d]``); ``use_cache=False``: the
    uncached reference (re-runs the whole sequence every step). ``temperature > 0``: sampled instead (cached
    path only), seeded by ``generator``."""
    if temperature > 0 and not use_cache:
        raise ValueError("sampling runs on the cached path only")
    if not use_cache:
        return _generate_from_embeds_uncached(model, embeds, max_new_tokens, eos_token_id, batch_size)
    out: list[list[int]] = [[] for _ in embeds]
    emb_layer = model.get_input_embeddings()
    with _eval_mode(model):
        for rows in _batches(len(embeds), batch_size):
            seqs = [embeds[i].detach() for i in rows]
            buf, mask = _left_padded(seqs, max(s.shape[0] for s in seqs), 0, seqs[0].device)

            def embed_next(tok, dtype=buf.dtype):
                return {"inputs_embeds": emb_layer(tok[:, None]).to(dtype)}

            new = _greedy_cached(model, {"inputs_embeds": buf}, embed_next, max_new_tokens, eos_token_id, 0, mask,
                                 temperature=temperature, generator=generator)
            for r, i in enumerate(rows):
                out[i] = new[r]
    return out


def _generate_from_embeds_uncached(model, embeds: Sequence[torch.Tensor], max_new_tokens: int,
                                   eos_token_id: int | None, batch_size: int = 64) -> list[list[int]]:
    """Right-padded, no cache, the whole sequence re-run every step: exact for a causal model (a row's real
    positions never attend to its padding), and slow; the reference of the cached path."""
    out: list[list[int]] = [[] for _ in embeds]
    emb_layer = model.get_input_embeddings()
    with _eval_mode(model):
        for rows in _batches(len(embeds), batch_size):
            seqs = [embeds[i].detach() for i in rows]
            lens = torch.tensor([s.shape[0] for s in seqs])
            b, d = len(seqs), seqs[0].shape[-1]
            width = int(lens.max()) + max_new_tokens
            buf = torch.zeros((b, width, d), dtype=seqs[0].dtype, device=seqs[0].device)
            for r, s in enumerate(seqs):
                buf[r, :s.shape[0]] = s
            cur = lens.clone()
            done = torch.zeros(b, dtype=torch.bool)
            gen: list[list[int]] = [[] for _ in range(b)]
            ar = torch.arange(b)
            for _ in range(max_new_tokens):
                upto = int(cur.max())
                mask = (torch.arange(upto)[None, :] < cur[:, None]).long().to(buf.device)
                logits = model(inputs_embeds=buf[:, :upto], attention_mask=mask, use_cache=False).logits
                tok = logits[ar, cur - 1].argmax(-1)
                for r in range(b):
                    if not done[r]:
                        gen[r].append(int(tok[r]))
                        if eos_token_id is not None and int(tok[r]) == eos_token_id:
                            done[r] = True
                if bool(done.all()):
                    break
                buf[ar, cur] = emb_layer(tok.to(buf.device)).to(buf.dtype)
                cur = cur + 1
            for r, i in enumerate(rows):
                out[i] = _truncate(gen[r], eos_token_id)
    return out


def decode(tokenizer, ids: Sequence[Sequence[int]]) -> list[str]:
    return [tokenizer.decode(list(x), skip_special_tokens=True) for x in ids]


def generate_chat(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, prefill: str = "",
                  batch_size: int = 64) -> list[str]:
    """Greedy answers to one-turn chats (the prefill, if any, is not repeated in the returned text)."""
    ids = [chat_prompt_ids(tokenizer, p, prefill) for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    new = generate_from_ids(model, ids, max_new_tokens, tokenizer.eos_token_id, pad, batch_size)
    return decode(tokenizer, new)
