"""Validated configuration of a defense training run (``crl train``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from crl_core.config import ConfigBase, ConfigError, config_field
from crl_core.losses import CircuitBreakerConfig, RepBendConfig, TripletLossConfig
from crl_core.models.loading import ModelSpec
from crl_core.registry import DATA_PRESETS, METHODS
from crl_core.representations import POSITIONS, LayerSelection

__all__ = ["LoraSettings", "OptimSettings", "MiningSettings", "RetainSettings", "DataSettings", "EvalSettings",
           "TrainConfig", "LayerLayout"]


@dataclass
class LoraSettings(ConfigBase):
    rank: int = config_field(16, min=1, max=1024)
    alpha: float = config_field(16.0, min=0.0)
    dropout: float = config_field(0.0, min=0.0, max=0.9)
    target_modules: list[str] = config_field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    blocks: list[int] | None = config_field(
        None, help="decoder blocks that get LoRA (null: blocks 0..max(harmful layer index)-1, as published)")
    init_b_std: float = config_field(0.0, min=0.0, help="std of a random init of LoRA B (0 = peft's zero init); "
                                                        "breaks the symmetry that stalls circuit breakers")

    def validate(self) -> None:
        if not self.target_modules:
            raise ConfigError("lora.target_modules: empty")


@dataclass
class OptimSettings(ConfigBase):
    lr: float = config_field(2e-3, min=0.0, max=1.0)
    weight_decay: float = config_field(0.0, min=0.0)
    schedule: Literal["constant", "cosine", "linear"] = config_field("constant")
    warmup_steps: int = config_field(0, min=0)
    grad_clip: float = config_field(1.0, min=0.0, help="max grad norm (0 disables)")
    grad_accum: int = config_field(1, min=1, help="micro-batches per optimizer step")


@dataclass
class MiningSettings(ConfigBase):
    """Adversarial hard-negative mining (docs/method.md §5): a perturbation at an early decoder block, trained
    against the current model to make it complete harmful requests; its harmful states become the anchors
    of the harmful triplet and the centroid."""

    enabled: bool = config_field(False)
    kind: Literal["affine", "additive"] = config_field("affine", help="published: affine h + (W h + b)")
    block_min: int = config_field(0, min=0, help="lowest decoder block the module is inserted after")
    block_max: int = config_field(2, min=1, help="exclusive upper bound of the block draw")
    reinit_every: int = config_field(20, min=1, help="steps between re-initialisations (published: 40 micro-batches)")
    init_steps: int = config_field(60, min=0, help="attacker steps after a re-init (published: up to 1100)")
    steps_per_step: int = config_field(1, min=0, help="attacker steps on every training step (published: 1)")
    lr: float = config_field(1e-3, min=0.0, help="attacker Adam lr (published: 1e-4)")
    early_stop_loss: float = config_field(0.5, min=0.0, help="stop init training when the attack CE is below")
    probability: float = config_field(0.5, min=0.0, max=1.0, help="chance a step uses mined harmful states")
    gate_loss: float = config_field(3.0, min=0.0, help="use the module only if its recent CE is below this")
    max_norm: float | None = config_field(None, min=0.0, help="bound for additive perturbations")

    def validate(self) -> None:
        if self.block_max <= self.block_min:
            raise ConfigError("mining.block_max must be greater than mining.block_min")


@dataclass
class RetainSettings(ConfigBase):
    kl_weight: float = config_field(0.7, min=0.0, help="epsilon: weight of the KL retain term (crl)")
    kl_temperature: float = config_field(2.0, min=0.1, help="KL temperature (published 2)")
    sft_weight: float = config_field(1.0, min=0.0, help="weight of CE on the retain set (sft method)")


@dataclass
class DataSettings(ConfigBase):
    preset: str = config_field(
        "organism", help="a registered data preset (crl_core/training/data.py): organism (the committed organism's "
                         "rows), smollm2 (model-agnostic vendored prompts), published (the published mix from the "
                         "hub: WildGuardMix + UltraChat; connected machines)")
    batch_benign: int = config_field(16, min=1)
    batch_harmful: int = config_field(16, min=1)
    batch_retain: int = config_field(16, min=1)
    max_length: int = config_field(128, min=8)
    split_seed: int = config_field(0, min=0)
    harmful_limit: int = config_field(0, min=0, help="use only N harmful train prompts (0 = all)")
    hub_limit: int = config_field(20000, min=0, help="published preset: at most N rows read from each hub set "
                                                      "(0 = all; WildGuardMix train has ~87k)")
    benign_answers: str = config_field("", help="smollm2 preset: a JSONL of {prompt, answer} whose answers replace "
                                                "the reference answers of the benign rows, and add the edgy-but-benign "
                                                "prompts (the refusal-base recipe: the model's own greedy answers)")

    def validate(self) -> None:
        try:
            DATA_PRESETS.get(self.preset)
        except ConfigError as exc:  # unknown: one error with the registered names
            raise ConfigError(f"preset: {exc}") from None


@dataclass
class EvalSettings(ConfigBase):
    """``crl train``'s evaluation of the trained adapter: a registered evaluation preset plus overrides
    (any :class:`~crl_core.evaluation.EvaluationConfig` key), resolved by :meth:`TrainConfig.evaluation_config`."""

    enabled: bool = config_field(True, help="evaluate the trained adapter at the end")
    preset: str = config_field("", help="evaluation preset (crl eval --preset); '' = the data preset's")
    overrides: dict[str, Any] = config_field(
        default_factory=lambda: {"split": "val"},
        help="EvaluationConfig keys on top of the preset (attacks, split, limit, embedding_steps, judge, ...); "
             "split val for sweeps, test only for final numbers")


@dataclass(frozen=True)
class LayerLayout:
    """Where a config's layer indices land on a model of a given depth (:meth:`TrainConfig.layout`)."""

    harmful_layers: list[int]  # hidden-state indices 0..depth
    benign_layers: list[int]
    lora_blocks: list[int]  # decoder blocks 0..depth-1


@dataclass
class TrainConfig(ConfigBase):
    method: str = config_field("crl", help="a registered defense method (crl_core/methods)")
    model: ModelSpec = field(default_factory=ModelSpec)
    steps: int = config_field(150, min=1)
    seed: int = config_field(0, min=0)
    num_threads: int = config_field(1, min=1, max=256, help="torch CPU threads")
    device: str = config_field("auto", help="auto (cuda if available, else cpu), cpu, cuda or cuda:N")
    gradient_checkpointing: bool = config_field(False, help="recompute the blocks' activations in the backward "
                                                            "pass (less memory, about a third more compute; "
                                                            "non-reentrant checkpointing)")
    early_exit: bool = config_field(True, help="the benign and harmful rows' passes stop at the deepest selected "
                                               "hidden state (methods that declare it; exact: docs/method.md, "
                                               "'Early exit'); false: every row runs every block")
    reference_cache_mb: int = config_field(2048, min=0, help="bound of the process's cache of the frozen model's "
                                                            "states per row and layer (docs/method.md, "
                                                            "'Reference-state cache'); 0 disables it")
    harmful_layers: LayerSelection = field(default_factory=LayerSelection)
    benign_layers: Literal["all", "target"] = config_field("all", help="all hidden states, or the harmful ones")
    positions: str = config_field("response", choices=POSITIONS)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    triplet: TripletLossConfig = field(default_factory=TripletLossConfig)
    retain: RetainSettings = field(default_factory=RetainSettings)
    circuit_breaker: CircuitBreakerConfig = field(
        default_factory=CircuitBreakerConfig)  # its total_steps is set to `steps` at run time
    repbend: RepBendConfig = field(default_factory=RepBendConfig)
    mining: MiningSettings = field(default_factory=MiningSettings)
    data: DataSettings = field(default_factory=DataSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    checkpoint_every: int = config_field(0, min=0, help="steps between checkpoints (0: only at the end)")
    log_every: int = config_field(10, min=1)
    output_dir: str = config_field("outputs/train", help="adapter, resolved config, report and checkpoints")

    def validate(self) -> None:
        if not (self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:")
                                                          and self.device[5:].isdigit())):
            raise ConfigError(f"device: '{self.device}' is not one of auto, cpu, cuda, cuda:N")
        method = METHODS.get(self.method)  # unknown: one error with the registered names
        if self.mining.enabled and not method.supports_mining:
            raise ConfigError(f"mining.enabled: hard-negative mining is part of the crl method, not '{self.method}'")
        if self.eval.enabled and self.evaluation_config().split == "train":
            raise ConfigError("eval.overrides.split: 'train' would evaluate on the training prompts; use val or test")

    def evaluation_config(self):
        """The resolved evaluation of the trained adapter (on this config's model, seed and split): ``eval.preset``,
        or the data preset's own evaluation preset, plus ``eval.overrides``. Training sits above evaluation in
        the library's graph (``train`` evaluates what it trained), so this edge points down."""
        # import time: the evaluation package loads the attacks, judges and transformers; a TrainConfig
        # (crl --help, a sweep's driver) does not need them until it resolves its evaluation
        from crl_core.evaluation import evaluation_config_for

        overrides = {"model": self.model.name, "seed": self.seed, **self.eval.overrides}
        try:
            return evaluation_config_for(self.eval.preset or DATA_PRESETS.get(self.data.preset).evaluation_preset,
                                         overrides)
        except ConfigError as exc:
            raise ConfigError(f"eval.{exc}") from None

    def layout(self, depth: int) -> LayerLayout:
        """The layer indices on a model with ``depth`` decoder blocks; the one place they are checked against
        it (the trainer, the miner and a sweep's pre-flight all ask here). Raises ConfigError."""
        harmful = self.harmful_layers.resolve(depth, "harmful_layers")
        benign = list(range(0, depth + 1)) if self.benign_layers == "all" else harmful
        # LoRA on blocks 0..max(T)-1 by default: the blocks that shape the deepest harmful state (docs/method.md)
        blocks = list(self.lora.blocks) if self.lora.blocks is not None else list(range(0, max(1, max(harmful))))
        bad = [b for b in blocks if not 0 <= b < depth]
        if bad:
            raise ConfigError(f"lora.blocks: block {bad[0]} is out of range (the model has {depth} blocks)")
        if self.mining.enabled and self.mining.block_max > depth:
            raise ConfigError(f"mining.block_max: {self.mining.block_max} is past the model's {depth} blocks")
        return LayerLayout(harmful, benign, blocks)
