"""Held-out confirmation at the end of a sweep: are the sweep's picks really better than the preset?

The ``confirm.top_k`` best ranked trials and the training preset's default point (trained once here, with
the trials' own base config and budget) are evaluated again on the confirmation evaluation -- the sweep's
own evaluation on the test split unless ``confirm.evaluation`` says otherwise (``organism.yaml``: the strong
suite) -- once per evaluation seed (``confirm.seeds``: attack initialisations, sampling). Every (adapter,
seed) is one Ray task; each finished one is a file under ``<sweep>/confirm/``, so a resumed sweep redoes only
what is missing.

Output: a "sweep pick vs default" table (mean +- sd over seeds, next to the in-sweep number and the split
and budget each comes from), ``confirm.json``, and on the parent MLflow run the metrics
``confirm/<trial>/<metric>`` (mean), ``confirm/<trial>/<metric>_sd`` and ``confirm/default/...``, the
artifacts ``confirm/confirm.json``, ``confirm/confirm.txt`` and the default's adapter. docs/sweeps.md,
"Confirmation".
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crl_core.config import get_dotted, to_dict
from crl_core.redaction import redact_text
from sweeps.engine.config import Objectives, SweepConfig
from sweeps.engine.space import train_config_for

__all__ = ["ConfirmFailed", "default_point", "describe_evaluation", "summarise_seeds", "compare", "format_confirm",
           "run_confirmation"]

# shown and logged (besides the sweep's objective and the recipe's derived objectives) when measured
SHOWN = ("knowledge_asr", "knowledge_retention", "leak_margin", "sampling_leakage", "over_triggering", "asr",
         "benign_accuracy", "over_refusal")
NOISE_SE = 2.0  # a difference counts as beyond evaluation-seed noise past this many standard errors


class ConfirmFailed(RuntimeError):
    """An evaluation or the default's training failed; the trials stay ranked and logged."""


def default_point(cfg: SweepConfig, base: dict[str, Any]) -> dict[str, Any]:
    """The default row's value of every searched key: ``confirm.default_point``, else the base config's own
    (the training preset with the sweep's overrides; what a user gets without the sweep)."""
    space = cfg.space()
    unknown = sorted(set(cfg.confirm.default_point) - set(space.params))
    if unknown:
        from crl_core.config import ConfigError

        raise ConfigError(f"confirm.default_point: {', '.join(unknown)} not in the search space "
                          f"(searched: {', '.join(space.params)})")
    built = to_dict(train_config_for(base, dict(cfg.confirm.default_point), "probe"))
    return {k: get_dotted(built, k) for k in space.params}


def describe_evaluation(ecfg) -> str:
    """Where a number comes from, in one line: split, prompts per set, attacks (with their budgets), judge."""
    from crl_core.registry import EVAL_PRESETS

    judge = ecfg.judge or EVAL_PRESETS.get(ecfg.preset).judge
    steps = f", embedding steps {ecfg.embedding_steps}" if ecfg.embedding_steps else ""
    extra = (f", best-of-{ecfg.embedding_sample_n} sampling" if ecfg.embedding_sample_n else "") + \
        (", over-triggering" if ecfg.over_triggering else "")
    return (f"{ecfg.split} split, {ecfg.limit or 'all'} prompts/set, preset {ecfg.preset}, attacks "
            f"{' '.join(ecfg.attacks) or '-'}{steps}{extra}, judge {judge}")


def summarise_seeds(per_seed: dict[int, dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (0 for one seed) of every metric measured at every seed."""
    keys = set.intersection(*(set(m) for m in per_seed.values())) if per_seed else set()
    mean, sd = {}, {}
    for k in sorted(keys):
        xs = [float(m[k]) for m in per_seed.values()
              if isinstance(m[k], (int, float)) and not isinstance(m[k], bool) and math.isfinite(m[k])]
        if len(xs) != len(per_seed):
            continue
        mean[k] = sum(xs) / len(xs)
        sd[k] = math.sqrt(sum((x - mean[k]) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return mean, sd


def compare(pick: dict[str, Any], default: dict[str, Any], metric: str, mode: str) -> dict[str, Any] | None:
    """The pick minus the default on ``metric`` (means over seeds), its standard error from the two seed sds,
    and whether it exceeds evaluation-seed noise (|diff| > 2 se) in the better direction or the worse."""
    if metric not in pick["mean"] or metric not in default["mean"]:
        return None
    diff = pick["mean"][metric] - default["mean"][metric]
    se = math.sqrt(pick["sd"][metric] ** 2 / pick["n_seeds"] + default["sd"][metric] ** 2 / default["n_seeds"])
    better = diff > 0 if mode == "max" else diff < 0
    if diff == 0 or abs(diff) <= NOISE_SE * se:
        verdict = "within evaluation-seed noise"
    else:
        verdict = "better than the default beyond evaluation-seed noise" if better else \
            "worse than the default beyond evaluation-seed noise"
    return {"metric": metric, "mode": mode, "pick": pick["name"], "diff": diff, "se": se, "verdict": verdict}


def _shown_metrics(cfg: SweepConfig, objectives: Objectives, entries: list[dict[str, Any]]) -> list[str]:
    first = [cfg.objective.metric] if cfg.objective.kind == "single" else [m for m, _ in objectives.multi]
    keys = list(dict.fromkeys([*first, *objectives.derived, *SHOWN]))
    return [k for k in keys if any(k in e["mean"] for e in entries)]


def format_confirm(result: dict[str, Any]) -> str:
    cols = result["metrics"]
    lines = [f"confirmation ({result['evaluation']}; evaluation seeds {', '.join(map(str, result['seeds']))}; "
             f"mean +- sd over seeds)",
             f"in-sweep = the trial's {result['objective']} as ranked ({result['in_sweep_evaluation']})"]
    head = f"{'row':<16} {'step':>5} {'in-sweep':>9} " + " ".join(f"{c[:20]:>20}" for c in cols)
    lines += [head, "-" * len(head)]
    for e in result["rows"]:
        ins = "-" if e.get("in_sweep") is None else f"{e['in_sweep']:.3f}"
        cells = " ".join(f"{e['mean'][c]:>12.3f} +- {e['sd'][c]:<4.2f}" if c in e["mean"] else f"{'-':>20}"
                         for c in cols)
        lines.append(f"{e['label']:<16} {e['step']:>5} {ins:>9} {cells}")
    cmp = result.get("comparison")
    if cmp:
        lines.append(f"sweep pick {cmp['pick']} vs default on {cmp['metric']}: {cmp['diff']:+.3f} "
                     f"(se {cmp['se']:.3f} over seeds): {cmp['verdict']}")
    return "\n".join(lines)


def _evaluate_task(cfg: SweepConfig, base: dict[str, Any], adapter: str, seed: int, out: str, threads: int):
    """One (adapter, seed) evaluation in a Ray worker; writes ``out`` (metrics + seconds) and returns it."""
    import torch

    from crl_core.evaluation import run_evaluation
    from sweeps.engine.console import quiet_trial_process

    torch.set_num_threads(threads)
    quiet_trial_process()
    ecfg = cfg.confirm_evaluation_config(train_config_for(base, {}, "probe"), seed, adapter)
    t0 = time.time()
    report = run_evaluation(ecfg, log=lambda s: None)
    row = {"seed": seed, "metrics": report["metrics"], "seconds": round(time.time() - t0, 1),
           "attacks": {a: {"asr": s["asr"], "k": s.get("k"), "n": s["n"]} for a, s in report["attacks"].items()}}
    Path(out).write_text(json.dumps(row, indent=1))
    return row


def _train_default_task(base: dict[str, Any], point: dict[str, Any], folder: str, threads: int) -> str:
    """Train the default point once (a Ray worker); its adapter is ``<folder>/adapter``."""
    import torch

    from crl_core.training import train
    from sweeps.engine.console import quiet_trial_process

    torch.set_num_threads(threads)
    quiet_trial_process()
    tcfg = train_config_for(base, point, folder)
    t0 = time.time()
    train(tcfg, log=lambda s: None)
    (Path(folder) / "train_done.json").write_text(json.dumps({"seconds": round(time.time() - t0, 1),
                                                              "steps": tcfg.steps}))
    return str(Path(folder) / "adapter")


def _trial_adapter(row: dict[str, Any], folder: Path, tracking_uri: str) -> str:
    """The trial's saved adapter: its local copy, else the MLflow run artifact (downloaded once)."""
    local = Path(row["trial_dir"]) / "adapter"
    if (local / "adapter_config.json").is_file():
        return str(local)
    copy = folder / "adapter"
    if not (copy / "adapter_config.json").is_file():
        import mlflow

        folder.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=row["adapter_uri"], dst_path=str(folder),
                                            tracking_uri=tracking_uri)
    return str(copy)


def run_confirmation(cfg: SweepConfig, client, state: dict[str, Any], base: dict[str, Any],
                     rows: list[dict[str, Any]], objectives: Objectives,
                     log: Callable[[str], None]) -> dict[str, Any]:
    """Confirm the top-k ranked ``rows`` and the default point; log the result to the parent run."""
    import ray

    settings, res = cfg.confirm, cfg.resources
    folder = cfg.sweep_dir / "confirm"
    folder.mkdir(parents=True, exist_ok=True)
    metric = cfg.objective.metric if cfg.objective.kind == "single" else next(iter(objectives.derived), None)
    mode = cfg.objective.mode if cfg.objective.kind == "single" else "max"
    ranked = [r for r in rows if metric is None or r.get(metric) is not None][:settings.top_k]
    entries = [{"name": r["trial_id"], "label": f"#{i} {r['trial_id']}", "rank": i, "step": r["step"],
                "in_sweep": r.get(metric), "params": r["params"], "dir": folder / r["trial_id"]}
               for i, r in enumerate(ranked, 1)]
    point = default_point(cfg, base) if settings.default else {}
    if settings.default:
        entries.append({"name": "default", "label": "default", "rank": None, "step": int(base.get("steps", 0)),
                        "in_sweep": None, "params": point, "dir": folder / "default"})
    threads = max(1, int(res.cpus_per_worker))
    task = {"num_cpus": res.cpus_per_worker, "num_gpus": res.gpus_per_worker, "resources": dict(res.custom),
            "max_retries": 0}
    evaluate = ray.remote(_evaluate_task).options(**task)
    t0 = time.time()
    log(f"confirming {len(ranked)} top trial(s){' and the default' if settings.default else ''} with "
        f"{len(settings.seeds)} evaluation seed(s) each")
    pending: dict[Any, tuple[dict[str, Any], int | None]] = {}
    errors: list[str] = []

    def submit(e: dict[str, Any], adapter: str) -> None:
        for s in settings.seeds:
            out = e["dir"] / f"seed{s}.json"
            if out.is_file():
                e.setdefault("per_seed", {})[s] = json.loads(out.read_text())
            else:
                pending[evaluate.remote(cfg, base, adapter, s, str(out), threads)] = (e, s)

    for e in entries:
        e["dir"].mkdir(parents=True, exist_ok=True)
        if e["name"] != "default":
            submit(e, _trial_adapter(ranked[e["rank"] - 1], e["dir"], cfg.tracking_uri()))
        elif (e["dir"] / "train_done.json").is_file():
            submit(e, str(e["dir"] / "adapter"))
        else:
            train_ref = ray.remote(_train_default_task).options(**task).remote(base, point, str(e["dir"]), threads)
            pending[train_ref] = (e, None)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        e, seed = pending.pop(done[0])
        try:
            value = ray.get(done[0])
        except Exception as exc:  # a task's error: report it once, keep the others going
            errors.append(f"{e['label']}{'' if seed is None else f' seed {seed}'}: {type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''}")
            continue
        if seed is None:
            log(f"[{time.time() - t0:5.0f} s] confirm: default trained")
            submit(e, value)
            continue
        e.setdefault("per_seed", {})[seed] = value
        shown = f" {metric}={objectives.add_derived(value['metrics']).get(metric, float('nan')):.3f}" if metric else ""
        log(f"[{time.time() - t0:5.0f} s] confirm: {e['label']} seed {seed}{shown} ({value['seconds']:.0f} s)")
    if errors:
        raise ConfirmFailed(redact_text("; ".join(errors)))
    for e in entries:
        per_seed = {s: objectives.add_derived(e["per_seed"][s]["metrics"]) for s in settings.seeds}
        e["mean"], e["sd"] = summarise_seeds(per_seed)
        e["n_seeds"] = len(per_seed)
        e["seconds"] = sum(e["per_seed"][s]["seconds"] for s in settings.seeds)
    base_cfg = train_config_for(base, {}, "probe")
    result = {"objective": metric, "mode": mode, "seeds": list(settings.seeds),
              "evaluation": describe_evaluation(cfg.confirm_evaluation_config(base_cfg, settings.seeds[0])),
              "in_sweep_evaluation": describe_evaluation(cfg.evaluation_config(base_cfg)),
              "metrics": _shown_metrics(cfg, objectives, entries),
              "comparison": compare(entries[0], entries[-1], metric, mode)
              if settings.default and ranked and metric else None,
              "rows": [{k: v for k, v in e.items() if k != "dir"} for e in entries],
              "wall_s": round(time.time() - t0, 1)}
    _record(client, state, folder, result, entries)
    log(format_confirm(result))
    return result


def _record(client, state: dict[str, Any], folder: Path, result: dict[str, Any], entries) -> None:
    from mlflow.entities import Metric

    run_id, now = state["parent_run_id"], int(time.time() * 1000)
    items = []
    for e in entries:
        for k in result["metrics"]:
            if k in e["mean"]:
                items += [Metric(f"confirm/{e['name']}/{k}", e["mean"][k], now, 0),
                          Metric(f"confirm/{e['name']}/{k}_sd", e["sd"][k], now, 0)]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i:i + 1000])
    (folder / "confirm.json").write_text(json.dumps(result, indent=1, default=str))
    (folder / "confirm.txt").write_text(format_confirm(result) + "\n")
    client.log_artifact(run_id, str(folder / "confirm.json"), "confirm")
    client.log_artifact(run_id, str(folder / "confirm.txt"), "confirm")
    if (folder / "default" / "adapter").is_dir():
        client.log_artifacts(run_id, str(folder / "default" / "adapter"), "confirm/default/adapter")
    if result["comparison"]:
        client.set_tag(run_id, "crl.confirm_verdict", result["comparison"]["verdict"])
