"""The evaluation report: its versioned schema, provenance (what was measured, on what, with which code),
the registered metrics, and a markdown table.

Report keys (schema ``crl-eval-report`` version :data:`REPORT_SCHEMA_VERSION`): ``schema``, ``spec``,
``attacks.<name>.{asr, n, successes, ci95, asr_at, refusal_rate, degenerate_rate, ...}``,
``items.<attack>`` (one dict per attacked prompt), ``capability_items.{benign, overrefusal, harmful}``,
``benign_accuracy``, ``benign``, ``over_refusal``, ``over_refusal_detail``, ``degenerate_rate.{harmful,
benign}``, ``refusal_rate_direct``, ``metrics`` (flat, from ``crl_core.metrics``) and ``metric_versions``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from crl_core.config import config_hash, to_dict
from crl_core.data import split_hashes
from crl_core.metrics import compute_metrics, rate

__all__ = ["REPORT_SCHEMA", "REPORT_SCHEMA_VERSION", "finish_report", "format_markdown", "git_commit", "folder_sha",
           "sha_rows"]

REPORT_SCHEMA_VERSION = 2  # 1: before metrics, metric_versions, capability_items and schema
REPORT_SCHEMA = {"name": "crl-eval-report", "version": REPORT_SCHEMA_VERSION}


def git_commit(root: Path | None = None) -> str | None:
    root = root or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def sha_rows(rows: list[dict]) -> str:
    return hashlib.sha256("\n".join(sorted(json.dumps(r, sort_keys=True, default=str) for r in rows))
                          .encode()).hexdigest()


def folder_sha(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def software() -> dict[str, Any]:
    import torch

    return {"crl_sweep": __import__("crl_core").__version__, "torch": torch.__version__,
            "python": platform.python_version(), "git_commit": git_commit()}


def with_metrics(report: dict[str, Any]) -> dict[str, Any]:
    report["metrics"], report["metric_versions"] = compute_metrics(report)
    report["schema"] = dict(REPORT_SCHEMA)
    return report


def finish_report(report: dict[str, Any], cfg, model, ctx, attack_specs: dict[str, Any], judges: dict[str, str],
                  t0: float) -> dict[str, Any]:
    """Add the capability summaries, the registered metrics and the spec to an attacks report."""
    cap = report["capability_items"]
    ok = [r["correct"] for r in cap["benign"]]
    report["benign_accuracy"] = rate(sum(ok), len(ok))["rate"]
    report["benign"] = {**rate(sum(ok), len(ok)), "wrong_examples": [
        {"prompt": r["prompt"], "answer": r["answer"], "generation": c["generation"]}
        for r, c in zip(ctx.benign, cap["benign"]) if not c["correct"]][:5]}
    refused = [r["refusal"] for r in cap["overrefusal"]]
    report["over_refusal"] = rate(sum(refused), len(refused))["rate"]
    report["over_refusal_detail"] = rate(sum(refused), len(refused))
    deg_h, deg_b = [r["degenerate"] for r in cap["harmful"]], [r["degenerate"] for r in cap["benign"]]
    report["degenerate_rate"] = {"harmful": rate(sum(deg_h), len(deg_h))["rate"],
                                 "benign": rate(sum(deg_b), len(deg_b))["rate"]}
    report["refusal_rate_direct"] = rate(sum(r["refusal"] for r in cap["harmful"]), len(cap["harmful"]))["rate"]
    adapter_info = None
    if cfg.adapter:
        adapter_info = {"path": str(Path(cfg.adapter).resolve()), "sha256_16": folder_sha(Path(cfg.adapter))}
    ds = ctx.datasets
    report["spec"] = {
        "preset": cfg.preset, "config": to_dict(cfg), "config_hash": config_hash(cfg),
        "model": {"name": cfg.model, "class": type(model).__name__,
                  "layers": getattr(getattr(model, "config", None), "num_hidden_layers", None)},
        "adapter": adapter_info,
        "prompt_sets": {
            "harmful": {"split": cfg.split, "n": len(ctx.harmful), "split_sha256": split_hashes(ds["harmful"])[cfg.split],
                        "subset_sha256": sha_rows(ctx.harmful)},
            "benign_qa": {"split": cfg.split, "n": len(ctx.benign),
                          "split_sha256": split_hashes(ds["benign_qa"])[cfg.split]},
            "overrefusal": {"split": cfg.split, "n": len(ctx.over),
                            "split_sha256": split_hashes(ds["overrefusal"])[cfg.split]},
        },
        "attacks": attack_specs,
        "judges": judges,
        "generation": {"decoding": "greedy", "max_new_tokens": cfg.max_new_tokens},
        "software": software(),
        "seconds": round(time.time() - t0, 1),
    }
    return with_metrics(report)


def format_markdown(report: dict[str, Any]) -> str:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    spec = report["spec"]
    head = f"**{spec['preset']}** model `{spec['model']['name']}`" + (
        f" + adapter `{spec['adapter']['path']}`" if spec['adapter'] else "")
    if "benign" not in report:  # the proxy preset: metrics only
        return "\n".join([head, ""] + [f"- {k}: {v:.4g}" for k, v in sorted(report["metrics"].items())])
    lines = [head, "",
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
