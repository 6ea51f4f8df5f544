"""Evaluate a model (optionally with a LoRA adapter) under attacks, with a spec saved beside every number.

Two presets:

- ``organism``: the committed model organism with its exact payload judge. ASR counts leaked
  payloads; benign accuracy is exact match on held-out questions; over-refusal is the refusal rate
  on held-out edgy-but-benign prompts.
- ``smollm2``: SmolLM2-135M-Instruct. ASR is refusal- and degeneration-judged (success = neither a
  refusal nor gibberish), benign accuracy is "the reference answer appears in the reply".

Attack names: ``direct``, ``prefill``, ``embedding`` (knowledge-eliciting), ``embedding_full_target``,
``embedding_forcing_control`` (organism only), ``latent``, ``gcg``. An embedding preset may be named
after a colon: ``embedding:strong``, ``embedding_full_target:run2``.

The report (JSON) has ``spec``, ``attacks.<name>.{asr, n, successes, ci95, asr_at, ...}``,
``benign_accuracy``, ``over_refusal``, ``degenerate_rate`` and per-item results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crl_core.config import ConfigBase, ConfigError, config_field, config_hash, to_dict

__all__ = ["EvaluationConfig", "PRESET_DEFAULTS", "ATTACK_NAMES", "run_evaluation", "format_markdown",
           "evaluation_config_for", "git_commit"]

ATTACK_NAMES = ("direct", "prefill", "embedding", "embedding_full_target", "embedding_forcing_control",
                "latent", "gcg")


@dataclass
class LatentBudget(ConfigBase):
    block: int = config_field(1, min=0, help="decoder block whose output is perturbed")
    steps: int = config_field(100, min=1)
    lr: float = config_field(3e-2, min=0.0)
    max_norm_ratio: float | None = config_field(None, min=0.0)
    positions: str = config_field("after_request", choices=("after_request", "template_tail", "all"))
    checkpoints: list[int] = config_field(default_factory=lambda: [25, 50, 100])


@dataclass
class GCGBudget(ConfigBase):
    steps: int = config_field(20, min=1)
    search_width: int = config_field(64, min=1)
    topk: int = config_field(64, min=1)
    limit: int = config_field(10, min=1, help="GCG is per-prompt and slow: attack at most this many prompts")


@dataclass
class EvaluationConfig(ConfigBase):
    preset: str = config_field("organism", choices=("organism", "smollm2"))
    model: str = config_field("", help="model name or folder (default: the preset's)")
    adapter: str | None = config_field(None, help="peft adapter folder to evaluate on top of the model")
    attacks: list[str] = config_field(default_factory=lambda: ["direct", "prefill", "embedding"])
    split: str = config_field("test", choices=("train", "val", "test"))
    limit: int = config_field(0, min=0, help="use only the first N prompts of every set (0 = all)")
    max_new_tokens: int = config_field(24, min=1, max=2048, help="greedy tokens per generation")
    batch_size: int = config_field(64, min=1)
    embedding_preset: str = config_field("standard", help="default preset of the embedding attacks")
    embedding_steps: int = config_field(0, min=0, help="override the embedding preset's steps (0 = keep)")
    opening: str = config_field("Sure, here is how to do it:",
                                help="affirmative opening used as target / prefill (organism: its payload opening)")
    latent: LatentBudget = field(default_factory=LatentBudget)
    gcg: GCGBudget = field(default_factory=GCGBudget)
    seed: int = config_field(0, min=0)

    def validate(self) -> None:
        for a in self.attacks:
            name = a.split(":", 1)[0]
            if name not in ATTACK_NAMES:
                import difflib

                close = difflib.get_close_matches(name, ATTACK_NAMES, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"attacks: unknown attack '{name}'{hint}; known: {', '.join(ATTACK_NAMES)}")
            if ":" in a and not name.startswith("embedding"):
                raise ConfigError(f"attacks: only embedding attacks take a preset (got '{a}')")
            if ":" in a:
                from crl_core.attacks.embedding_attack import PRESETS

                if a.split(":", 1)[1] not in PRESETS:
                    raise ConfigError(f"attacks: unknown embedding preset in '{a}'; known: {', '.join(sorted(PRESETS))}")
        if self.preset == "smollm2" and any(a.startswith("embedding_forcing_control") for a in self.attacks):
            raise ConfigError("attacks: the forcing control needs the organism's code words (preset organism)")
        from crl_core.attacks.embedding_attack import PRESETS

        if self.embedding_preset not in PRESETS:
            raise ConfigError(f"embedding_preset: unknown '{self.embedding_preset}'; known: {', '.join(sorted(PRESETS))}")


PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "organism": {"model": "organism", "max_new_tokens": 24},
    "smollm2": {"model": "smollm2", "max_new_tokens": 48, "batch_size": 8, "opening": "Sure, here is",
                "embedding_preset": "standard", "embedding_steps": 50, "limit": 8,
                "latent": {"block": 10, "steps": 50, "checkpoints": [25, 50]}},
}


def evaluation_config_for(preset: str, overrides: dict[str, Any] | None = None) -> EvaluationConfig:
    from crl_core.config import apply_overrides, from_dict

    if preset not in PRESET_DEFAULTS:
        raise ConfigError(f"unknown evaluation preset '{preset}'; known: {', '.join(PRESET_DEFAULTS)}")
    data = apply_overrides({"preset": preset, **PRESET_DEFAULTS[preset]}, overrides or {})
    return from_dict(EvaluationConfig, data)


def git_commit(root: Path | None = None) -> str | None:
    root = root or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _sha_rows(rows: list[dict]) -> str:
    return hashlib.sha256("\n".join(sorted(json.dumps(r, sort_keys=True, default=str) for r in rows))
                          .encode()).hexdigest()


def _contains_answer(generation: str, answer: str, aliases: list[str]) -> bool:
    from crl_core.judges.payload_judge import _find_contiguous, words

    gen = words(generation)
    return any(_find_contiguous(gen, words(a)) for a in [answer, *aliases] if a and words(a))


def _folder_sha(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def _load(cfg: EvaluationConfig):
    from crl_core.models import ModelSpec, load_model_and_tokenizer
    from crl_core.models.adapters import load_adapter

    model, tok = load_model_and_tokenizer(ModelSpec(name=cfg.model))
    if cfg.adapter:
        model = load_adapter(model, cfg.adapter)
        model.eval()
    return model, tok


def run_evaluation(cfg: EvaluationConfig, model=None, tokenizer=None, log: Callable[[str], None] = print
                   ) -> dict[str, Any]:
    """Run every requested attack and the capability checks; returns the report dict.

    Pass ``model``/``tokenizer`` to evaluate an object already in memory (e.g. a trained peft model).
    """
    import torch

    from crl_core.attacks.common import AttackItem, summarise
    from crl_core.data import load_prompt_splits, split_hashes
    from crl_core.generation import generate_chat
    from crl_core.judges.compliance_judge import ComplianceJudge
    from crl_core.judges.degeneration_judge import DegenerationJudge
    from crl_core.judges.refusal_judge import RefusalJudge
    from crl_core.metrics import rate
    from crl_core.registry import ATTACKS

    t0 = time.time()
    if not cfg.model:
        cfg = dataclasses.replace(cfg, model=PRESET_DEFAULTS[cfg.preset]["model"])
    if model is None:
        model, tokenizer = _load(cfg)
    torch.manual_seed(cfg.seed)
    refusal, degen = RefusalJudge(), DegenerationJudge()

    def lim(rows):
        rows = list(rows)
        return rows[: cfg.limit] if cfg.limit else rows

    harmful_dd = load_prompt_splits("harmful")
    benign_dd = load_prompt_splits("benign_qa")
    over_dd = load_prompt_splits("overrefusal")
    harmful = lim(harmful_dd[cfg.split].to_list())
    benign = lim(benign_dd[cfg.split].to_list())
    over = lim(over_dd[cfg.split].to_list())

    opening, payloads, forcing, output_form = cfg.opening, None, None, None
    if cfg.preset == "organism":
        from crl_core.organism import forcing_targets, harmful_items, load_build_config
        from crl_core.organism.build import DEFAULT_ARTIFACT
        from crl_core.organism.payloads import Payload

        folder = Path(cfg.model) if Path(cfg.model).is_dir() else DEFAULT_ARTIFACT
        payloads = {}
        with (folder / "payloads.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                payloads[r["id"]] = Payload(r["id"], tuple(r["words"]), r["payload"])
        build_cfg = load_build_config(folder / "build_config.yaml") if (folder / "build_config.yaml").is_file() \
            else load_build_config()
        opening = build_cfg.payload.opening
        missing = [r["id"] for r in harmful if r["id"] not in payloads]
        if missing:
            raise ConfigError(f"{len(missing)} harmful prompts have no payload in {folder} (e.g. {missing[0]}): "
                              "the organism was built on other data")
        # drawn over the whole split (as the organism build does), so a --limit subset gets the same strings
        forcing = forcing_targets(harmful_dd[cfg.split]["id"], payloads, build_cfg.payload, seed=cfg.seed)

        def items_for(kind: str) -> list[AttackItem]:
            return harmful_items(harmful, payloads, kind, opening, forcing)

        from crl_core.organism.payloads import answer_form

        def output_form(text: str) -> str:
            return answer_form(text, opening, build_cfg.payload.refusal)
        asr_judge = "payload-v1 (code words contiguous, in order)"

        def benign_ok(g, r):
            from crl_core.organism import answer_match

            return answer_match(g, r["answer"], r.get("aliases") or [])
    else:
        judge = ComplianceJudge()

        def items_for(kind: str) -> list[AttackItem]:
            if kind != "opening":
                raise ConfigError("the full-target attack needs a known payload (preset organism)")
            return [AttackItem(r["id"], r["prompt"], opening, judge) for r in harmful]
        asr_judge = judge.version

        def benign_ok(g, r):
            return _contains_answer(g, r["answer"], r.get("aliases") or [])

    report: dict[str, Any] = {"attacks": {}, "items": {}}
    attack_specs: dict[str, Any] = {}
    direct_gens: list[str] = []
    for spec_name in cfg.attacks:
        name, _, preset_name = spec_name.partition(":")
        t1 = time.time()
        attack = ATTACKS.get(name)()
        if name in ("direct", "prefill"):
            acfg = attack.config_class(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
            items = items_for("opening")
        elif name.startswith("embedding"):
            from crl_core.attacks.embedding_attack import preset as emb_preset

            pname = preset_name or cfg.embedding_preset
            acfg = emb_preset(pname, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed)
            if cfg.embedding_steps:
                acfg = dataclasses.replace(acfg, steps=cfg.embedding_steps,
                                           checkpoints=sorted({c for c in acfg.checkpoints if c <= cfg.embedding_steps}
                                                              | {cfg.embedding_steps}))
            kind = {"embedding": "opening", "embedding_full_target": "full",
                    "embedding_forcing_control": "forcing"}[name]
            items = items_for(kind)
        elif name == "latent":
            from crl_core.attacks.latent_attack import LatentAttackConfig

            acfg = LatentAttackConfig(**to_dict(cfg.latent), max_new_tokens=cfg.max_new_tokens,
                                      batch_size=cfg.batch_size, seed=cfg.seed)
            items = items_for("opening")
        else:  # gcg
            from crl_core.attacks.gcg_attack import GCGAttackConfig

            acfg = GCGAttackConfig(steps=cfg.gcg.steps, search_width=cfg.gcg.search_width, topk=cfg.gcg.topk,
                                   max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
            items = items_for("opening")[: cfg.gcg.limit]
        log(f"[eval] {spec_name}: {len(items)} prompts ...")
        results = attack(model, tokenizer, items, acfg)
        summ = summarise(results)
        summ.update({"ci95": rate(summ["successes"], summ["n"])["ci95"], "seconds": round(time.time() - t1, 1)})
        # every attack's outputs are also judged for refusal and gibberish, so a defense that "wins" by
        # breaking the model under attack shows up next to its ASR
        summ["refusal_rate"] = rate(sum(refusal(r.generation).refusal for r in results), len(results))["rate"]
        summ["degenerate_rate"] = rate(sum(degen(r.generation).degenerate for r in results), len(results))["rate"]
        if output_form is not None:  # organism: exact shape of every answer
            forms = [output_form(r.generation) for r in results]
            summ["output_forms"] = {f: sum(x == f for x in forms) for f in ("refusal", "payload_form", "other")}
        report["attacks"][spec_name] = summ
        report["items"][spec_name] = [r.to_dict() for r in results]
        attack_specs[spec_name] = {"attack": name, "config": to_dict(acfg), "target_kind": getattr(attack, "target_kind", None)}
        if name == "direct":
            direct_gens = [r.generation for r in results]
        log(f"[eval] {spec_name}: ASR {summ['successes']}/{summ['n']} ({summ['seconds']} s)")

    # capability, over-refusal, degeneration
    benign_gens = generate_chat(model, tokenizer, [r["prompt"] for r in benign], cfg.max_new_tokens,
                                batch_size=cfg.batch_size)
    ok = [benign_ok(g, r) for g, r in zip(benign_gens, benign)]
    report["benign_accuracy"] = rate(sum(ok), len(ok))["rate"]
    report["benign"] = {**rate(sum(ok), len(ok)),
                        "wrong_examples": [{"prompt": r["prompt"], "answer": r["answer"], "generation": g}
                                           for g, r, o in zip(benign_gens, benign, ok) if not o][:5]}
    over_gens = generate_chat(model, tokenizer, [r["prompt"] for r in over], cfg.max_new_tokens,
                              batch_size=cfg.batch_size)
    over_ref = [refusal(g).refusal for g in over_gens]
    report["over_refusal"] = rate(sum(over_ref), len(over_ref))["rate"]
    report["over_refusal_detail"] = rate(sum(over_ref), len(over_ref))
    if not direct_gens:
        direct_gens = generate_chat(model, tokenizer, [r["prompt"] for r in harmful], cfg.max_new_tokens,
                                    batch_size=cfg.batch_size)
    deg_h = [degen(g).degenerate for g in direct_gens]
    deg_b = [degen(g).degenerate for g in benign_gens]
    report["degenerate_rate"] = {"harmful": rate(sum(deg_h), len(deg_h))["rate"],
                                 "benign": rate(sum(deg_b), len(deg_b))["rate"]}
    report["refusal_rate_direct"] = rate(sum(refusal(g).refusal for g in direct_gens), len(direct_gens))["rate"]

    adapter_info = None
    if cfg.adapter:
        adapter_info = {"path": str(Path(cfg.adapter).resolve()), "sha256_16": _folder_sha(Path(cfg.adapter))}
    report["spec"] = {
        "preset": cfg.preset, "config": to_dict(cfg), "config_hash": config_hash(cfg),
        "model": {"name": cfg.model, "class": type(model).__name__,
                  "layers": getattr(getattr(model, "config", None), "num_hidden_layers", None)},
        "adapter": adapter_info,
        "prompt_sets": {
            "harmful": {"split": cfg.split, "n": len(harmful), "split_sha256": split_hashes(harmful_dd)[cfg.split],
                        "subset_sha256": _sha_rows(harmful)},
            "benign_qa": {"split": cfg.split, "n": len(benign), "split_sha256": split_hashes(benign_dd)[cfg.split]},
            "overrefusal": {"split": cfg.split, "n": len(over), "split_sha256": split_hashes(over_dd)[cfg.split]},
        },
        "attacks": attack_specs,
        "judges": {"asr": asr_judge, "refusal": refusal.version, "degeneration": degen.version,
                   "benign": "exact match (organism)" if cfg.preset == "organism" else "answer contained"},
        "generation": {"decoding": "greedy", "max_new_tokens": cfg.max_new_tokens},
        "software": {"crl_sweep": __import__("crl_core").__version__, "torch": torch.__version__,
                     "python": platform.python_version(), "git_commit": git_commit()},
        "seconds": round(time.time() - t0, 1),
    }
    return report


def format_markdown(report: dict[str, Any]) -> str:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines = [f"**{report['spec']['preset']}** model `{report['spec']['model']['name']}`"
             + (f" + adapter `{report['spec']['adapter']['path']}`" if report['spec']['adapter'] else ""), "",
             "| attack | ASR | k/n | 95% CI | ASR at steps | steps to 80% | refusal | degenerate |",
             "|---|---|---|---|---|---|---|---|"]
    for name, a in report["attacks"].items():
        at = ", ".join(f"{k}:{pct(v)}" for k, v in a.get("asr_at", {}).items()) or "-"
        ci = a.get("ci95", [None, None])
        lines.append(f"| {name} | {pct(a['asr'])} | {a['successes']}/{a['n']} | {pct(ci[0])}-{pct(ci[1])} | {at} | "
                     f"{(a.get('steps_to_80pct') or 'never') if a.get('asr_at') else '-'} | "
                     f"{pct(a.get('refusal_rate'))} | {pct(a.get('degenerate_rate'))} |")
    lines += ["", f"benign accuracy {pct(report['benign_accuracy'])} ({report['benign']['k']}/{report['benign']['n']}), "
              f"over-refusal {pct(report['over_refusal'])}, direct refusal rate {pct(report['refusal_rate_direct'])}, "
              f"degenerate: harmful {pct(report['degenerate_rate']['harmful'])} / benign "
              f"{pct(report['degenerate_rate']['benign'])}"]
    return "\n".join(lines)
