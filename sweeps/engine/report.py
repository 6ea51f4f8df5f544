"""The end of a sweep: rank the trials from MLflow, mark the Pareto front of the objective's plot axes (the
recipe's multi-objectives unless the objective declares its own),
print the table, plot the front, and record the best trial on the parent run (or fail the sweep)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweeps.engine.config import Objectives, SweepConfig
from sweeps.engine.runs import LOGGED_MODEL_TAG, mark_failed

__all__ = ["SweepFailed", "collect_rows", "format_table", "pareto_figure", "plot_pareto", "rank_and_record", "tie_groups"]

STANDARD_COLUMNS = ("asr", "benign_accuracy", "over_refusal")


class SweepFailed(RuntimeError):
    """The sweep ran but produced nothing it exists for (no trial reached the objective); one line."""


def pareto_front(rows: list[dict[str, Any]], multi: tuple[tuple[str, str], ...]) -> set[int]:
    """Indices of the rows no other row dominates on ``multi``. Computed here rather than with Optuna's
    ``study.best_trials``: the rows come from MLflow, which also holds trials a continuation segment told
    the study only at their end, and the front is shown for single-objective sweeps too."""
    def vec(r):
        return [r[m] if d == "min" else -r[m] for m, d in multi]

    scored = [i for i, r in enumerate(rows) if multi and all(r.get(m) is not None for m, _ in multi)]
    return {i for i in scored if not any(
        all(x <= y for x, y in zip(vec(rows[j]), vec(rows[i]))) and vec(rows[j]) != vec(rows[i]) for j in scored)}


def columns(cfg: SweepConfig, objectives: Objectives) -> list[str]:
    keys = [cfg.objective.metric] if cfg.objective.kind == "single" else []
    keys += [m for m, _ in objectives.multi] + list(objectives.derived) + list(STANDARD_COLUMNS)
    keys += [m for m, _ in objectives.axes(cfg.objective.kind, cfg.objective.metric)]
    return list(dict.fromkeys(keys))


def collect_rows(client, state: dict[str, Any], cfg: SweepConfig, objectives: Objectives) -> list[dict[str, Any]]:
    runs = client.search_runs([state["experiment_id"]], max_results=5000,
                              filter_string=f"tags.`crl.sweep_id` = '{state['sweep_id']}' AND tags.`crl.role` = 'trial'")
    rows = []
    for run in runs:
        m, tags = run.data.metrics, run.data.tags
        if "crl.orphaned" in tags:
            continue
        searched = tags.get("crl.searched", "").split(",")
        rows.append({"trial_id": tags["crl.trial_id"], "run_id": run.info.run_id, "status": run.info.status,
                     "step": int(tags.get("crl.adapter_step", 0)),
                     **{k: m.get(f"eval/{k}") for k in columns(cfg, objectives)},
                     "params": {k: run.data.params.get(k) for k in searched if k},
                     "adapter_uri": f"{run.info.artifact_uri}/adapter",
                     "trial_dir": str(cfg.state_root / tags.get("crl.trial_dir", "")),
                     "model_uri": f"models:/{tags[LOGGED_MODEL_TAG]}" if LOGGED_MODEL_TAG in tags else None})
    axes = objectives.axes(cfg.objective.kind, cfg.objective.metric)
    front = pareto_front(rows, axes)
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    if cfg.objective.kind == "multi":
        first = next(iter(objectives.derived), None)
        rows.sort(key=lambda r: (not r["pareto"], -(r.get(first) if first and r.get(first) is not None else -math.inf)))
    else:
        key, sign = cfg.objective.metric, (1 if cfg.objective.mode == "min" else -1)
        # equal objectives (robust_score clips retention at 1 nat) are ordered by the plot's first axis
        tie, tie_dir = axes[0] if axes else (key, cfg.objective.mode)

        def tiebreak(r):
            v = r.get(tie)
            return 0.0 if v is None else (v if tie_dir == "min" else -v)

        rows.sort(key=lambda r: (r[key] is None, sign * (r[key] or 0.0), tiebreak(r), -r["step"]))
    return rows


def format_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def num(v):
        return "-" if v is None else f"{v:.3f}"

    names = {"benign_accuracy": "benign", "over_refusal": "overref"}
    width = {c: max(6, len(names.get(c, c))) for c in cols}
    head = f"{'#':>3} {'trial':<12} {'step':>5} " + " ".join(f"{names.get(c, c):>{width[c]}}" for c in cols) + \
        f" {'pareto':>6}  params"
    lines = [head, "-" * len(head)]
    for i, r in enumerate(rows, 1):
        params = " ".join(f"{k}={_short(v)}" for k, v in sorted(r["params"].items()))
        lines.append(f"{i:>3} {r['trial_id']:<12} {r['step']:>5} " + " ".join(f"{num(r.get(c)):>{width[c]}}" for c in cols)
                     + f" {'*' if r['pareto'] else '':>6}  {params}")
    return "\n".join(lines)


def _short(v: Any) -> str:
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


def tie_groups(pts: list[dict[str, Any]], x: str, y: str) -> list[list[dict[str, Any]]]:
    """Trials at the same (x, y) point (to 4 significant digits), one group per point, in x order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in pts:
        groups.setdefault((_short(r[x]), _short(r[y])), []).append(r)
    return sorted(groups.values(), key=lambda g: (g[0][x], g[0][y]))


# label offsets tried in turn (points from the marker) until a label overlaps no other label
_OFFSETS = [(6, 6), (6, -12), (-6, 6), (-6, -12), (6, 18), (6, -24), (-6, 18), (-6, -24), (6, 30), (6, -36)]


def plot_pareto(rows: list[dict[str, Any]], multi: tuple[tuple[str, str], ...], path: Path) -> Path | None:
    """:func:`pareto_figure` saved to ``path``; None without data."""
    fig = pareto_figure(rows, multi)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pareto_figure(rows: list[dict[str, Any]], multi: tuple[tuple[str, str], ...]):
    """The first two multi-objectives as axes, the third as colour, the Pareto front outlined; None without
    data. Trials at the same point are drawn once, the marker sized by their count and labelled with all of
    them ("t1, t2 (2 tied)"); labels are moved until none overlaps another."""
    pts = [r for r in rows if len(multi) >= 2 and all(r.get(k) is not None for k, _ in multi)]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (x, dx), (y, dy) = multi[0], multi[1]
    colour, worst = (multi[2][0], max if multi[2][1] == "min" else min) if len(multi) > 2 else (None, None)
    groups = tie_groups(pts, x, y)
    fig, ax = plt.subplots(figsize=(7, 5))
    values = [worst(r[colour] for r in g) for g in groups] if colour else None
    lo, hi = (min(0.0, *values), max(1.0, *values)) if values else (0.0, 1.0)  # rates in [0, 1]; scores may not be
    sc = ax.scatter([g[0][x] for g in groups], [g[0][y] for g in groups], c=values,
                    cmap="viridis_r" if colour and multi[2][1] == "min" else "viridis", vmin=lo, vmax=hi,
                    s=[60 * len(g) for g in groups], edgecolors="none", alpha=0.85)
    front = [g for g in groups if any(r["pareto"] for r in g)]
    ax.scatter([g[0][x] for g in front], [g[0][y] for g in front], s=[60 * len(g) + 90 for g in front],
               facecolors="none", edgecolors="red", label="Pareto front")
    ax.margins(0.15)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed = []
    for g in groups:
        text = ", ".join(str(r["trial_id"]) for r in g) + (f" ({len(g)} tied)" if len(g) > 1 else "")
        for dxy in _OFFSETS:
            ann = ax.annotate(text, (g[0][x], g[0][y]), xytext=dxy, textcoords="offset points", fontsize=6,
                              ha="left" if dxy[0] > 0 else "right")
            box = ann.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                break
            ann.remove()
        else:  # no free place: keep the last try, drawn faint
            ann = ax.annotate(text, (g[0][x], g[0][y]), xytext=_OFFSETS[-1], textcoords="offset points", fontsize=6,
                              alpha=0.5)
            box = ann.get_window_extent(renderer)
        placed.append(box)
    if colour:
        fig.colorbar(sc, label=colour.replace("_", "-") + " (worst of a tied group)")
    better = {"min": "lower is better", "max": "higher is better"}
    ax.set_xlabel(f"{x} ({better[dx]})")
    ax.set_ylabel(f"{y} ({better[dy]})")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def rank_and_record(cfg: SweepConfig, client, state: dict[str, Any], objectives: Objectives, keys: list[str],
                    log: Callable[[str], None]):
    """Rank the trials, log the Pareto plot and the best trial to the parent run; raise SweepFailed (parent
    FAILED) when no trial produced the objective. Returns ``(rows, png)``; the caller ends the parent run."""
    rows = collect_rows(client, state, cfg, objectives)
    png = plot_pareto(rows, objectives.axes(cfg.objective.kind, cfg.objective.metric), cfg.sweep_dir / "pareto.png")
    if png:
        client.log_artifact(state["parent_run_id"], str(png))
    if not any(all(r.get(k) is not None for k in keys) for r in rows):
        counts = ", ".join(f"{sum(r['status'] == st for r in rows)} {st}" for st in sorted({r["status"] for r in rows}))
        why = (f"sweep {state['sweep_id']}: no trial produced the objective {'/'.join(keys)} "
               f"({len(rows)} trial run(s){': ' + counts if rows else ''}); the trials' errors are in "
               f"{cfg.ray_storage} (error.txt per trial), parent MLflow run {state['parent_run_id']}")
        mark_failed(client, state, cfg, "FAILED", why)
        if rows:
            log(format_table(rows, columns(cfg, objectives)))
        raise SweepFailed(why)
    best = rows[0]
    # the parent run shows the best trial's numbers, not only its name (validation split, sweep budget)
    for col in columns(cfg, objectives):
        if best.get(col) is not None:
            client.log_metric(state["parent_run_id"], f"best/{col}", float(best[col]))
    client.log_metric(state["parent_run_id"], "best/step", float(best["step"]))
    client.set_tag(state["parent_run_id"], "crl.best_trial_id", best["trial_id"])
    client.set_tag(state["parent_run_id"], "crl.best_adapter_uri", best["adapter_uri"])
    if best["model_uri"]:
        client.set_tag(state["parent_run_id"], "crl.best_model_uri", best["model_uri"])
    return rows, png
