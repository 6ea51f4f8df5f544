"""Attacks on a chat model. Each takes ``(model, tokenizer, items, config)`` and returns one
:class:`AttackResult` per :class:`AttackItem`; each registers itself (``register_attack``) in
``crl_core.registry.ATTACKS`` with its config class and how an evaluation budget becomes that config:

* ``direct``: the plain request.
* ``prefill``: the assistant turn starts with the item's target (the affirmative opening).
* ``embedding`` (knowledge-eliciting), ``embedding_full_target``, ``embedding_forcing_control``:
  the soft-prompt attack of docs/method.md in its three forms (see ``embedding_attack``).
* ``latent``: a learned perturbation of the residual stream after one decoder block.
* ``gcg``: token-level GCG through ``nanogcg``.
"""

from crl_core.attacks.common import Attack, AttackItem, AttackResult, register_attack, summarise
from crl_core.attacks.direct_request import DirectRequestConfig, direct_request
from crl_core.attacks.embedding_attack import PRESETS, EmbeddingAttackConfig, embedding_attack, preset
from crl_core.attacks.gcg_attack import GCGAttackConfig, gcg_attack
from crl_core.attacks.latent_attack import LatentAttackConfig, latent_attack
from crl_core.attacks.prefill_attack import PrefillConfig, prefill_attack

__all__ = ["Attack", "AttackItem", "AttackResult", "register_attack", "summarise", "DirectRequestConfig",
           "direct_request", "PRESETS", "EmbeddingAttackConfig", "embedding_attack", "preset", "PrefillConfig",
           "prefill_attack", "LatentAttackConfig", "latent_attack", "GCGAttackConfig", "gcg_attack"]
