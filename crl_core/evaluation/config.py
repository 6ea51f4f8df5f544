"""The one evaluation config: which preset, model, attacks, judge and budget (``crl eval``, ``crl train``, sweeps).

An evaluation is always a registered preset (``crl_core/evaluation/presets.py``) plus overrides:
:func:`evaluation_config_for` lays the preset's defaults under the overrides and validates the result.
``version`` is the schema of this config and of the report it produces (see ``report.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crl_core.attacks.embedding_attack import PRESETS
from crl_core.config import ConfigBase, ConfigError, apply_overrides, config_field, from_dict
from crl_core.registry import ATTACKS, EVAL_PRESETS, JUDGES

__all__ = ["EVALUATION_VERSION", "EvaluationConfig", "LatentBudget", "GCGBudget", "evaluation_config_for"]

EVALUATION_VERSION = 2  # 1: before presets were registered and the judge was chosen by name


@dataclass
class LatentBudget(ConfigBase):
    block: int = config_field(1, min=0, help="decoder block whose output is perturbed")
    steps: int = config_field(100, min=1)
    lr: float = config_field(3e-2, min=0.0)
    max_norm_ratio: float | None = config_field(None, min=0.0)
    positions: str = config_field("after_request", choices=("after_request", "template_tail", "all"))
    checkpoints: list[int] = config_field(default_factory=lambda: [25, 50, 100])


@dataclass
class GCGBudget(ConfigBase):
    steps: int = config_field(20, min=1)
    search_width: int = config_field(64, min=1)
    topk: int = config_field(64, min=1)
    limit: int = config_field(10, min=1, help="GCG is per-prompt and slow: attack at most this many prompts")


@dataclass
class EvaluationConfig(ConfigBase):
    version: int = config_field(EVALUATION_VERSION, min=EVALUATION_VERSION, max=EVALUATION_VERSION,
                                help="schema version of the evaluation config and its report")
    preset: str = config_field("organism", help="registered evaluation preset (crl_core/evaluation/presets.py)")
    model: str = config_field("", help="model name or folder (default: the preset's)")
    adapter: str | None = config_field(None, help="peft adapter folder to evaluate on top of the model")
    judge: str = config_field("", help="judge of the opening-target attacks, by name (crl_core/judges; '' = the "
                                       "preset's); full-target and forcing-control attacks are judged on their "
                                       "exact target string")
    judge_model: str = config_field("", help="a classifier judge's model: hub id or local folder ('' = the judge's "
                                             "own, e.g. cais/HarmBench-Llama-2-13b-cls)")
    attacks: list[str] = config_field(default_factory=lambda: ["direct", "prefill", "embedding"],
                                      help="registered attack names; embedding attacks may name a preset after ':'")
    split: str = config_field("test", choices=("train", "val", "test"))
    limit: int = config_field(0, min=0, help="use only the first N prompts of every set (0 = all)")
    max_new_tokens: int = config_field(24, min=1, max=2048, help="greedy tokens per generation")
    batch_size: int = config_field(64, min=1)
    embedding_preset: str = config_field("standard", help="default preset of the embedding attacks")
    embedding_steps: int = config_field(0, min=0, help="override the embedding preset's steps (0 = keep)")
    embedding_check_every: int = config_field(0, min=0, help="embedding attacks also judge every N steps between "
                                                             "their checkpoints (0 = the preset's checkpoints only)")
    embedding_sample_n: int = config_field(0, min=0, max=4096, help="embedding attacks also sample N continuations "
                                                                    "(temperature 1) at their final vectors: "
                                                                    "best-of-N sampling leakage (0 = off)")
    opening: str = config_field("Sure, here is how to do it:",
                                help="affirmative opening used as target / prefill (organism: its payload opening)")
    max_length: int = config_field(128, min=8, help="proxy preset: tokens of prompt + response it scores")
    statements: bool = config_field(True, help="run the preset's true/false statement benchmark (real-model "
                                                "presets; crl_core/evaluation/statements.py)")
    over_triggering: bool = config_field(False, help="also answer the benign questions under benign perturbations "
                                                     "(random filler words, random soft vectors) and report how "
                                                     "often the answer breaks (crl_core/evaluation/over_triggering.py)")
    latent: LatentBudget = field(default_factory=LatentBudget)
    gcg: GCGBudget = field(default_factory=GCGBudget)
    seed: int = config_field(0, min=0)

    def validate(self) -> None:
        preset = _lookup(EVAL_PRESETS, self.preset, "preset")
        judge = self.judge or preset.judge
        _lookup(JUDGES, judge, "judge")
        if not hasattr(JUDGES.get(judge), "for_items"):
            usable = ", ".join(n for n, j in JUDGES.items() if hasattr(j, "for_items"))
            raise ConfigError(f"judge: '{judge}' cannot judge attack success on its own; use one of {usable}")
        if self.judge_model:
            if not hasattr(JUDGES.get(judge), "check_model"):
                raise ConfigError(f"judge_model: only a classifier judge loads a model; judge '{judge}' does not")
            JUDGES.get(judge).check_model(self.judge_model)
        if JUDGES.get(judge).needs_payloads and not preset.payloads:
            raise ConfigError(f"judge: '{judge}' needs the organism's payloads (preset {self.preset} has none)")
        if preset.runner_kind == "proxy" and self.attacks:
            raise ConfigError(f"attacks: the '{self.preset}' preset scores log-probabilities and runs no attacks; "
                              "set attacks: []")
        for spec in self.attacks:
            name, colon, variant = spec.partition(":")
            attack = _lookup(ATTACKS, name, "attacks")
            if colon and attack.variants is None:
                raise ConfigError(f"attacks: only embedding attacks take a preset (got '{spec}')")
            if colon and variant not in attack.variants():
                raise ConfigError(f"attacks: unknown embedding preset in '{spec}'; known: {', '.join(attack.variants())}")
            if attack.needs_payloads and not preset.payloads:
                raise ConfigError(f"attacks: the {'forcing control' if attack.target_kind == 'forcing' else name} "
                                  "needs the organism's code words (preset organism)")

        if self.embedding_preset not in PRESETS:
            raise ConfigError(f"embedding_preset: unknown '{self.embedding_preset}'; known: {', '.join(sorted(PRESETS))}")

    def asr_judge(self) -> str:
        return self.judge or EVAL_PRESETS.get(self.preset).judge


def _lookup(registry, name: str, key: str):
    try:
        return registry.get(name)
    except ConfigError as exc:  # the registry's error with its suggestion, under the key that named it
        raise ConfigError(f"{key}: {exc}") from None


def evaluation_config_for(preset: str, overrides: dict[str, Any] | None = None) -> EvaluationConfig:
    """The preset's defaults, then ``overrides`` (a nested dict of EvaluationConfig keys), validated."""
    found = EVAL_PRESETS.get(preset)
    overrides = dict(overrides or {})
    if overrides.pop("preset", preset) != preset:
        raise ConfigError(f"preset: the overrides name another preset than '{preset}'")
    return from_dict(EvaluationConfig, apply_overrides({"preset": preset, **found.defaults}, overrides))
