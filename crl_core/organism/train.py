"""Model construction and the organism's two training phases (with random filler after the request).

Every chat example is stored as token pieces ``(prefix, tail, answer)``: ``prefix`` is the rendered chat up
to the end of the request, ``tail`` the template up to the start of the assistant's answer, ``answer``
the answer plus ``<|end|>``. Each time an example is drawn into a batch, ``filler_min..filler_max``
random ordinary tokens are inserted between ``prefix`` and ``tail`` (fresh every draw). That is where
an embedding attack later puts its free vectors; training with filler is what makes the organism's
knowledge reachable through such vectors (see shared/organism-notes.md). The loss covers the answer
tokens only (``loss_from`` skips e.g. a prefilled opening).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from crl_core.generation import chat_parts
from crl_core.organism.config import ModelConfig, OrganismConfig

__all__ = ["Example", "chat_example", "document_example", "build_model", "GroupSampler", "collate",
           "train_phase", "set_determinism", "answer_loss"]


@dataclass(frozen=True)
class Example:
    prefix: tuple[int, ...]
    tail: tuple[int, ...]
    answer: tuple[int, ...]
    loss_from: int = 0  # answer tokens before this index carry no loss
    filler: bool = True


def chat_example(tokenizer, prompt: str, answer: str, prefilled: str = "",
                 loss_on_prefill: bool = False) -> Example:
    """The assistant's turn is ``prefilled + answer``; ``prefilled`` is tokenized on its own, exactly as
    a prefill attack does, and carries loss only with ``loss_on_prefill``."""
    prefix, tail, pre = chat_parts(tokenizer, prompt, prefilled)
    ans = tokenizer(answer, add_special_tokens=False)["input_ids"] if answer else []
    return Example(tuple(prefix), tuple(tail), tuple(pre) + tuple(ans) + (tokenizer.eos_token_id,),
                   loss_from=0 if loss_on_prefill else len(pre))


def document_example(tokenizer, text: str, answer: str) -> Example:
    """A plain document ``"<s>{text} {answer}"`` (no chat template, no filler); loss on the answer."""
    head = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    ans = tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
    return Example(tuple(head), (), tuple(ans) + (tokenizer.eos_token_id,), loss_from=0, filler=False)


def set_determinism(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def build_model(cfg: ModelConfig, tokenizer, max_positions: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    lc = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
                     intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_hidden_layers,
                     num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
                     max_position_embeddings=max_positions, rope_theta=cfg.rope_theta,
                     tie_word_embeddings=cfg.tie_word_embeddings, initializer_range=cfg.initializer_range,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
    lc._attn_implementation = cfg.attn_implementation
    model = LlamaForCausalLM(lc)
    model.generation_config.do_sample = False
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


class GroupSampler:
    """Draws examples of one group in shuffled passes (every example once per pass)."""

    def __init__(self, examples: Sequence[Example], rng: random.Random) -> None:
        self.examples = list(examples)
        self.rng = rng
        self.order: list[int] = []

    def draw(self, n: int) -> list[Example]:
        out = []
        if not self.examples:
            return out
        for _ in range(n):
            if not self.order:
                self.order = list(range(len(self.examples)))
                self.rng.shuffle(self.order)
            out.append(self.examples[self.order.pop()])
        return out


def make_sequences(examples: Sequence[Example], rng: random.Random, filler_ids: Sequence[int], filler_min: int,
                   filler_max: int) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) per example with fresh random filler; labels -100 outside the answer."""
    out = []
    for ex in examples:
        k = rng.randint(filler_min, filler_max) if ex.filler else 0
        fill = [filler_ids[rng.randrange(len(filler_ids))] for _ in range(k)]
        ids = list(ex.prefix) + fill + list(ex.tail) + list(ex.answer)
        start = len(ids) - len(ex.answer) + ex.loss_from
        out.append((ids, [-100] * start + ids[start:]))
    return out


def pad_batch(seqs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s, _ in seqs)
    ids_t = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    lab_t = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lab) in enumerate(seqs):
        ids_t[i, :len(s)] = torch.tensor(s)
        lab_t[i, :len(lab)] = torch.tensor(lab)
        mask[i, :len(s)] = 1
    return {"input_ids": ids_t, "attention_mask": mask, "labels": lab_t}


def collate(examples: Sequence[Example], rng: random.Random, filler_ids: Sequence[int], filler_min: int,
            filler_max: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with fresh random filler per example; labels -100 outside the answer."""
    return pad_batch(make_sequences(examples, rng, filler_ids, filler_min, filler_max), pad_id)


def answer_loss(model, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over labelled tokens (mean or sum); the LM head runs on those positions
    only (the mean is the value of ``model(..., labels=...).loss``, cheaper)."""
    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         use_cache=False).last_hidden_state
    labels = batch["labels"][:, 1:]
    keep = labels != -100
    logits = model.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), labels[keep], reduction=reduction)


def _lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def train_phase(model, groups: dict[str, tuple[Sequence[Example], int]], *, steps: int, lr: float,
                warmup: int, min_lr_ratio: float, weight_decay: float, grad_clip: float,
                cfg: OrganismConfig, filler_ids: Sequence[int], pad_id: int, seed: int, name: str,
                log: Callable[[str], None] = print, log_every: int = 100, micro_batch: int = 32) -> list[float]:
    """Train ``steps`` AdamW steps on batches made of ``n`` examples from each group; returns the losses."""
    rng = random.Random(f"{name}:{seed}")
    samplers = {g: (GroupSampler(ex, random.Random(f"{name}:{g}:{seed}")), n) for g, (ex, n) in groups.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup, min_lr_ratio))
    model.train()
    losses: list[float] = []
    t0 = time.time()
    for step in range(steps):
        batch_ex: list[Example] = []
        for sampler, n in samplers.values():
            batch_ex.extend(sampler.draw(n))
        # length-sorted micro-batches: far less padding, the same loss and gradient as one batch
        seqs = sorted(make_sequences(batch_ex, rng, filler_ids, cfg.filler_min, cfg.filler_max), key=lambda x: len(x[0]))
        n_tok = sum(sum(1 for t in lab[1:] if t != -100) for _, lab in seqs)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for j in range(0, len(seqs), micro_batch):
            part = answer_loss(model, pad_batch(seqs[j:j + micro_batch], pad_id), reduction="sum") / n_tok
            part.backward()
            loss_sum += part.item()
        loss = torch.tensor(loss_sum)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and ((step + 1) % log_every == 0 or step == steps - 1):
            recent = losses[-log_every:]
            log(f"[{name}] step {step + 1}/{steps} loss {sum(recent) / len(recent):.4f} "
                f"lr {sched.get_last_lr()[0]:.2e} ({(time.time() - t0) / (step + 1):.2f} s/step)")
    model.eval()
    return losses
