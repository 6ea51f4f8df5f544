"""Direct request: the plain harmful request in the chat template, greedy answer, judged as is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crl_core.attacks.common import AttackItem, AttackResult, register_attack
from crl_core.attacks.prefill_attack import PrefillConfig, answer_and_judge, generation_budget

__all__ = ["DirectRequestConfig", "direct_request"]


@dataclass
class DirectRequestConfig(PrefillConfig):
    """Same budget as the prefill attack (greedy tokens, batch size)."""


def direct_request(model, tokenizer, items: Sequence[AttackItem], config: DirectRequestConfig | None = None
                   ) -> list[AttackResult]:
    return answer_and_judge(model, tokenizer, items, config or DirectRequestConfig(), prefill=False)


register_attack("direct", direct_request, DirectRequestConfig, generation_budget(DirectRequestConfig),
                plain_answers=True)
