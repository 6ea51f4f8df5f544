"""One point of the search space, trained and evaluated as a sweep's trial does, without Tune, Ray or MLflow.

:func:`run_point` trains the point's TrainConfig (the sweep's base training config with the point's
searched values on top) and evaluates it with the sweep's evaluation every ``objective.eval_every`` steps
and at the last step. :class:`PointLoop` is what it shares with a sweep trial (``trial.run_trial_loop``):
the trainer, the evaluation cadence, the evaluation itself (:func:`evaluate`) and the adapter save.
:class:`PointHooks` are optional callbacks that time the model load, each step and each evaluation, so a
benchmark times a point (or a sweep trial: ``TrialSpec.hooks``) without patching anything
(bench/sweep_overhead.py, bench/search_efficiency.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crl_core.config import config_hash
from sweeps.engine.config import Objectives, SweepConfig
from sweeps.engine.space import train_config_for

__all__ = ["PointHooks", "PointResult", "PointLoop", "evaluate", "run_point"]


@dataclass
class PointHooks:
    """Callbacks of one point's run, each optional; seconds are ``time.perf_counter`` differences.

    - ``on_start(name)``: before the model loads; ``name`` is the trial id in a sweep, the point's folder
      name in :func:`run_point`;
    - ``on_init(seconds)``: the trainer's construction (model load, training data, LoRA);
    - ``on_step(step, seconds, metrics)``: after each training step (before its evaluation, if one is due);
      ``seconds`` runs from the end of the previous step's callbacks (or from the start of ``fit``) to this
      step's end: the step and the trainer's own bookkeeping around it (its log line, a resume's load);
    - ``on_eval(step, seconds, metrics)``: after each evaluation (``seconds``: the evaluation alone, not the
      adapter save); in :func:`run_point` a true return value stops the point there (an early stop, as
      ASHA's); a sweep trial ignores it (Tune's scheduler decides).

    In a sweep trial they run where the loop runs (the trial actor, or rank 0 of the Ray Train workers), so
    they must pickle: module-level functions, or methods of a picklable object.
    """

    on_start: Callable[[str], None] | None = None
    on_init: Callable[[float], None] | None = None
    on_step: Callable[[int, float, dict[str, float]], None] | None = None
    on_eval: Callable[[int, float, dict[str, float]], bool | None] | None = None


@dataclass
class PointResult:
    """What :func:`run_point` trained and measured."""

    point: dict[str, Any]  # the searched values trained (dotted key -> typed value)
    train_config: Any  # its TrainConfig (output_dir: the point's folder)
    evaluations: list[dict[str, float]] = field(default_factory=list)  # in order: {"step": s, **metrics}
    adapter_dir: Path | None = None  # the adapter of the last evaluation (None: not saved)
    stopped: bool = False  # an on_eval hook stopped it before its last step

    @property
    def final(self) -> dict[str, float]:
        """The last evaluation (``{}`` when none ran)."""
        return dict(self.evaluations[-1]) if self.evaluations else {}


def evaluate(ecfg, trainer, objectives: Objectives, objective_metric: str | None = None
             ) -> tuple[dict[str, float], dict[str, Any]]:
    """The adapter's metrics now (``crl_core.evaluation``), with the recipe's derived objectives and the
    sweep's objective again as ``objective``; and the evaluation's spec. No ``no_grad`` here: the embedding
    attack needs gradients."""
    from crl_core.evaluation import run_evaluation

    model = trainer.model
    model.eval()
    try:
        report = run_evaluation(ecfg, model=model, tokenizer=trainer.tokenizer, log=lambda s: None)
    finally:
        model.train()
    spec = {"schema": report["schema"], "metric_versions": report["metric_versions"], **report["spec"]}
    metrics = objectives.add_derived(report["metrics"])
    if objective_metric and metrics.get(objective_metric) is not None:
        metrics["objective"] = metrics[objective_metric]
    return metrics, spec


class PointLoop:
    """The trainer of one point and its evaluation cadence, shared by :func:`run_point` and every sweep trial
    (``trial.run_trial_loop``). Hooks run on rank 0 only."""

    def __init__(self, train_cfg, objectives: Objectives, eval_every: int, *, objective_metric: str | None = None,
                 hooks: PointHooks | None = None, log: Callable[[str], None] = print, rank: int = 0,
                 world_size: int = 1, name: str = "") -> None:
        from crl_core.training import DefenseTrainer

        self.train_cfg, self.objectives, self.objective_metric = train_cfg, objectives, objective_metric
        self.hooks = hooks if hooks is not None and rank == 0 else PointHooks()
        self.every = eval_every or train_cfg.steps
        if self.hooks.on_start:
            self.hooks.on_start(name)
        t0 = time.perf_counter()
        self.trainer = DefenseTrainer(train_cfg, log=log, rank=rank, world_size=world_size)
        if self.hooks.on_init:
            self.hooks.on_init(time.perf_counter() - t0)

    def due(self, step: int) -> bool:
        """Whether ``step`` ends with an evaluation: every ``eval_every`` steps, and the last step."""
        return step % self.every == 0 or step == self.train_cfg.steps

    def evaluate(self, ecfg, step: int) -> tuple[dict[str, float], dict[str, Any], bool]:
        """:func:`evaluate` at ``step`` (timed for ``on_eval``); the metrics, the evaluation's spec, and
        whether the ``on_eval`` hook asked to stop."""
        t0 = time.perf_counter()
        metrics, spec = evaluate(ecfg, self.trainer, self.objectives, self.objective_metric)
        stop = self.hooks.on_eval(step, time.perf_counter() - t0, metrics) if self.hooks.on_eval else None
        return metrics, spec, bool(stop)

    def save_adapter(self, folder: Path, step: int) -> Path:
        from crl_core.models.adapters import save_adapter

        cfg = self.train_cfg
        return save_adapter(self.trainer.model, folder, cfg.model.name,
                            extra={"method": cfg.method, "config_hash": config_hash(cfg), "steps": step})

    def fit(self, on_step: Callable[[int, dict[str, float]], None], resume_from: str | Path | None = None):
        """``DefenseTrainer.fit`` with ``on_step`` after each step (and the ``on_step`` hook before it)."""
        last = time.perf_counter()

        def timed(step: int, metrics: dict[str, float]) -> None:
            nonlocal last
            if self.hooks.on_step:
                self.hooks.on_step(step, time.perf_counter() - last, metrics)
            on_step(step, metrics)
            last = time.perf_counter()

        return self.trainer.fit(resume_from=resume_from, on_step=timed)


class _Stopped(Exception):
    """An on_eval hook stopped the point (raised through ``DefenseTrainer.fit``, caught in run_point)."""


def run_point(cfg: SweepConfig, point: dict[str, Any] | None, objectives: Objectives, out_dir: str | Path, *,
              hooks: PointHooks | None = None, base: dict[str, Any] | None = None, save_adapter: bool = True,
              log: Callable[[str], None] = print) -> PointResult:
    """Train one point of ``cfg``'s search space and evaluate it as the sweep's trials do, in this process.

    ``point``: searched values in their own form (dotted key -> typed value, as ``SearchSpace.decode``
    returns them); keys left out take the base config's value; ``None``: the preset's own default point
    (``confirm.default_point``: the sweep's confirmation row "default"). ``base``: the sweep's base training
    dict, as :func:`~sweeps.engine.preflight.validate_before_launch` returns it after its checks (default:
    ``cfg.base_train_dict()``, the same dict without the checks). The evaluation is ``cfg.evaluation_config``
    every ``objective.eval_every`` steps and at the last step; ``save_adapter``: each evaluation's adapter
    goes to ``<out_dir>/adapter`` (the last one stays). No checkpoints, no MLflow, no Ray.
    """
    from sweeps.engine.confirm import default_point

    base = cfg.base_train_dict() if base is None else base
    if point is None:
        point = default_point(cfg, base)
    cfg.space().encode(point)  # a key outside the space or a value outside its choices: refused here
    out_dir = Path(out_dir)
    train_cfg = train_config_for(base, dict(point), str(out_dir))
    ecfg = cfg.evaluation_config(train_cfg)  # before the model loads: a bad evaluation costs no training
    metric = cfg.objective.metric if cfg.objective.kind == "single" else None
    loop = PointLoop(train_cfg, objectives, cfg.objective.eval_every, objective_metric=metric, hooks=hooks, log=log,
                     name=out_dir.name)
    result = PointResult(dict(point), train_cfg)

    def on_step(step: int, metrics: dict[str, float]) -> None:
        if not loop.due(step):
            return
        measured, _, stop = loop.evaluate(ecfg, step)
        result.evaluations.append({"step": step, **measured})
        if save_adapter:
            result.adapter_dir = loop.save_adapter(out_dir / "adapter", step)
        if stop and step < train_cfg.steps:
            raise _Stopped

    try:
        loop.fit(on_step)
    except _Stopped:
        result.stopped = True
    return result
