"""Search efficiency on the organism objective: Optuna TPE (+ASHA) vs random search, same space and budget.

    python bench/search_efficiency.py [--config sweeps/configs/organism.yaml] [--quick | --tiny]
                                      [--budget N] [--seeds 0,1,2] [--startup-trials K] [--out DIR]
                                      [key=value ...]

Question (issue target): how many trials does TPE+ASHA need to reach the best score random search finds
in 32 trials? Target <= 11.

Faithfulness: every trial is one point run by ``sweeps.engine.run_point``, the sweep trial's own loop (the
sweep's base training config with the point's values, ``DefenseTrainer``, the sweep's evaluation every
``objective.eval_every`` steps), in this process: no Ray (trials run one after another, so Ray adds nothing
to the comparison but minutes) and none of a trial's bookkeeping (MLflow run, adapter, checkpoint), which
changes no score. The search space is the sweep's (``margin_sweep.SEARCH_SPACE`` + the YAML), sampled by
its own define-by-run function (``SearchSpace.define_by_run``), as the engine's ``OptunaSearch`` does.

- TPE+ASHA: ``TPESampler(seed + 1)`` (the engine's sampler and seed for a new sweep; Optuna's default startup of 10 random trials unless
  ``--startup-trials``) and an ASHA-style early stop at the rungs (``SuccessiveHalvingPruner`` with the
  engine's ``grace_period`` = eval_every x grace_rungs and reduction factor; the ``on_eval`` hook of
  ``run_point`` stops the trial). As with Ray's ``OptunaSearch`` + ``ASHAScheduler``, a stopped trial is
  told to the study as COMPLETE with its last evaluated score.
- random: ``RandomSampler(10000 + seed)`` (not TPE's seed: TPE's startup draws would repeat it), no early stop (every trial runs all its steps).

Both searches are interleaved trial by trial (random 1, TPE 1, random 2, ...) so load drift on a shared
machine hits both alike. A trial's score is its last evaluated score (``objective.metric``, default
``score`` = benign_accuracy - asr - over_refusal), which is also how the sweep ranks trials.
"trials to reach" = the 1-based index of the first TPE trial whose score >= random's best of the budget.

Modes: the full mode uses the config's budget (60 steps, 2 rungs, 32 prompts per set; ~25-50 s a trial on
2 CPUs: ~35 min per seed) and 32 trials per search; ``--quick`` uses 12 vs 12 trials, 20 steps, rungs every
10 steps, 16 prompts, a shorter embedding attack and 4 TPE startup trials (a few minutes per seed);
``--tiny`` runs 2 vs 2 trials (1 TPE startup trial) of the tests' tiny sweep on a tiny random Llama
(sweeps/tiny.py: 4 steps, proxy evaluation; seconds per trial): a check that the path works, no measurement.
The mode is printed with the results. Outputs (the Optuna studies, results.json, and the empty MLflow store
the pre-flight check opens; ``--tiny``: the tiny model and its sweep YAML) go under
``outputs/bench/search_efficiency-<stamp>/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_TRIALS = 11
QUICK_OVERRIDES = ["train.overrides.steps=20", "train.overrides.log_every=10", "objective.eval_every=10",
                   "evaluation.limit=16", "evaluation.embedding_steps=10", "evaluation.max_new_tokens=16"]


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def load_cfg(config: str, overrides: list[str]):
    from sweeps.margin_sweep import load_sweep_config

    ns = argparse.Namespace(config=config, smoke=False, experiment=None, num_samples=None, overrides=list(overrides))
    return load_sweep_config(ns)


def suggest(trial, space, base) -> dict[str, Any]:
    """The point the engine's searcher would sample: its own define-by-run function (conditional dimensions
    only where active), as typed values (dotted key -> value)."""
    space.define_by_run(base)(trial)
    return space.decode(dict(trial.params))


class Search:
    """One search (random or TPE+ASHA) on its own Optuna study and its own sweep folder."""

    def __init__(self, name: str, seed: int, cfg, base: dict[str, Any], startup: int) -> None:
        import optuna

        self.name, self.seed, self.base = name, seed, base
        self.cfg = cfg.replace(experiment=f"{name}-s{seed}")
        self.space = self.cfg.space()
        self.steps = int(base.get("steps", 1))
        self.every = self.cfg.objective.eval_every or self.steps
        obj = self.cfg.objective
        direction = "maximize" if obj.mode == "max" else "minimize"
        if name == "tpe":
            # the engine seeds TPE with cfg.seed + segment (1 for a new sweep)
            sampler = optuna.samplers.TPESampler(seed=seed + 1, n_startup_trials=startup)
            pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=self.every * obj.grace_rungs,
                                                            reduction_factor=obj.reduction_factor,
                                                            min_early_stopping_rate=0)
        else:
            # another seed stream than TPE's: TPE's startup draws come from RandomSampler(seed) too, and the
            # same seed would make the first trials of both searches identical
            sampler, pruner = optuna.samplers.RandomSampler(seed=10_000 + seed), optuna.pruners.NopPruner()
        self.cfg.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner,
                                         study_name=self.cfg.experiment,
                                         storage=f"sqlite:///{self.cfg.sweep_dir / 'optuna.db'}")
        self.rows: list[dict[str, Any]] = []
        self.cpu_s = 0.0

    def run_one(self) -> dict[str, Any]:
        import optuna

        from sweeps.engine import PointHooks, run_point
        from sweeps.margin_sweep import OBJECTIVES

        metric = self.cfg.objective.metric
        trial = self.study.ask()
        point = suggest(trial, self.space, self.base)
        trial_id = f"{self.name}-s{self.seed}-{len(self.rows) + 1:03d}"
        last: dict[str, Any] = {}

        def on_eval(step: int, seconds: float, metrics: dict[str, Any]) -> bool:  # what the sweep reports to Tune
            last.update(metrics, step=step)
            trial.report(float(metrics[metric]), step)
            return step < self.steps and trial.should_prune()  # ASHA stop at a rung (never at the last step)

        t0, c0 = time.time(), time.process_time()
        stopped, error = False, None
        try:
            stopped = run_point(self.cfg, point, OBJECTIVES, self.cfg.sweep_dir / "trials" / trial_id,
                                hooks=PointHooks(on_eval=on_eval), base=self.base, save_adapter=False,
                                log=lambda s: None).stopped
        except Exception as exc:  # a failed trial counts as a trial with no score
            error = f"{type(exc).__name__}: {exc}"
        wall, cpu = time.time() - t0, time.process_time() - c0
        self.cpu_s += cpu
        value = last.get(metric)
        # as OptunaSearch does on a Tune trial's completion: the last reported value, COMPLETE
        if value is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, float(value))
        row = {"trial": len(self.rows) + 1, "trial_id": trial_id, "score": value, "step": last.get("step"),
               "stopped": stopped, "error": error, "wall_s": wall, "cpu_s": cpu, "params": point}
        self.rows.append(row)
        return row

    def best_curve(self, sign: int) -> list[float | None]:
        best, out = None, []
        for r in self.rows:
            if r["score"] is not None and (best is None or sign * r["score"] > sign * best):
                best = r["score"]
            out.append(best)
        return out


def trials_to_reach(curve: list[float | None], target: float | None, sign: int) -> int | None:
    if target is None:
        return None
    for i, b in enumerate(curve, 1):
        if b is not None and sign * b >= sign * target - 1e-12:
            return i
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "sweeps" / "configs" / "organism.yaml"))
    p.add_argument("--quick", action="store_true", help="12 vs 12 trials, 20 steps, smaller evaluation")
    p.add_argument("--tiny", action="store_true", help="2 vs 2 trials of a tiny random model's tiny sweep instead of "
                   "--config (seconds per trial: checks the path, measures nothing)")
    p.add_argument("--budget", type=int, default=None, help="trials per search (32; --quick 12; --tiny 2)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (full: 0,1,2; --quick, --tiny: 0)")
    p.add_argument("--startup-trials", type=int, default=None,
                   help="TPE random startup trials (full: 10, Optuna's default, as in the engine; --quick: 4; "
                        "--tiny: 1)")
    p.add_argument("--out", default=None, help="output folder (default outputs/bench/search_efficiency-<stamp>)")
    p.add_argument("overrides", nargs="*", help="extra sweep key=value overrides")
    args = p.parse_args(argv)
    if args.quick and args.tiny:
        print("search_efficiency: --quick and --tiny exclude each other", file=sys.stderr)
        return 2

    import torch

    from sweeps.engine import validate_before_launch
    from sweeps.margin_sweep import OBJECTIVES

    torch.set_num_threads(1)  # as function_trial
    small = args.quick or args.tiny
    budget = args.budget or (2 if args.tiny else 12 if args.quick else 32)
    seeds = [int(s) for s in (args.seeds or ("0" if small else "0,1,2")).split(",") if s.strip()]
    startup = args.startup_trials if args.startup_trials is not None else (1 if args.tiny else 4 if args.quick else 10)
    out = Path(args.out or ROOT / "outputs" / "bench" / f"search_efficiency-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        from sweeps.tiny import write_tiny_sweep

        args.config = str(write_tiny_sweep(out))
    over = [f"storage_dir={out / 'sweeps'}", f"tracking.uri=sqlite:///{out / 'mlflow.db'}",
            f"tracking.artifact_root={out / 'mlruns'}"] + (QUICK_OVERRIDES if args.quick else []) + args.overrides
    cfg = load_cfg(args.config, over)
    if cfg.objective.kind != "single":
        print("search_efficiency: needs objective.kind=single (one score to compare)", file=sys.stderr)
        return 2
    sign = 1 if cfg.objective.mode == "max" else -1
    mode = ("QUICK (--quick: 20 steps, rungs every 10, 16 prompts, 4 TPE startup trials)" if args.quick
            else "TINY (--tiny: tiny model and sweep, 1 TPE startup trial)" if args.tiny
            else "FULL (the config's budget)")
    base = validate_before_launch(cfg, OBJECTIVES)  # the sweep's pre-flight checks; its base training config
    print(f"search_efficiency: {mode}; {budget} random vs {budget} TPE+ASHA trials per seed, seeds {seeds}; "
          f"steps {base.get('steps')}, eval_every {cfg.objective.eval_every}, evaluation {cfg.evaluation}; metric {cfg.objective.metric} ({cfg.objective.mode}); outputs {out}",
          flush=True)
    print(f"loadavg at start {loadavg()}", flush=True)
    t_all = time.time()
    per_seed = []
    for seed in seeds:
        rnd, tpe = Search("random", seed, cfg, base, startup), Search("tpe", seed, cfg, base, startup)
        t_seed, load0 = time.time(), loadavg()
        for i in range(budget):
            for s in (rnd, tpe):
                r = s.run_one()
                tag = "stopped" if r["stopped"] else ("ERROR " + r["error"][:120] if r["error"] else "full")
                score = "-" if r["score"] is None else f"{r['score']:+.3f}"
                print(f"[{time.strftime('%H:%M:%S')}] seed {seed} {s.name:<6} trial {i + 1:>2}/{budget}: "
                      f"{cfg.objective.metric} {score} at step {r['step']} ({tag}) {r['wall_s']:.1f} s wall, "
                      f"{r['cpu_s']:.1f} s CPU, load {loadavg()[0]:.2f}", flush=True)
        rc, tc = rnd.best_curve(sign), tpe.best_curve(sign)
        target = rc[-1]
        reach = trials_to_reach(tc, target, sign)
        rnd_reach_own = trials_to_reach(rc, target, sign)
        res = {"seed": seed, "random_best": target, "tpe_best": tc[-1], "tpe_trials_to_reach": reach,
               "random_trials_to_own_best": rnd_reach_own,
               "random_wall_s": sum(r["wall_s"] for r in rnd.rows), "tpe_wall_s": sum(r["wall_s"] for r in tpe.rows),
               "tpe_wall_to_reach_s": sum(r["wall_s"] for r in tpe.rows[:reach]) if reach else None,
               "random_cpu_s": rnd.cpu_s, "tpe_cpu_s": tpe.cpu_s,
               "tpe_stopped": sum(r["stopped"] for r in tpe.rows), "errors": sum(bool(r["error"]) for r in rnd.rows + tpe.rows),
               "seed_wall_s": time.time() - t_seed, "load_start": load0, "load_end": loadavg(),
               "random_curve": rc, "tpe_curve": tc, "random_rows": rnd.rows, "tpe_rows": tpe.rows}
        per_seed.append(res)
        (out / "results.json").write_text(json.dumps({"mode": mode, "budget": budget, "startup": startup,
                                                      "per_seed": per_seed}, indent=2, default=str))

    def f(v):
        return "-" if v is None else f"{v:+.3f}"

    print()
    print("=" * 100)
    print(f"search_efficiency — mode: {mode}")
    print(f"  budget {budget} trials per search; TPE startup {startup}; ASHA grace {cfg.objective.eval_every}"
          f"x{cfg.objective.grace_rungs} steps, reduction {cfg.objective.reduction_factor}; steps {base.get('steps')}; "
          f"metric {cfg.objective.metric} ({cfg.objective.mode}); host {os.cpu_count()} CPUs; loadavg now {loadavg()}")
    print(f"{'seed':>4} {'rand best':>9} {'TPE best':>9} {'TPE trials→reach':>16} {'rand→own best':>13} "
          f"{'TPE stopped':>11} {'rand wall':>9} {'TPE wall':>8} {'TPE wall→reach':>14} {'rand CPU':>8} {'TPE CPU':>7} "
          f"{'load start/end':>15}")
    for r in per_seed:
        reach = str(r["tpe_trials_to_reach"]) if r["tpe_trials_to_reach"] else f"not in {budget}"
        wall_reach = "-" if r["tpe_wall_to_reach_s"] is None else f"{r['tpe_wall_to_reach_s']:.0f}"
        print(f"{r['seed']:>4} {f(r['random_best']):>9} {f(r['tpe_best']):>9} {reach:>16} "
              f"{r['random_trials_to_own_best']!s:>13} {r['tpe_stopped']:>11} {r['random_wall_s']:>9.0f} "
              f"{r['tpe_wall_s']:>8.0f} {wall_reach:>14} {r['random_cpu_s']:>8.0f} {r['tpe_cpu_s']:>7.0f} "
              f"{r['load_start'][0]:>7.2f}/{r['load_end'][0]:<7.2f}")
    reached = [r["tpe_trials_to_reach"] for r in per_seed]
    counted = [x if x is not None else math.inf for x in reached]
    med = statistics.median(counted)
    verdict = "PASS" if med <= TARGET_TRIALS else "FAIL"
    print(f"  TPE trials to reach random's best of {budget}: per seed {reached}; median "
          f"{'not reached' if math.isinf(med) else f'{med:g}'}   target <= {TARGET_TRIALS} "
          f"(defined for 32 trials, full mode)  {verdict if not small and budget == 32 else 'n/a in this mode'}")
    if small or budget != 32:
        print(f"  NOTE: {mode.split(' ')[0]} mode with budget {budget}: not the issue's measurement (random best of 32 "
              "on the default sweep); the numbers show the path works and give a rough signal only.")
    print(f"  total wall {time.time() - t_all:.0f} s; results {out / 'results.json'}")
    print("=" * 100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
