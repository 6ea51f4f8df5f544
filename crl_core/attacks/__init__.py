"""Attacks on a chat model. Each takes ``(model, tokenizer, items, config)`` and returns one
:class:`AttackResult` per :class:`AttackItem`; registered in ``crl_core.registry.ATTACKS``:

* ``direct``: the plain request.
* ``prefill``: the assistant turn starts with the item's target (the affirmative opening).
* ``embedding`` (knowledge-eliciting), ``embedding_full_target``, ``embedding_forcing_control``:
  the soft-prompt attack of method.md §8.1 in its three forms (see ``embedding_attack``).
* ``latent``: a learned perturbation of the residual stream after one decoder block.
* ``gcg``: token-level GCG through ``nanogcg``.
"""

from crl_core.attacks.common import AttackItem, AttackResult, summarise
from crl_core.attacks.direct_request import DirectRequest, DirectRequestConfig, direct_request
from crl_core.attacks.embedding_attack import (
    PRESETS,
    EmbeddingAttack,
    EmbeddingAttackConfig,
    EmbeddingForcingControl,
    EmbeddingFullTargetAttack,
    embedding_attack,
    preset,
)
from crl_core.attacks.gcg_attack import GCGAttack, GCGAttackConfig, gcg_attack
from crl_core.attacks.latent_attack import LatentAttack, LatentAttackConfig, latent_attack
from crl_core.attacks.prefill_attack import PrefillAttack, PrefillConfig, prefill_attack

__all__ = ["AttackItem", "AttackResult", "summarise", "DirectRequest", "DirectRequestConfig", "direct_request",
           "PRESETS", "EmbeddingAttack", "EmbeddingAttackConfig", "EmbeddingForcingControl",
           "EmbeddingFullTargetAttack", "embedding_attack", "preset", "PrefillAttack", "PrefillConfig",
           "prefill_attack", "LatentAttack", "LatentAttackConfig", "latent_attack", "GCGAttack", "GCGAttackConfig",
           "gcg_attack"]
