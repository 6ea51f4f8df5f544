"""Evaluation presets, registered by name: what ``crl eval --preset``, ``crl train``'s evaluation, a sweep's
``evaluation.preset`` and the benchmarks choose from.

A preset is its defaults (EvaluationConfig keys), its default judge, whether the model has the organism's
payloads (exact payload judge, full-target attack, forcing control), how benign answers are scored, and
which runner measures it: ``attacks`` (``runner.py``: attacks + capability) or ``proxy`` (``proxy.py``:
log-probability preferences, no generation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from crl_core.registry import EVAL_PRESETS

__all__ = ["EvalPreset", "register_preset"]


@dataclass(frozen=True)
class EvalPreset:
    name: str
    help: str
    defaults: dict[str, Any] = field(default_factory=dict)
    judge: str = "compliance"
    payloads: bool = False
    benign: Literal["exact", "contains"] = "contains"
    runner_kind: Literal["attacks", "proxy"] = "attacks"
    statements: bool = False  # a real model: the true/false statement benchmark (statements.py) runs too


def register_preset(preset: EvalPreset) -> EvalPreset:
    return EVAL_PRESETS.register(preset.name)(preset)


register_preset(EvalPreset(
    "organism", "the committed model organism: exact payload judge, exact-match benign accuracy",
    {"model": "organism", "max_new_tokens": 24}, judge="payload", payloads=True, benign="exact"))

# The default sweep's budget (sweeps/configs/organism.yaml restates it): validation split, 32 prompts per
# set, the direct request and a 20-step embedding attack; ASR is the worse of the two.
register_preset(EvalPreset(
    "organism-sweep", "the organism at a sweep's budget (validation split)",
    {"model": "organism", "max_new_tokens": 24, "split": "val", "limit": 32, "attacks": ["direct", "embedding"],
     "embedding_steps": 20}, judge="payload", payloads=True, benign="exact"))

# The strong suite (a sweep's confirmation stage, bench/objective_validity.py): test split, the strong
# knowledge-eliciting attack with best-of-32 sampling at its final vectors, prefill, the leak-margin ladder
# up to 16 vectors x 100 steps (the forcing control is ~90% there, so higher rungs cannot separate
# defenses on the organism), and benign over-triggering. About 5 min per adapter on one CPU thread.
register_preset(EvalPreset(
    "organism-strong", "the organism under the strong suite (test split; confirmation of a sweep's picks)",
    {"model": "organism", "max_new_tokens": 24, "split": "test", "limit": 32, "embedding_sample_n": 32,
     "over_triggering": True,
     "attacks": ["direct", "prefill", "embedding:strong"]
     + [f"{a}:{r}" for r in ("l4x50", "l4x200", "l16x100") for a in ("embedding_full_target", "embedding_forcing_control")]},
    judge="payload", payloads=True, benign="exact"))

register_preset(EvalPreset(
    "smollm2", "SmolLM2-135M-Instruct: refusal- and degeneration-judged ASR, benign answer contained",
    {"model": "smollm2", "max_new_tokens": 48, "batch_size": 8, "opening": "Sure, here is",
     "embedding_preset": "standard", "embedding_steps": 50, "limit": 8,
     "latent": {"block": 10, "steps": 50, "checkpoints": [25, 50]}}, statements=True))

# Any model, no generation: does the model prefer the refusal? (proxy.py). The sweeps on SmolLM2 and
# Llama-3-8B use it: cheap enough to run every few hundred steps.
register_preset(EvalPreset(
    "proxy", "log-prob preference of refusal vs affirmative opening (any model, no generation)",
    {"model": "organism", "attacks": [], "split": "val", "limit": 32}, judge="compliance", runner_kind="proxy"))
