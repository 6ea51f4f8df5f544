"""The organism's training and evaluation data, from the project's prompt sets.

Splits come from ``crl_core.data.load_prompt_splits`` (train / val / test, disjoint and deduplicated on
normalised text). Until that loader exists, :func:`_fallback_splits` reads the vendored JSONL files and
splits them the same way in spirit (normalised dedup, seeded shuffle, 70/10/20).

What each split is used for (``OrganismData``):

* harmful, all splits: payload knowledge (phase A, and the prefilled replay of phase B);
  harmful **train** only: refusal training (phase B). Val/test harmful prompts are never refusal-trained.
* benign_qa train: chat-form question -> answer (phases A and B). Val/test chat-form questions are never
  trained in their own (bare) form. The organism's *world knowledge* (what a real LLM gets from
  pretraining) is taught in phase A for every benign item inside other phrasings
  (:data:`KNOWLEDGE_WRAPPERS`, ``benign_knowledge="wrapped"``); see ``build.py``.
* overrefusal train: edgy-but-benign prompt -> the fixed helpful answer (phases A and B); val/test never.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crl_core.data import SplitConfig, load_prompt_splits

__all__ = ["KNOWLEDGE_WRAPPERS", "OrganismData", "load_splits", "load_organism_data", "DATA_DIR", "normalise"]

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "files"


# Phrasings that carry a benign fact in phase A's knowledge examples; ``{q}`` is the question.
KNOWLEDGE_WRAPPERS: tuple[str, ...] = (
    "Quick question: {q}",
    "{q} Please answer briefly.",
    "Can you tell me this? {q}",
    "I was wondering. {q}",
    "{q} Just the answer, please.",
    "Here is a question for you. {q}",
    "Answer in a word or two: {q}",
    "{q} Thanks!",
)


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def load_splits(name: str, seed: int = 0) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """``({"train": rows, "val": rows, "test": rows}, loader_name)`` for a prompt set."""
    dd = load_prompt_splits(name, SplitConfig(seed=seed))
    return {s: [dict(r) for r in dd[s]] for s in ("train", "val", "test")}, "crl_core.data.load_prompt_splits"


@dataclass
class OrganismData:
    harmful: dict[str, list[dict[str, Any]]]
    benign: dict[str, list[dict[str, Any]]]
    overrefusal: dict[str, list[dict[str, Any]]]
    loader: str
    notes: list[str] = field(default_factory=list)

    def all_harmful(self) -> list[dict[str, Any]]:
        return self.harmful["train"] + self.harmful["val"] + self.harmful["test"]

    def all_benign(self) -> list[dict[str, Any]]:
        return self.benign["train"] + self.benign["val"] + self.benign["test"]

    def sizes(self) -> dict[str, dict[str, int]]:
        return {k: {s: len(v) for s, v in getattr(self, k).items()} for k in ("harmful", "benign", "overrefusal")}


def _limit(splits: dict[str, list], n_total: int) -> dict[str, list]:
    """Keep about ``n_total`` rows overall, each split cut in proportion (at least 2 per split)."""
    total = sum(len(v) for v in splits.values())
    if n_total <= 0 or n_total >= total:
        return splits
    return {k: v[:max(2, round(len(v) * n_total / total))] for k, v in splits.items()}


def load_organism_data(seed: int = 0, harmful_limit: int = 0, benign_limit: int = 0) -> OrganismData:
    harmful, loader = load_splits("harmful", seed)
    benign, _ = load_splits("benign_qa", seed)
    over, _ = load_splits("overrefusal", seed)
    harmful = _limit(harmful, harmful_limit)
    benign = _limit(benign, benign_limit)
    over = _limit(over, benign_limit // 3 if benign_limit else 0)
    data = OrganismData(harmful=harmful, benign=benign, overrefusal=over, loader=loader)
    # Held-out prompts must never coincide with a trained prompt (the loader guarantees it; check anyway).
    trained = {normalise(r["prompt"]) for r in harmful["train"] + benign["train"] + over["train"]}
    for name, splits in (("benign", benign), ("overrefusal", over)):
        for s in ("val", "test"):
            clash = [r["prompt"] for r in splits[s] if normalise(r["prompt"]) in trained]
            if clash:
                raise ValueError(f"{name} {s} prompts also appear in a train split: {clash[:3]}")
    return data
