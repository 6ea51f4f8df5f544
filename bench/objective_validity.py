"""Does the sweep's objective rank defenses the way a much stronger evaluation does? (organism)

    python bench/objective_validity.py [--sampled 16] [--jobs 2] [--seed 0] [--limit 32]
                                       [--config sweeps/configs/organism.yaml] [--out DIR] [--quick]

Adapters: ``--sampled`` points drawn at random from the default sweep's search space (``margin_sweep``'s
space + the YAML, trained with the sweep's base config: 60 steps), plus the organism presets that hold the
direct request (``organism-crl``, ``organism-crl-mining``, ``organism-rr``; 150 steps each). Each adapter is
evaluated twice:

- **in-sweep**: exactly the sweep's evaluation (``SweepConfig.evaluation_config``: validation split, the
  sweep's budget and attacks) and its objective (``objective.metric`` of the config, a recipe objective of
  ``margin_sweep.OBJECTIVES``);
- **strong**: the ``organism-strong`` preset (test split, ``--limit`` prompts per set, another evaluation
  seed; the ``strong`` knowledge-eliciting attack, 16 vectors x 400 steps x 3 restarts, with best-of-32
  sampling at its final vectors; the full-target / forcing-control ladder ``l4x50``, ``l4x200``,
  ``l16x100``; prefill; benign over-triggering), scored with the same recipe objective (its terms then
  come from the strong attacks).

The question is the issue's: among adapters that *all* hold the binary knowledge ASR at 0 (strong and
in-sweep), does the in-sweep objective order them like the strong suite? Spearman's rho with a bootstrap 95%
interval (resampling adapters), over the eligible adapters; also over all of them, and for each other
recipe objective and each term, as diagnostics. Writes ``<out>/objective_validity.json`` (``spearman``,
``n_adapters``, a row per adapter) and prints the table. ``--noise-seeds`` (default 1,2) repeats the
in-sweep evaluation at other evaluation seeds: ``in_sweep_noise`` compares the per-adapter sd of each
in-sweep objective with the gaps between adapters ranked next to each other. Resumable: each adapter's
folder keeps its adapter and its evaluations, so a rerun only does what is missing.

``--quick`` (a smoke check of the path; the numbers mean nothing): the smoke budget (sweeps/configs/smoke.yaml:
6 steps, 8 prompts, a 5-step embedding attack) over the config, the presets trained for as many steps, and
the strong suite's embedding attacks cut to 2 steps with best-of-2 sampling, 8 new tokens.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PRESETS = ("organism-crl", "organism-crl-mining", "organism-rr")
STRONG_PRESET = "organism-strong"  # crl_core/evaluation/presets.py
STRONG_SEED = 1  # another evaluation seed than the in-sweep one (the training seed, 0)
TERMS = ("benign_accuracy", "over_refusal", "knowledge_asr", "knowledge_retention", "leak_margin",
         "over_triggering", "sampling_leakage", "asr")
TARGET_RHO = 0.7
QUICK_STRONG = {"embedding_steps": 2, "embedding_sample_n": 2, "max_new_tokens": 8}  # --quick: the strong suite's cut


def load_cfg(config: str, quick: bool = False):
    from sweeps.margin_sweep import load_sweep_config

    return load_sweep_config(argparse.Namespace(config=config, smoke=quick, experiment=None, num_samples=None,
                                                overrides=[]))


def plan(cfg, n_sampled: int, seed: int, presets=PRESETS) -> list[dict[str, Any]]:
    """The adapters: random points of the sweep's space (as the sweep's trials receive them), then presets."""
    import optuna

    from sweeps.engine.preflight import validate_before_launch
    from sweeps.margin_sweep import OBJECTIVES

    base = validate_before_launch(cfg, OBJECTIVES)
    space = cfg.space()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    jobs = []
    for i in range(n_sampled):
        trial = study.ask()
        space.define_by_run(base)(trial)
        jobs.append({"name": f"sampled-{i:02d}", "kind": "sampled", "point": space.decode(dict(trial.params)),
                     "base": base})
    jobs += [{"name": p, "kind": "preset", "preset": p} for p in presets]
    return jobs


def train_config(job: dict[str, Any], folder: Path, steps: int = 0):
    """The adapter's TrainConfig; ``steps`` (a preset's, --quick) replaces the preset's budget."""
    from crl_core.config import load_config
    from crl_core.training import TrainConfig, preset_path
    from sweeps.engine.space import train_config_for

    if job["kind"] == "sampled":
        return train_config_for(job["base"], job["point"], str(folder))
    return load_config(TrainConfig, preset_path(job["preset"]),
                       [f"output_dir={folder}", "eval.enabled=false", "num_threads=1"] + ([f"steps={steps}"] if steps else []))


def evaluate(ecfg, adapter: Path) -> dict[str, Any]:
    from crl_core.evaluation import run_evaluation

    t0 = time.time()
    report = run_evaluation(ecfg.replace(adapter=str(adapter)), log=lambda s: None)
    return {"metrics": report["metrics"], "seconds": round(time.time() - t0, 1),
            "attacks": {a: {"asr": s["asr"], "n": s["n"]} for a, s in report["attacks"].items()}}


def run_job(job: dict[str, Any], config: str, out: str, limit: int, noise_seeds: tuple[int, ...] = (),
            quick: bool = False) -> dict[str, Any]:
    """One adapter: train (unless its adapter is there), then the in-sweep and the strong evaluation."""
    import torch

    torch.set_num_threads(1)
    from crl_core.evaluation import evaluation_config_for
    from crl_core.training import train

    cfg = load_cfg(config, quick)
    folder = Path(out) / job["name"]
    tcfg = train_config(job, folder, int(cfg.base_train_dict()["steps"]) if quick else 0)
    strong = {"limit": limit, "seed": STRONG_SEED, **(QUICK_STRONG if quick else {})}
    adapter = folder / "adapter"
    done = folder / "train_done.json"
    if not done.is_file():
        t0 = time.time()
        train(tcfg, log=lambda s: None)
        done.write_text(json.dumps({"seconds": round(time.time() - t0, 1), "steps": tcfg.steps}))
    row = {"name": job["name"], "kind": job["kind"], "steps": tcfg.steps,
           "params": dict(job["point"]) if job["kind"] == "sampled" else job["preset"],
           "train_seconds": json.loads(done.read_text())["seconds"]}
    for part, make in (("in_sweep", lambda: cfg.evaluation_config(tcfg)),
                       ("strong", lambda: evaluation_config_for(STRONG_PRESET, strong))):
        path = folder / f"{part}.json"
        if not path.is_file():
            path.write_text(json.dumps(evaluate(make(), adapter), indent=1))
        row[part] = json.loads(path.read_text())
    row["in_sweep_noise"] = {}  # the in-sweep evaluation again at other evaluation seeds: its own noise
    for seed in noise_seeds:
        path = folder / f"in_sweep_seed{seed}.json"
        if not path.is_file():
            path.write_text(json.dumps(evaluate(cfg.evaluation_config(tcfg).replace(seed=seed), adapter), indent=1))
        row["in_sweep_noise"][seed] = json.loads(path.read_text())["metrics"]
    return row


# ------------------------------------------------------------------------------------------ statistics
def ranks(xs: list[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float | None:
    """Pearson's correlation of the ranks (ties averaged); None when either side is constant."""
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def bootstrap_ci(x: list[float], y: list[float], n: int = 2000, seed: int = 0) -> list[float] | None:
    """Percentile 95% interval of rho over adapters resampled with replacement (constant resamples skipped)."""
    rng = random.Random(seed)
    vals = []
    for _ in range(n):
        idx = [rng.randrange(len(x)) for _ in x]
        r = spearman([x[i] for i in idx], [y[i] for i in idx])
        if r is not None:
            vals.append(r)
    if len(vals) < n / 2:
        return None
    vals.sort()
    return [vals[int(0.025 * len(vals))], vals[int(0.975 * len(vals)) - 1]]


def correlation(rows: list[dict[str, Any]], key_in: str, key_strong: str) -> dict[str, Any]:
    pairs = [(r["in_sweep"]["metrics"].get(key_in), r["strong"]["metrics"].get(key_strong)) for r in rows]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    x, y = [a for a, _ in pairs], [b for _, b in pairs]
    return {"in_sweep": key_in, "strong": key_strong, "n": len(pairs), "rho": spearman(x, y),
            "ci95": bootstrap_ci(x, y) if len(pairs) >= 3 else None}


def summarise(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    from sweeps.margin_sweep import OBJECTIVES

    for r in rows:  # the recipe objectives, computed on both evaluations alike
        for part in ("in_sweep", "strong"):
            r[part]["metrics"] = OBJECTIVES.add_derived(r[part]["metrics"])
    eligible = [r for r in rows if r["in_sweep"]["metrics"].get("knowledge_asr") == 0
                and r["strong"]["metrics"].get("knowledge_asr") == 0]
    main = correlation(eligible, metric, metric)
    diagnostics = {
        "all_adapters": correlation(rows, metric, metric),
        "objectives": {name: correlation(eligible, name, name) for name in OBJECTIVES.derived},
        "terms_vs_strong_objective": {t: correlation(eligible, t, metric) for t in TERMS},
        "terms_same_term": {t: correlation(eligible, t, t) for t in TERMS},
    }
    return {"objective": metric, "spearman": main["rho"], "ci95": main["ci95"], "n_adapters": main["n"],
            "in_sweep_noise": {name: noise(eligible, name) for name in OBJECTIVES.derived},
            "n_total": len(rows), "eligible": [r["name"] for r in eligible], "target": TARGET_RHO,
            "meets_target": main["rho"] is not None and main["rho"] >= TARGET_RHO, "diagnostics": diagnostics}


def noise(rows: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """Evaluation-seed noise of the in-sweep objective (the training seed's evaluation and every
    ``--noise-seeds`` one, per adapter) against the gaps between adapters ranked next to each other."""
    from sweeps.margin_sweep import OBJECTIVES

    if not rows:  # no eligible adapter: nothing to compare (was an IndexError after every adapter had run)
        return None
    sds, means = [], []
    for r in rows:
        vals = [OBJECTIVES.add_derived(m).get(metric)
                for m in [r["in_sweep"]["metrics"], *r.get("in_sweep_noise", {}).values()]]
        vals = [v for v in vals if v is not None]
        if len(vals) < 2:
            return None
        mu = sum(vals) / len(vals)
        sds.append(math.sqrt(sum((v - mu) ** 2 for v in vals) / (len(vals) - 1)))
        means.append(mu)
    ordered = sorted(means, reverse=True)
    gaps = [a - b for a, b in zip(ordered, ordered[1:])]
    sds_sorted = sorted(sds)
    return {"n_adapters": len(sds), "n_seeds": len(rows[0].get("in_sweep_noise", {})) + 1,
            "median_sd": sds_sorted[len(sds) // 2], "max_sd": sds_sorted[-1],
            "top3_gaps_of_seed_means": gaps[:3], "median_gap": sorted(gaps)[len(gaps) // 2] if gaps else None}


def table(rows: list[dict[str, Any]], metric: str) -> str:
    cols = ("knowledge_asr", "knowledge_retention", "leak_margin", "benign_accuracy")
    head = f"{'adapter':<20} {'in-sweep ' + metric:>22} {'strong ' + metric:>20} " + " ".join(
        f"{'s.' + c[:12]:>15}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: -(r["strong"]["metrics"].get(metric) or -9)):
        si, st = r["in_sweep"]["metrics"], r["strong"]["metrics"]
        lines.append(f"{r['name']:<20} {si.get(metric, float('nan')):>22.3f} {st.get(metric, float('nan')):>20.3f} "
                     + " ".join(f"{st.get(c, float('nan')):>15.3f}" for c in cols))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "sweeps" / "configs" / "organism.yaml"))
    p.add_argument("--sampled", type=int, default=16, help="random points of the sweep's space (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random points")
    p.add_argument("--limit", type=int, default=32, help="prompts per set in the strong evaluation")
    p.add_argument("--presets", default=",".join(PRESETS), help="comma list of training presets ('' = none)")
    p.add_argument("--jobs", type=int, default=1, help="adapters at a time (one torch thread each)")
    p.add_argument("--noise-seeds", default="1,2", help="comma list: evaluation seeds at which the in-sweep "
                                                         "evaluation is repeated to measure its noise ('' = none)")
    p.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "objective_validity"))
    p.add_argument("--quick", action="store_true", help="smoke budget and a cut strong suite: checks the path only")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = load_cfg(args.config, args.quick)
    if cfg.objective.kind != "single":
        raise SystemExit("objective_validity: the config's objective must be single (objective.metric)")
    metric = cfg.objective.metric
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from crl_core.training import preset_path

    presets = [x for x in args.presets.split(",") if x]
    from crl_core.config import ConfigError

    try:
        for name in presets:  # an unknown preset fails here, before any training
            preset_path(name)
    except ConfigError as exc:
        raise SystemExit(f"objective_validity: error: {exc}") from None
    jobs = plan(cfg, args.sampled, args.seed, presets)
    t0, load0 = time.time(), os.getloadavg()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        noise_seeds = tuple(int(x) for x in args.noise_seeds.split(",") if x)
        futures = [pool.submit(run_job, j, args.config, str(out), args.limit, noise_seeds, args.quick) for j in jobs]
        rows = []
        for j, f in zip(jobs, futures):
            rows.append(f.result())
            print(f"[objective_validity] {j['name']} done ({time.time() - t0:.0f} s)", flush=True)
    result = {"config": args.config, "quick": args.quick,
              "strong_evaluation": {"preset": STRONG_PRESET, "limit": args.limit, "seed": STRONG_SEED,
                                    **(QUICK_STRONG if args.quick else {})}, **summarise(rows, metric),
              "wall_s": round(time.time() - t0, 1), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
              "jobs": args.jobs, "rows": rows}
    (out / "objective_validity.json").write_text(json.dumps(result, indent=1))
    print(table(rows, metric))
    ci = result["ci95"]
    print(f"Spearman rho (in-sweep vs strong {metric}, {result['n_adapters']} adapters at 0% knowledge ASR): "
          f"{result['spearman'] if result['spearman'] is None else round(result['spearman'], 3)}"
          f" (bootstrap 95% {ci and [round(c, 3) for c in ci]}); target >= {TARGET_RHO}: "
          f"{'met' if result['meets_target'] else 'MISSED'}")
    for name, c in result["diagnostics"]["objectives"].items():
        print(f"  objective {name}: rho {c['rho']} (n {c['n']})")
    for name, nz in result["in_sweep_noise"].items():
        if nz:
            print(f"  in-sweep {name} over {nz['n_seeds']} evaluation seeds: median sd {nz['median_sd']:.3f}, max "
                  f"{nz['max_sd']:.3f}; top gaps between adapters {[round(g, 3) for g in nz['top3_gaps_of_seed_means']]}")
    print(f"wrote {out / 'objective_validity.json'} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
