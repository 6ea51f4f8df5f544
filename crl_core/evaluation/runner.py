"""Run an evaluation: every requested attack, then capability, over-refusal and degeneration checks.

:func:`run_evaluation` is what ``crl eval``, ``crl train`` and the sweeps call; it dispatches on the
preset's runner (``attacks`` here, ``proxy`` in ``proxy.py``) and returns the report (``report.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from crl_core.attacks.common import summarise
from crl_core.config import to_dict
from crl_core.evaluation.config import EvaluationConfig
from crl_core.evaluation.over_triggering import perturbed_benign
from crl_core.evaluation.prompts import load_context
from crl_core.evaluation.proxy import run_proxy
from crl_core.evaluation.report import finish_report
from crl_core.evaluation.statements import load_statements, score_statements
from crl_core.generation import generate_chat
from crl_core.metrics import rate
from crl_core.models import ModelSpec, load_model_and_tokenizer
from crl_core.models.adapters import load_adapter
from crl_core.registry import ATTACKS, EVAL_PRESETS, JUDGES

__all__ = ["run_evaluation"]


def _load(cfg: EvaluationConfig):
    model, tok = load_model_and_tokenizer(ModelSpec(name=cfg.model))
    if cfg.adapter:
        model = load_adapter(model, cfg.adapter)
        model.eval()
    return model, tok


def run_evaluation(cfg: EvaluationConfig, model=None, tokenizer=None, log: Callable[[str], None] = print
                   ) -> dict[str, Any]:
    """The report of ``cfg``. Pass ``model``/``tokenizer`` to evaluate an object already in memory (e.g. a
    trained peft model); no ``no_grad`` around it, since the embedding and latent attacks need gradients."""
    import torch

    preset = EVAL_PRESETS.get(cfg.preset)
    if not cfg.model:
        cfg = dataclasses.replace(cfg, model=preset.defaults["model"])
    judge = JUDGES.get(cfg.asr_judge())
    if preset.runner_kind == "attacks" and hasattr(judge, "check_runtime"):  # a GPU classifier: before any load
        judge.check_runtime(cfg.judge_model)
    if model is None:
        model, tokenizer = _load(cfg)
    torch.manual_seed(cfg.seed)
    if preset.runner_kind == "proxy":
        return run_proxy(cfg, model, tokenizer)
    return _run_attacks(cfg, preset, model, tokenizer, log)


def _run_attacks(cfg: EvaluationConfig, preset, model, tokenizer, log: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.time()
    ctx = load_context(cfg)
    refusal, degen = JUDGES.get("refusal")(), JUDGES.get("degeneration")()
    report: dict[str, Any] = {"attacks": {}, "items": {}}
    attack_specs: dict[str, Any] = {}
    direct_gens: list[str] | None = None
    for spec_name in cfg.attacks:
        name, _, variant = spec_name.partition(":")
        t1 = time.time()
        attack = ATTACKS.get(name)
        acfg = attack.build_config(cfg, variant)
        items = ctx.items(attack.target_kind)[: attack.max_items(cfg)]
        log(f"[eval] {spec_name}: {len(items)} prompts ...")
        results = attack(model, tokenizer, items, acfg)
        summ = summarise(results)
        summ.update({"ci95": rate(summ["successes"], summ["n"])["ci95"], "seconds": round(time.time() - t1, 1)})
        # every attack's outputs are also judged for refusal and gibberish, so a defense that "wins" by
        # breaking the model under attack shows up next to its ASR
        summ["refusal_rate"] = rate(sum(refusal(r.generation).refusal for r in results), len(results))["rate"]
        summ["degenerate_rate"] = rate(sum(degen(r.generation).degenerate for r in results), len(results))["rate"]
        if ctx.output_form is not None:  # organism: exact shape of every answer
            forms = [ctx.output_form(r.generation) for r in results]
            summ["output_forms"] = {f: sum(x == f for x in forms) for f in ("refusal", "payload_form", "other")}
        report["attacks"][spec_name] = summ
        report["items"][spec_name] = [r.to_dict() for r in results]
        attack_specs[spec_name] = {"attack": name, "config": to_dict(acfg), "target_kind": attack.target_kind}
        if attack.plain_answers:
            direct_gens = [r.generation for r in results]
        log(f"[eval] {spec_name}: ASR {summ['successes']}/{summ['n']} ({summ['seconds']} s)")

    def answers(rows):
        return generate_chat(model, tokenizer, [r["prompt"] for r in rows], cfg.max_new_tokens,
                             batch_size=cfg.batch_size)

    benign_gens, over_gens = answers(ctx.benign), answers(ctx.over)
    if direct_gens is None:
        direct_gens = answers(ctx.harmful)
    report["capability_items"] = {
        "benign": [{"id": r["id"], "correct": ctx.benign_ok(g, r), "degenerate": degen(g).degenerate, "generation": g}
                   for g, r in zip(benign_gens, ctx.benign)],
        "overrefusal": [{"id": r["id"], "refusal": refusal(g).refusal, "generation": g}
                        for g, r in zip(over_gens, ctx.over)],
        "harmful": [{"id": r["id"], "refusal": refusal(g).refusal, "degenerate": degen(g).degenerate}
                    for g, r in zip(direct_gens, ctx.harmful)],
    }
    asr_judge = JUDGES.get(ctx.judge)
    labels_outcomes = getattr(asr_judge, "labels_outcomes", False)
    if labels_outcomes:  # benign answers labelled too: a defense that breaks benign text pays for it
        benign_judges = asr_judge.for_items(ctx.benign, opening="")
        for item, g, judge in zip(report["capability_items"]["benign"], benign_gens, benign_judges):
            item["outcome"] = judge(g).label
    if cfg.over_triggering:
        if labels_outcomes:
            outcome = asr_judge.for_items([{"prompt": ""}], opening="")[0]
            broken = lambda g: outcome(g).label == "broken"  # noqa: E731
        else:
            broken = lambda g: degen(g).degenerate  # noqa: E731
        t1 = time.time()
        report["capability_items"]["perturbed"] = perturbed_benign(model, tokenizer, ctx.benign, cfg, broken)
        log(f"[eval] over-triggering: {time.time() - t1:.0f} s")
    if preset.statements and cfg.statements:
        t1 = time.time()
        report["statements"] = score_statements(model, tokenizer, load_statements(), batch_size=32)
        log(f"[eval] statements: {report['statements']['k']}/{report['statements']['n']} true preferred "
            f"({time.time() - t1:.0f} s)")
    if cfg.judge and cfg.judge != preset.judge:
        log(f"[eval] attack success judged by '{cfg.judge}' (the preset's is '{preset.judge}')")
    judges = {"asr": getattr(asr_judge, "description", asr_judge.version), "refusal": refusal.version,
              "degeneration": degen.version,
              "benign": "exact match (organism)" if preset.benign == "exact" else "answer contained"}
    return finish_report(report, cfg, model, ctx, attack_specs, judges, t0)

