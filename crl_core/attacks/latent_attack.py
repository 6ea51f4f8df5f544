"""Latent-perturbation attack: a vector added to the residual stream after one decoder block,
trained (Adam) to make the model produce the item's target; success is judged on the greedy
generation under the perturbation.

Like the embedding attack, its default target is the affirmative opening only (knowledge-eliciting):
the attacker never sees the payload, so success means the model leaked what it knows. One
perturbation per prompt (``rows = batch``), optionally bounded by ``max_norm_ratio`` x the mean norm
of that block's clean hidden states. By default delta is added only from the end of the request on
(the template tail, where the organism saw filler, and the answer): added everywhere it overwrites
the request itself and the model answers with a generic payload (measured: 0/48 on the undefended
organism). The same :class:`~crl_core.perturbation.LayerPerturbation` is
what hard-negative mining trains during defense training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from crl_core.attacks.common import AttackItem, AttackResult, judge_fields, register_attack
from crl_core.config import ConfigBase, ConfigError, config_field, to_dict
from crl_core.generation import _encode, chat_parts, chat_prompt_ids, decode, generate_from_ids
from crl_core.perturbation import LayerPerturbation, attach_perturbation, decoder_layers, frozen_parameters

__all__ = ["LatentAttackConfig", "latent_attack", "target_batch", "budget"]


@dataclass
class LatentAttackConfig(ConfigBase):
    block: int = config_field(1, min=0, help="decoder block whose output is perturbed (hidden_states[block+1])")
    steps: int = config_field(100, min=1, max=100_000)
    lr: float = config_field(3e-2, min=0.0)
    max_norm_ratio: float | None = config_field(
        None, min=0.0, help="bound on |delta| as a multiple of the mean clean hidden-state norm (None: free)")
    early_stop_loss: float = config_field(0.05, min=0.0, help="stop when every row's target CE is below this")
    positions: str = config_field("after_request", choices=("after_request", "template_tail", "all"),
                                  help="where delta is added: from the end of the request on (template tail and "
                                       "answer; the request's own states stay intact), only on the template "
                                       "tail, or every position")
    checkpoints: list[int] = config_field(default_factory=lambda: [25, 50, 100])
    max_new_tokens: int = config_field(24, min=1)
    batch_size: int = config_field(32, min=1)
    seed: int = config_field(0, min=0)

    def validate(self) -> None:
        if any(c < 1 for c in self.checkpoints):
            raise ConfigError("checkpoints: steps must be >= 1")


def target_batch(tokenizer, items: Sequence[AttackItem]) -> dict[str, torch.Tensor]:
    """Right-padded [prompt + target] ids with labels only on the target tokens, and a mask of the
    positions after the request (``after_request``)."""
    seqs, labels, starts, prompt_lens = [], [], [], []
    for it in items:
        prefix, tail, _ = chat_parts(tokenizer, it.prompt)
        p = prefix + tail
        t = _encode(tokenizer, it.target)
        if not t:
            raise ValueError(f"item {it.id}: empty target")
        seqs.append(p + t)
        labels.append([-100] * len(p) + t)
        starts.append(len(prefix))
        prompt_lens.append(len(p))
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    after = torch.zeros((len(seqs), width), dtype=torch.bool)
    tail_mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for r, (s, lbl) in enumerate(zip(seqs, labels)):
        ids[r, :len(s)] = torch.tensor(s)
        lab[r, :len(s)] = torch.tensor(lbl)
        mask[r, :len(s)] = 1
        after[r, starts[r]:len(s)] = True
        tail_mask[r, starts[r]:prompt_lens[r]] = True
    return {"input_ids": ids, "attention_mask": mask, "labels": lab, "after_request": after,
            "template_tail": tail_mask}


def _left_padded_after_request(tokenizer, items: Sequence[AttackItem]) -> torch.Tensor:
    """The ``after_request`` mask in the left-padded layout :func:`generate_from_ids` uses."""
    parts = [chat_parts(tokenizer, it.prompt) for it in items]
    lens = [len(a) + len(b) for a, b, _ in parts]
    width = max(lens)
    after = torch.zeros((len(items), width), dtype=torch.bool)
    for r, ((prefix, _, _), n) in enumerate(zip(parts, lens)):
        after[r, width - n + len(prefix):] = True
    return after


def _row_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels, ignore_index=-100,
                                           reduction="none")
    counts = (shift_labels != -100).sum(-1).clamp(min=1)
    return ce.sum(-1) / counts


def _generate(model, tokenizer, items, cfg, pert: LayerPerturbation) -> list[str]:
    ids = [chat_prompt_ids(tokenizer, it.prompt) for it in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if cfg.positions != "all":
        pert.position_mask = _left_padded_after_request(tokenizer, items).to(next(model.parameters()).device)
        pert.edit_new_tokens = cfg.positions == "after_request"
    new = generate_from_ids(model, ids, cfg.max_new_tokens, tokenizer.eos_token_id, pad, batch_size=len(items))
    return decode(tokenizer, new)


def latent_attack(model, tokenizer, items: Sequence[AttackItem], config: LatentAttackConfig | None = None
                  ) -> list[AttackResult]:
    cfg = config or LatentAttackConfig()
    n_blocks = len(decoder_layers(model))
    if cfg.block >= n_blocks:
        raise ConfigError(f"latent attack block {cfg.block} is past the model's depth ({n_blocks} blocks)")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    checkpoints = sorted({c for c in cfg.checkpoints if c <= cfg.steps} | {cfg.steps})
    results: list[AttackResult] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(items), cfg.batch_size):
            batch = list(items[start:start + cfg.batch_size])
            enc = {k: v.to(device) for k, v in target_batch(tokenizer, batch).items()}
            pert = LayerPerturbation(model.config.hidden_size, "additive", rows=len(batch), init="zero",
                                     generator=gen).to(device)
            if cfg.max_norm_ratio is not None:
                with torch.no_grad():
                    hs = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                               output_hidden_states=True).hidden_states[cfg.block + 1]
                    m = enc["attention_mask"].bool()
                    pert.max_norm = float(hs[m].norm(dim=-1).mean()) * cfg.max_norm_ratio
            opt = torch.optim.Adam(pert.parameters(), lr=cfg.lr)
            success_at: list[dict[int, bool]] = [{} for _ in batch]
            texts = [""] * len(batch)
            ever = [False] * len(batch)
            details: list[dict | None] = [None] * len(batch)
            steps_used = cfg.steps
            losses = torch.zeros(len(batch))
            with frozen_parameters(model), attach_perturbation(model, cfg.block, pert):
                for step in range(1, cfg.steps + 1):
                    if cfg.positions == "after_request":
                        pert.position_mask = enc["after_request"]
                    elif cfg.positions == "template_tail":
                        pert.position_mask = enc["template_tail"]
                    out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                    losses = _row_ce(out.logits, enc["labels"])
                    opt.zero_grad(set_to_none=True)
                    losses.sum().backward()
                    opt.step()
                    pert.project_()
                    stop = bool((losses.detach() < cfg.early_stop_loss).all())
                    if step in checkpoints or stop:
                        for i, text in enumerate(_generate(model, tokenizer, batch, cfg, pert)):
                            ok, det = judge_fields(batch[i], text)
                            if ok and not ever[i]:
                                ever[i], texts[i], details[i] = True, text, det
                            elif not ever[i]:
                                texts[i], details[i] = text, det
                            for c in checkpoints:
                                if c >= step:
                                    success_at[i][c] = ever[i]
                                elif c not in success_at[i]:
                                    success_at[i][c] = False
                    if stop:
                        steps_used = step
                        break
            for i, it in enumerate(batch):
                results.append(AttackResult(id=it.id, success=ever[i], generation=texts[i], leakage=details[i],
                                            steps_used=steps_used, success_at=success_at[i],
                                            final_loss=float(losses[i].detach())))
    finally:
        model.train(was_training)
    return results


def budget(ecfg, variant: str) -> LatentAttackConfig:
    """The evaluation's ``latent`` section with its greedy tokens, batch size and seed."""
    return LatentAttackConfig(**to_dict(ecfg.latent), max_new_tokens=ecfg.max_new_tokens, batch_size=ecfg.batch_size,
                              seed=ecfg.seed)


register_attack("latent", latent_attack, LatentAttackConfig, budget)
