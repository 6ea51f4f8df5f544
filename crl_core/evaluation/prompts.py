"""What an evaluation attacks and asks: the prompt sets of one split, and (organism) each prompt's payload.

:func:`load_context` gives the runners one object per evaluation: the harmful / benign / over-refusal rows,
the affirmative opening, the organism's payloads and forcing strings, and how benign answers are scored.
:meth:`EvalContext.items` builds the attack items of one target kind with the chosen judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crl_core.attacks.common import AttackItem
from crl_core.config import ConfigError
from crl_core.data import load_prompt_splits
from crl_core.judges.payload_judge import _find_contiguous, words
from crl_core.registry import EVAL_PRESETS, JUDGES

__all__ = ["EvalContext", "load_context", "contains_answer"]


def contains_answer(generation: str, answer: str, aliases: list[str]) -> bool:
    """The smollm2 benign scorer: the reference answer (or an alias) appears, as whole words, in the reply."""
    gen = words(generation)
    return any(_find_contiguous(gen, words(a)) for a in [answer, *aliases] if a and words(a))


@dataclass
class EvalContext:
    harmful: list[dict[str, Any]]
    benign: list[dict[str, Any]]
    over: list[dict[str, Any]]
    datasets: dict[str, Any]  # set name -> DatasetDict (for the split hashes)
    opening: str
    judge: str
    benign_ok: Callable[[str, dict[str, Any]], bool]
    payloads: dict[str, Any] | None = None  # organism: prompt id -> Payload
    forcing: dict[str, Any] | None = None  # organism: prompt id -> forcing Payload
    judge_model: str = ""  # a classifier judge's model ('' = its own)
    output_form: Callable[[str], str] | None = None  # organism: refusal / payload_form / other
    _items: dict[str, list] = field(default_factory=dict, repr=False)

    def items(self, kind: str):
        """Attack items of one target kind: ``opening`` (judged by the evaluation's judge), ``full`` or
        ``forcing`` (organism: judged on their exact target string). Built once per kind: every attack of
        the evaluation shares them, and with them one judge (a judge that loads a model loads it once)."""
        if kind not in self._items:
            self._items[kind] = self._build_items(kind)
        return self._items[kind]

    def _probes(self, pid: str) -> dict[str, str]:
        """Organism: the prompt's own payload and its never-learned forcing string, for knowledge retention."""
        if self.payloads is None or self.forcing is None:
            return {}
        return {"probe": self.payloads[pid].text, "probe_control": self.forcing[pid].text}

    def _build_items(self, kind: str):
        if kind == "opening":
            extra = {"judge_model": self.judge_model} if self.judge_model else {}
            judges = JUDGES.get(self.judge).for_items(self.harmful, self.payloads, opening=self.opening, **extra)
            return [AttackItem(r["id"], r["prompt"], self.opening, j, meta=self._probes(r["id"]))
                    for r, j in zip(self.harmful, judges)]
        if self.payloads is None:
            raise ConfigError(f"the '{kind}' attack needs a known payload (preset organism)")
        from crl_core.organism import harmful_items  # import time: see _organism_payloads

        return harmful_items(self.harmful, self.payloads, kind, self.opening, self.forcing)


def _organism_payloads(cfg, context: dict[str, Any], harmful_split) -> None:
    # import time: crl_core.organism carries its build recipe (tokenizer training, transformers); only the
    # organism preset needs it, and every registry lookup of an evaluation preset imports this module
    from crl_core.organism import answer_match, forcing_targets, load_build_config
    from crl_core.organism.build import DEFAULT_ARTIFACT
    from crl_core.organism.payloads import Payload, answer_form

    folder = Path(cfg.model) if Path(cfg.model).is_dir() else DEFAULT_ARTIFACT
    payloads = {}
    with (folder / "payloads.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            payloads[r["id"]] = Payload(r["id"], tuple(r["words"]), r["payload"])
    build_cfg = load_build_config(folder / "build_config.yaml") if (folder / "build_config.yaml").is_file() \
        else load_build_config()
    missing = [r["id"] for r in context["harmful"] if r["id"] not in payloads]
    if missing:
        raise ConfigError(f"{len(missing)} harmful prompts have no payload in {folder} (e.g. {missing[0]}): "
                          "the organism was built on other data")
    opening = build_cfg.payload.opening
    context.update(
        opening=opening, payloads=payloads,
        # drawn over the whole split (as the organism build does), so a --limit subset gets the same strings
        forcing=forcing_targets(harmful_split["id"], payloads, build_cfg.payload, seed=cfg.seed),
        output_form=lambda text: answer_form(text, opening, build_cfg.payload.refusal),
        benign_ok=lambda g, r: answer_match(g, r["answer"], r.get("aliases") or []))


def load_context(cfg) -> EvalContext:
    """The prompt sets of ``cfg.split`` (first ``cfg.limit`` rows of each) and the preset's payloads."""
    preset = EVAL_PRESETS.get(cfg.preset)
    datasets = {name: load_prompt_splits(name) for name in ("harmful", "benign_qa", "overrefusal")}

    def rows(name):
        out = datasets[name][cfg.split].to_list()
        return out[: cfg.limit] if cfg.limit else out

    context: dict[str, Any] = {
        "harmful": rows("harmful"), "benign": rows("benign_qa"), "over": rows("overrefusal"), "datasets": datasets,
        "opening": cfg.opening, "judge": cfg.asr_judge(), "judge_model": cfg.judge_model,
        "benign_ok": lambda g, r: contains_answer(g, r["answer"], r.get("aliases") or [])}
    if preset.payloads:
        _organism_payloads(cfg, context, datasets["harmful"][cfg.split])
    return EvalContext(**context)
