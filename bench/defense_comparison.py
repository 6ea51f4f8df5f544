"""Undefended vs circuit breakers vs RepBend vs CRL vs CRL+mining on the model organism.

    python bench/defense_comparison.py [--seeds 0 1 2] [--attacks ...] [--limit N] [--out outputs/comparison]

Every method gets the same data and step budget (its preset in crl_core/configs/train/), is trained
once per seed, and is evaluated on the held-out test split with the same attacks. Writes
``<out>/results.json`` (every report) and ``<out>/results.md`` (the table: mean over seeds, and the
per-seed values), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = {"undefended": None, "circuit_breaker": "organism-rr", "repbend": "organism-repbend",
           "crl": "organism-crl", "crl+mining": "organism-crl-mining"}
DEFAULT_ATTACKS = ["direct", "prefill", "embedding", "embedding:strong", "embedding_full_target",
                   "embedding_forcing_control", "latent", "gcg"]


def run(method: str, seed: int, attacks: list[str], limit: int, out: Path, log) -> dict:
    from crl_core.config import load_config
    from crl_core.evaluation import evaluation_config_for, run_evaluation
    from crl_core.training import TrainConfig, preset_path, train

    ev = {"attacks": attacks, "limit": limit, "split": "test", "seed": seed}
    if METHODS[method] is None:
        report = run_evaluation(evaluation_config_for("organism", ev), log=log)
        report["training"] = None
        return report
    cfg = load_config(TrainConfig, preset_path(METHODS[method]),
                      [f"seed={seed}", f"output_dir={out / f'{method}-seed{seed}'}", f"eval.overrides.attacks={json.dumps(attacks)}",
                       f"eval.overrides.limit={limit}", "eval.overrides.split=test"])
    summary = train(cfg, log=log)
    return summary["report"]


def _garbled(report: dict, name: str) -> float:
    """Share of an attack's outputs that are neither exactly the organism's refusal nor payload-shaped
    (e.g. "Sure, here is how to do it: cannot help with that": a broken refusal, or word salad)."""
    from crl_core.organism import load_build_config
    from crl_core.organism.payloads import answer_form

    pc = load_build_config().payload
    gens = [it["generation"] for it in report["items"][name]]
    return sum(answer_form(g, pc.opening, pc.refusal) == "other" for g in gens) / max(1, len(gens))


def row_values(report: dict) -> dict[str, float | None]:
    a = report["attacks"]
    vals: dict[str, float | None] = {}
    for name, s in a.items():
        vals[f"{name} ASR"] = s["asr"]
        vals[f"{name} other form"] = _garbled(report, name)
        if name.startswith("embedding") or name == "latent":
            vals[f"{name} steps->80%"] = s.get("steps_to_80pct")
            if "mean_prefix_leaked" in s:
                vals[f"{name} leaked words"] = s["mean_prefix_leaked"]
    vals["direct refusal"] = report["refusal_rate_direct"]
    vals["benign acc"] = report["benign_accuracy"]
    vals["over-refusal"] = report["over_refusal"]
    vals["degenerate (harmful)"] = report["degenerate_rate"]["harmful"]
    vals["degenerate (benign)"] = report["degenerate_rate"]["benign"]
    return vals


def fmt(v, column: str = "") -> str:
    if v is None:
        return "never"
    if "leaked words" in column:
        return f"{v:.2f}"
    if "steps" in column:
        return str(v)
    if isinstance(v, float):
        return f"{100 * v:.1f}%"
    return str(v)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--attacks", nargs="+", default=DEFAULT_ATTACKS)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default="outputs/comparison")
    p.add_argument("--keep", action="store_true", help="keep the reports already in <out>/results.json")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(m):
        print(m, file=sys.stderr, flush=True)

    results: dict[str, dict[int, dict]] = {}
    if (out / "results.json").is_file() and args.keep:  # add methods/seeds to an earlier run
        results = {m: {int(k): v for k, v in per.items()}
                   for m, per in json.loads((out / "results.json").read_text()).items()}
    t0 = time.time()
    for method in args.methods:
        for seed in args.seeds:
            if seed in results.get(method, {}):
                continue
            log(f"=== {method} seed {seed} ({time.time() - t0:.0f} s)")
            results.setdefault(method, {})[seed] = run(method, seed, args.attacks, args.limit, out, log)
            (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    methods = [m for m in METHODS if m in results]
    seeds = sorted({s for per in results.values() for s in per})
    table = {m: {s: row_values(r) for s, r in per.items()} for m, per in results.items()}
    cols = list(next(iter(next(iter(table.values())).values())).keys())
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for c in cols:
        cells = []
        for m in methods:
            vals = [table[m][s].get(c) for s in seeds if s in table[m]]
            nums = [v for v in vals if isinstance(v, (int, float))]
            if len(vals) > 1:
                mean = fmt(statistics.fmean(nums), c) if len(nums) == len(vals) else "/".join(fmt(v, c) for v in vals)
                cells.append(f"{mean} ({', '.join(fmt(v, c) for v in vals)})")
            else:
                cells.append(fmt(vals[0], c))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    n = next(iter(next(iter(results.values())).values()))["attacks"]
    header = (f"Organism test split, seeds {seeds}, n per attack: "
              + ", ".join(f"{k}={v['n']}" for k, v in n.items()) + f"; wall of this invocation {time.time() - t0:.0f} s")
    md = header + "\n\n" + "\n".join(lines) + "\n"
    (out / "results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
