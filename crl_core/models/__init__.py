"""Model and tokenizer loading: hub ids, local folders, the SmolLM2 cache, the organism, tiny test models."""

from crl_core.models.loading import (
    ModelLoadError,
    ModelSpec,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
)
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama

__all__ = [
    "ModelLoadError",
    "ModelSpec",
    "load_model",
    "load_tokenizer",
    "load_model_and_tokenizer",
    "build_tiny_tokenizer",
    "tiny_llama",
]
