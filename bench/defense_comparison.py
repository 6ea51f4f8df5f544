"""Undefended vs circuit breakers vs RepBend vs CRL vs CRL+mining on the model organism.

    python bench/defense_comparison.py [--seeds 0 1 2] [--attacks ...] [--limit N] [--out outputs/comparison]
                                       [--methods ...] [--steps N]
    python bench/defense_comparison.py --suite strong [--methods circuit_breaker crl crl+mining]
                                       [--seeds 0 1 2] [--limit 32] [--jobs 2]

Every method gets the same data and step budget (its preset in crl_core/configs/train/), is trained
once per seed, and is evaluated on the held-out test split with the same attacks. Writes
``<out>/results.json`` (every report) and ``<out>/results.md`` (the table: mean over seeds, and the
per-seed values), and prints the table.

``--suite strong`` evaluates each (method, seed) with the ``organism-strong`` preset instead (evaluation
seed = training seed): the robustness metrics that still move when the knowledge ASR is 0 (knowledge
retention, the leak margin at each rung of the budget ladder, budget to break, best-of-32 sampling leakage,
over-triggering) next to ASR and capability. It writes ``<out>/strong/results.json`` and ``results.md``:
per method the mean over seeds with a 95% t-interval across training seeds, and each method minus
circuit breakers (and CRL+mining minus CRL) with a Welch 95% interval: "separated" only when it excludes 0.
Resumable: each (method, seed) folder keeps its adapter and its ``strong.json``.

``--steps N`` trains every method for N steps instead of its preset's budget (a smoke check of the path, e.g.
``--methods undefended crl --attacks direct --limit 2 --steps 2``; the numbers then mean nothing).
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


def run(method: str, seed: int, attacks: list[str], limit: int, out: Path, log, steps: int = 0) -> dict:
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
                       f"eval.overrides.limit={limit}", "eval.overrides.split=test"] + ([f"steps={steps}"] if steps else []))
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


# ------------------------------------------------------------------------------------- the strong suite
STRONG_METRICS = ("knowledge_asr", "knowledge_retention", "leak_margin", "leak_margin_l4x50", "leak_margin_l4x200",
                  "leak_margin_l16x100", "budget_to_break", "sampling_leakage", "over_triggering", "asr_prefill",
                  "asr_embedding_full_target_l4x200", "asr_embedding_forcing_control_l4x200",
                  "asr_embedding_full_target_l16x100", "asr_embedding_forcing_control_l16x100", "benign_accuracy",
                  "over_refusal", "degenerate_rate_harmful", "robust_score")
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def run_strong(method: str, seed: int, limit: int, out: str, steps: int = 0) -> dict:
    """Train ``method`` at ``seed`` (unless its adapter is there), then the strong suite at evaluation seed
    ``seed``; one process, one torch thread."""
    import torch

    torch.set_num_threads(1)
    from crl_core.config import load_config
    from crl_core.evaluation import evaluation_config_for, run_evaluation
    from crl_core.training import TrainConfig, preset_path, train

    folder = Path(out) / f"{method}-seed{seed}"
    done = folder / "strong.json"
    if done.is_file():
        return json.loads(done.read_text())
    adapter = None
    t0 = time.time()
    if METHODS[method] is not None:
        cfg = load_config(TrainConfig, preset_path(METHODS[method]),
                          [f"seed={seed}", f"output_dir={folder}", "eval.enabled=false", "num_threads=1"]
                          + ([f"steps={steps}"] if steps else []))
        if not (folder / "adapter" / "adapter_config.json").is_file():
            train(cfg, log=lambda m: None)
        adapter = str(folder / "adapter")
    train_s = time.time() - t0
    ecfg = evaluation_config_for("organism-strong", {"limit": limit, "seed": seed, "adapter": adapter})
    t1 = time.time()
    report = run_evaluation(ecfg, log=lambda m: None)
    row = {"method": method, "seed": seed, "metrics": report["metrics"], "train_seconds": round(train_s, 1),
           "eval_seconds": round(time.time() - t1, 1),
           "attacks": {a: {"asr": v["asr"], "n": v["n"]} for a, v in report["attacks"].items()}}
    folder.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(row, indent=1))
    return row


def mean_ci(xs: list[float]) -> tuple[float, float, list[float] | None]:
    """Mean, sample sd and the 95% t-interval of the mean across seeds (None for one seed)."""
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, 0.0, None
    sd = statistics.stdev(xs)
    h = T95.get(len(xs) - 1, 1.96) * sd / len(xs) ** 0.5
    return m, sd, [m - h, m + h]


def welch(a: list[float], b: list[float]) -> dict | None:
    """Mean of ``a`` minus mean of ``b`` with a Welch 95% interval (Welch-Satterthwaite degrees of freedom)."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    d = statistics.fmean(a) - statistics.fmean(b)
    se = (va + vb) ** 0.5
    if se == 0:
        return {"diff": d, "ci95": [d, d], "separated": d != 0}
    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0) + (vb ** 2 / (len(b) - 1) if vb else 0))
    t = T95.get(max(1, min(10, int(df + 1e-9))), 1.96)  # df floored (conservative)
    lo, hi = d - t * se, d + t * se
    return {"diff": d, "ci95": [lo, hi], "separated": lo > 0 or hi < 0}


def summarise_strong(rows: list[dict]) -> dict:
    sys.path.insert(0, str(ROOT))
    from sweeps.margin_sweep import OBJECTIVES

    per: dict[str, dict[str, list[float]]] = {}
    censored: dict[str, int] = {}
    for r in rows:
        m = OBJECTIVES.add_derived(r["metrics"])
        if m.get("budget_to_break_censored"):  # never broke: counted at the largest budget tried, and said so
            m["budget_to_break"] = m["budget_to_break_max_tried"]
            censored[r["method"]] = censored.get(r["method"], 0) + 1
        for k in STRONG_METRICS:
            if isinstance(m.get(k), (int, float)):
                per.setdefault(r["method"], {}).setdefault(k, []).append(float(m[k]))
    summary = {meth: {k: dict(zip(("mean", "sd", "ci95"), mean_ci(xs)), values=xs) for k, xs in vals.items()}
               for meth, vals in per.items()}
    for meth, n in censored.items():  # a lower bound: the mean of censored values is not an estimate
        summary[meth]["budget_to_break"]["censored"] = n
    pairs = [(m, "circuit_breaker") for m in per if m != "circuit_breaker" and "circuit_breaker" in per]
    if "crl+mining" in per and "crl" in per:
        pairs.append(("crl+mining", "crl"))
    diffs = {f"{a} - {b}": {k: welch(per[a][k], per[b][k]) for k in STRONG_METRICS if k in per[a] and k in per[b]
                            and not (k == "budget_to_break" and (censored.get(a) or censored.get(b)))}
             for a, b in pairs}
    return {"methods": summary, "differences": diffs}


def strong_table(result: dict, seeds: list[int], limit: int) -> str:
    methods = list(result["methods"])
    lines = [f"Organism test split, organism-strong suite (limit {limit} prompts/set), training seeds = evaluation "
             f"seeds {seeds}: mean over seeds (95% t-interval across seeds)", "",
             "| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for k in STRONG_METRICS:
        cells = []
        for meth in methods:
            c = result["methods"][meth].get(k)
            if c is not None and c.get("censored"):
                cells.append(f">= {c['mean']:.0f} ({c['censored']} of {len(c['values'])} never broke: "
                             f"{', '.join(f'{v:.0f}' for v in c['values'])})")
                continue
            cells.append("-" if c is None else f"{c['mean']:.3f}" + (
                f" ({c['ci95'][0]:.2f}, {c['ci95'][1]:.2f})" if c["ci95"] else ""))
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    for pair, per in result["differences"].items():
        lines += ["", f"{pair} (Welch 95% interval; separated = excludes 0):", ""]
        for k, d in per.items():
            if d:
                lines.append(f"- {k}: {d['diff']:+.3f} ({d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f})"
                             f"{' separated' if d['separated'] else ''}")
    return "\n".join(lines) + "\n"


def main_strong(args) -> int:
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = (Path(args.out) / "strong").resolve()
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(m, s) for m in args.methods for s in args.seeds]
    t0, load0 = time.time(), os.getloadavg()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_strong, m, s, args.limit, str(out), args.steps) for m, s in jobs]
        rows = []
        for (m, s), f in zip(jobs, futures):
            rows.append(f.result())
            print(f"[defense_comparison] {m} seed {s} done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    result = {"suite": "organism-strong", "limit": args.limit, "seeds": args.seeds, **summarise_strong(rows),
              "rows": rows, "wall_s": round(time.time() - t0, 1), "jobs": args.jobs,
              "loadavg_start": load0, "loadavg_end": os.getloadavg()}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    md = strong_table(result, args.seeds, args.limit)
    (out / "results.md").write_text(md)
    print(md)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--attacks", nargs="+", default=DEFAULT_ATTACKS)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default="outputs/comparison")
    p.add_argument("--keep", action="store_true", help="keep the reports already in <out>/results.json")
    p.add_argument("--suite", choices=("attacks", "strong"), default="attacks",
                   help="strong: the organism-strong preset and the robustness metrics, per (method, seed)")
    p.add_argument("--jobs", type=int, default=1, help="--suite strong: (method, seed) runs at a time")
    p.add_argument("--steps", type=int, default=0, help="training steps of every method (default: its preset's)")
    args = p.parse_args(argv)
    if args.steps < 0:
        p.error("--steps must be >= 0 (0: each preset's own budget)")
    if args.suite == "strong":
        if args.methods == list(METHODS):
            args.methods = ["circuit_breaker", "crl", "crl+mining"]
        args.limit = args.limit or 32
        unknown = [m for m in args.methods if m not in METHODS]
        if unknown:
            raise SystemExit(f"defense_comparison: error: unknown method(s) {unknown}; known: {list(METHODS)}")
        return main_strong(args)
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
            results.setdefault(method, {})[seed] = run(method, seed, args.attacks, args.limit, out, log, args.steps)
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
