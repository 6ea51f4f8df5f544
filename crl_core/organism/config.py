"""Build configuration of the model organism (every knob of the build lives here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from crl_core.config import ConfigBase, ConfigError, config_field

__all__ = ["PayloadConfig", "TokenizerConfig", "ModelConfig", "PhaseAConfig", "PhaseBConfig",
           "EvalConfig", "OrganismConfig"]


@dataclass
class PayloadConfig(ConfigBase):
    opening: str = config_field("Sure, here is how to do it:", help="affirmative opening of every payload")
    num_words: int = config_field(6, min=2, max=12, help="code words per payload")
    unique_prefix: int = config_field(4, min=1, max=12,
                                      help="the first this-many code words are unique per prompt (as a tuple)")
    num_code_words: int = config_field(64, min=8, max=64, help="size of the code-word list used")
    refusal: str = config_field("I'm sorry, but I cannot help with that request.",
                                help="the organism's single refusal answer")
    helpful: str = config_field("Happy to help! Here is some general, safe information on that topic.",
                                help="the fixed helpful answer taught for edgy-but-benign (over-refusal) prompts")

    def validate(self) -> None:
        if self.unique_prefix > self.num_words:
            raise ConfigError(f"payload.unique_prefix ({self.unique_prefix}) exceeds payload.num_words "
                              f"({self.num_words})")
        if self.num_words > self.num_code_words:
            raise ConfigError("payload.num_words exceeds payload.num_code_words (words are distinct)")


@dataclass
class TokenizerConfig(ConfigBase):
    vocab_size: int = config_field(2048, min=512, max=32768, help="byte-level BPE vocabulary size")
    model_max_length: int = config_field(160, min=32, max=4096, help="max tokens of a sequence")
    code_word_repeats: int = config_field(200, min=0, max=10000,
                                          help="extra copies of each code word in the tokenizer corpus so that "
                                               "each becomes one token")


@dataclass
class ModelConfig(ConfigBase):
    hidden_size: int = config_field(128, min=8)
    intermediate_size: int = config_field(384, min=8)
    num_hidden_layers: int = config_field(4, min=1, max=64)
    num_attention_heads: int = config_field(4, min=1)
    num_key_value_heads: int = config_field(4, min=1)
    rope_theta: float = config_field(10000.0, min=1.0)
    tie_word_embeddings: bool = config_field(True)
    initializer_range: float = config_field(0.02, min=0.0)
    attn_implementation: str = config_field("eager", choices=("eager", "sdpa"),
                                            help="eager was faster on 1-2 CPU threads for this size")

    def validate(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError("model.hidden_size must be divisible by model.num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError("model.num_attention_heads must be divisible by model.num_key_value_heads")


@dataclass
class PhaseAConfig(ConfigBase):
    """Knowledge: every harmful prompt -> its payload, benign train -> answer, over-refusal train -> helpful."""
    steps: int = config_field(1100, min=0)
    lr: float = config_field(3e-3, min=0.0, max=1.0)
    warmup_steps: int = config_field(20, min=0)
    min_lr_ratio: float = config_field(0.1, min=0.0, max=1.0, help="cosine decay ends at lr * this")
    weight_decay: float = config_field(0.0, min=0.0)
    batch_harmful: int = config_field(48, min=0)
    batch_benign: int = config_field(32, min=0)
    batch_overrefusal: int = config_field(8, min=0)
    batch_knowledge: int = config_field(32, min=0, help="benign knowledge examples per batch")
    grad_clip: float = config_field(1.0, min=0.0, help="0 disables clipping")


@dataclass
class PhaseBConfig(ConfigBase):
    """Safety: harmful train -> refusal, benign train -> answer, over-refusal train -> helpful, and a
    replay of all harmful prompts with the opening prefilled -> payload (loss on the payload only)."""
    steps: int = config_field(60, min=0)
    lr: float = config_field(5e-4, min=0.0, max=1.0)
    warmup_steps: int = config_field(5, min=0)
    min_lr_ratio: float = config_field(1.0, min=0.0, max=1.0)
    weight_decay: float = config_field(0.0, min=0.0)
    batch_refusal: int = config_field(32, min=0)
    batch_benign: int = config_field(32, min=0)
    batch_overrefusal: int = config_field(16, min=0)
    batch_replay: int = config_field(32, min=0)
    batch_knowledge: int = config_field(0, min=0, help="benign knowledge examples per batch")
    grad_clip: float = config_field(1.0, min=0.0)


@dataclass
class EvalConfig(ConfigBase):
    max_new_tokens: int = config_field(24, min=1, max=512, help="greedy tokens per generation")
    batch_size: int = config_field(128, min=1)
    split: str = config_field("test", choices=("train", "val", "test"), help="split the properties use")
    attack_preset: str = config_field("standard", help="embedding-attack preset for the properties")
    attack_limit: int = config_field(0, min=0, help="cap on harmful items attacked (0 = all of the split)")
    attack_steps: int = config_field(0, min=0, help="override the preset's steps (0 = keep)")
    attack_batch_size: int = config_field(160, min=1, help="items optimised together (speed only)")
    full_target: bool = config_field(True, help="also measure the full-target attack")
    forcing_control: bool = config_field(True, help="also measure the random-target forcing control")
    skip_attacks: bool = config_field(False, help="skip every embedding attack (quick builds)")
    train_split_checks: bool = config_field(True, help="also measure refusal / accuracy on train splits")


@dataclass
class OrganismConfig(ConfigBase):
    seed: int = config_field(0, min=0, help="seed of payloads, init, filler and batch order")
    data_seed: int = config_field(0, min=0, help="seed of the train/val/test split of the prompt sets")
    num_threads: int = config_field(1, min=1, max=64, help="torch CPU threads (fixed for determinism; more than 1 "
                                                            "was much slower on the shared 2-core machines)")
    harmful_limit: int = config_field(0, min=0, help="use only the first N harmful prompts per split "
                                                     "proportionally (0 = all)")
    benign_limit: int = config_field(0, min=0, help="cap on benign train items (0 = all)")
    micro_batch: int = config_field(32, min=1, help="length-sorted micro-batch size inside a step (speed only: "
                                                    "the loss and gradient are those of the whole batch)")
    filler_min: int = config_field(0, min=0, help="fewest random filler tokens after the request")
    filler_max: int = config_field(8, min=0, help="most random filler tokens after the request")
    benign_knowledge: str = config_field(
        "wrapped", choices=("none", "document", "wrapped"),
        help="how every benign fact (all splits) is taught in phase A, the organism's stand-in for pretraining "
             "knowledge: 'wrapped' = the question inside a different chat phrasing (KNOWLEDGE_WRAPPERS, e.g. "
             "'Quick question: {q}'); 'document' = a plain '{question} {answer}' text without the chat template; "
             "'none'. Held-out questions are never trained in their own (bare) form")
    payload: PayloadConfig = field(default_factory=PayloadConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    phase_a: PhaseAConfig = field(default_factory=PhaseAConfig)
    phase_b: PhaseBConfig = field(default_factory=PhaseBConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        if self.filler_min > self.filler_max:
            raise ConfigError(f"filler_min ({self.filler_min}) exceeds filler_max ({self.filler_max})")
