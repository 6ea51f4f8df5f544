"""Prefilling attack: the assistant's turn starts with the item's target (the affirmative opening);
the judged text is ``target + continuation``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crl_core.attacks.common import AttackItem, AttackResult, judge_fields, register_attack
from crl_core.config import ConfigBase, config_field
from crl_core.generation import chat_prompt_ids, decode, generate_from_ids

__all__ = ["PrefillConfig", "prefill_attack", "answer_and_judge", "generation_budget"]


@dataclass
class PrefillConfig(ConfigBase):
    max_new_tokens: int = config_field(24, min=1, max=4096)
    batch_size: int = config_field(128, min=1)


def answer_and_judge(model, tokenizer, items: Sequence[AttackItem], cfg: PrefillConfig, prefill: bool
                     ) -> list[AttackResult]:
    """Greedy answers to the items' prompts, judged. With ``prefill`` the assistant turn starts with the
    item's target and the judged text is ``target + continuation``; without, the answer alone."""
    ids = [chat_prompt_ids(tokenizer, it.prompt, it.target if prefill else "") for it in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    new = generate_from_ids(model, ids, cfg.max_new_tokens, tokenizer.eos_token_id, pad, cfg.batch_size)
    out = []
    for it, g in zip(items, decode(tokenizer, new)):
        text = it.target + g if prefill else g
        ok, details = judge_fields(it, text)
        out.append(AttackResult(id=it.id, success=ok, generation=text, leakage=details))
    return out


def prefill_attack(model, tokenizer, items: Sequence[AttackItem], config: PrefillConfig | None = None
                   ) -> list[AttackResult]:
    return answer_and_judge(model, tokenizer, items, config or PrefillConfig(), prefill=True)


def generation_budget(config_class: type):
    """``build_config`` of the generation-only attacks: the evaluation's greedy tokens and batch size."""
    return lambda ecfg, variant: config_class(max_new_tokens=ecfg.max_new_tokens, batch_size=ecfg.batch_size)


register_attack("prefill", prefill_attack, PrefillConfig, generation_budget(PrefillConfig))
