"""Direct request: the plain harmful request in the chat template, greedy answer, judged as is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crl_core.attacks.common import AttackItem, AttackResult, judge_fields
from crl_core.config import ConfigBase, config_field
from crl_core.generation import generate_chat
from crl_core.registry import ATTACKS

__all__ = ["DirectRequestConfig", "DirectRequest", "direct_request"]


@dataclass
class DirectRequestConfig(ConfigBase):
    max_new_tokens: int = config_field(24, min=1, max=4096)
    batch_size: int = config_field(128, min=1)


def direct_request(model, tokenizer, items: Sequence[AttackItem], config: DirectRequestConfig | None = None
                   ) -> list[AttackResult]:
    cfg = config or DirectRequestConfig()
    gens = generate_chat(model, tokenizer, [it.prompt for it in items], cfg.max_new_tokens,
                         batch_size=cfg.batch_size)
    out = []
    for it, g in zip(items, gens):
        ok, details = judge_fields(it, g)
        out.append(AttackResult(id=it.id, success=ok, generation=g, leakage=details))
    return out


@ATTACKS.register("direct")
class DirectRequest:
    config_class = DirectRequestConfig
    target_kind = "opening"  # the target is not used

    def __call__(self, model, tokenizer, items, config=None):
        return direct_request(model, tokenizer, items, config)
