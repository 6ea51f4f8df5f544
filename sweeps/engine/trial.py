"""One trial: train a point of the search space, evaluate it every ``eval_every`` steps, report to Tune.

- one worker, no GPU: the loop runs inside the Tune function trial (:func:`function_trial`);
- several workers or GPUs: the trial drives a Ray Train ``TorchTrainer`` (:func:`train_backed_trial`, Train
  V2 pattern); the workers run the same loop (:func:`run_trial_loop`) as DDP ranks and report
  checkpoints, so a failed worker group resumes from the last one.

The trainer, the evaluation cadence and the evaluation are ``point.PointLoop``'s, shared with
``point.run_point`` (one point without Tune, Ray or MLflow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from sweeps.engine import failpoints
from sweeps.engine.config import Objectives, ResourceSettings, SweepConfig
from sweeps.engine.console import trial_log
from sweeps.engine.durable import CONTINUE_KEY, effective_trial_id, trial_params
from sweeps.engine.point import PointHooks, PointLoop, evaluate
from sweeps.engine.ray_private import drain_train_reports
from sweeps.engine.runs import TrialTracker
from sweeps.engine.space import SearchSpace, train_config_for
from sweeps.engine.storage import local_checkpoint, train_run_name

__all__ = ["TrialSpec", "run_trial_loop", "evaluate", "function_trial", "train_worker", "train_backed_trial"]


@dataclass
class TrialSpec:
    """What every trial of a sweep shares; its own sampled values arrive as the Tune config."""

    sweep_id: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str
    base_train: dict[str, Any]
    space: SearchSpace
    evaluation: Callable[[Any], Any]  # TrainConfig -> EvaluationConfig (SweepConfig.evaluation_config)
    objectives: Objectives
    eval_every: int
    trials_dir: str
    ray_storage: str
    resources: ResourceSettings
    objective_metric: str | None = None  # logged again as eval/objective (single-objective sweeps)
    hooks: PointHooks | None = None  # timing callbacks in the process that runs the loop (rank 0; benchmarks)

    @classmethod
    def for_sweep(cls, cfg: SweepConfig, state: dict[str, Any], base_train: dict[str, Any], objectives: Objectives,
                  *, hooks: PointHooks | None = None) -> TrialSpec:
        """The spec of ``cfg``'s trials: ``state`` is the sweep's identity (``runs.sweep_state``), ``base_train``
        what ``preflight.validate_before_launch`` returned."""
        return cls(sweep_id=state["sweep_id"], experiment_id=state["experiment_id"],
                   parent_run_id=state["parent_run_id"], tracking_uri=cfg.tracking_uri(), base_train=base_train,
                   space=cfg.space(), evaluation=cfg.evaluation_config, objectives=objectives,
                   eval_every=cfg.objective.eval_every, trials_dir=str(cfg.sweep_dir / "trials"),
                   ray_storage=cfg.ray_storage, resources=cfg.resources,
                   objective_metric=cfg.objective.metric if cfg.objective.kind == "single" else None, hooks=hooks)


def run_trial_loop(spec: TrialSpec, config: dict[str, Any], trial_id: str, rank: int, world_size: int,
                   report: Callable[[dict[str, Any], Path | None], None], resume_from: str | None) -> None:
    """Train one point of the search space, evaluating and reporting every ``eval_every`` steps.

    Shared by the function trial (rank 0 of 1) and every Ray Train worker. Rank 0 evaluates, logs to
    MLflow, saves the adapter and a checkpoint, and uploads the adapter *before* it reports.
    """
    searched = spec.space.decode(trial_params(config))  # the one conversion: Tune config -> typed values
    trial_dir = Path(spec.trials_dir) / trial_id
    train_cfg = train_config_for(spec.base_train, searched, str(trial_dir))
    loop = PointLoop(train_cfg, spec.objectives, spec.eval_every, objective_metric=spec.objective_metric,
                     hooks=spec.hooks, log=trial_log, rank=rank, world_size=world_size, name=trial_id)
    trainer = loop.trainer
    tracker = ecfg = None
    if rank == 0:
        tracker = TrialTracker(spec, trial_id, searched, train_cfg, trainer)
        ecfg = spec.evaluation(train_cfg)
    pending: list[tuple[int, dict[str, float]]] = []
    resumed = resume_from is not None
    reported = False

    def on_step(step: int, metrics: dict[str, float]) -> None:
        nonlocal pending, resumed, reported
        if tracker is None:
            if loop.due(step):
                reported = True
                report({"step": step}, None)
            return
        if resumed:
            tracker.mark_resumed(step - 1)
            resumed = False
        pending.append((step, {f"train/{k}": v for k, v in metrics.items()}))
        if not loop.due(step):
            return
        result, eval_spec, _ = loop.evaluate(ecfg, step)  # an on_eval hook cannot stop a trial: Tune decides
        adapter = loop.save_adapter(trial_dir / "adapter", step)
        tracker.log_metrics(pending)
        failpoints.hit("mlflow_metrics")
        pending = []
        tracker.log_evaluation(step, result, eval_spec, adapter)
        checkpoint = trainer.save_checkpoint(trial_dir / "checkpoint")
        reported = True
        report({"step": step, **result}, checkpoint)  # may be the last thing this process does

    loop.fit(on_step, resume_from=resume_from)
    if not reported:  # resumed from the final checkpoint: its evaluation is logged, but Tune never had it
        last = {}
        if tracker is not None:
            tracker.mark_resumed(trainer.step)
            last = {k[len("eval/"):]: v for k, v in tracker.client.get_run(tracker.run_id).data.metrics.items()
                    if k.startswith("eval/")}
        report({"step": trainer.step, **last}, None)


def _continued_from(config: dict[str, Any]):
    """A continued trial's checkpoint as a local folder (downloaded when it is in an object store), or None."""
    cont = config.get(CONTINUE_KEY)
    return local_checkpoint(cont["checkpoint"] if cont else None)


def function_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """Tune function trial: the loop runs in this process (one worker, CPU)."""
    import torch

    from sweeps.engine.console import quiet_trial_process

    torch.set_num_threads(1)
    quiet_trial_process()
    trial_id = effective_trial_id(config, tune.get_context().get_trial_id())
    checkpoint = tune.get_checkpoint()  # set after a failure within this segment; else a continuation's own

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None)

    with checkpoint.as_directory() if checkpoint else _continued_from(config) as resume_from:
        run_trial_loop(spec, config, trial_id, 0, 1, report, resume_from)


def train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker (a DDP rank); resumes from the group's last checkpoint after a failure."""
    import ray.train

    from sweeps.engine.console import quiet_trial_process

    quiet_trial_process()
    ctx = ray.train.get_context()
    checkpoint = ray.train.get_checkpoint()

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(checkpoint_dir))
                         if checkpoint_dir else None)

    with checkpoint.as_directory() if checkpoint else _continued_from(loop_config["params"]) as resume_from:
        run_trial_loop(loop_config["spec"], loop_config["params"], loop_config["trial_id"],
                       ctx.get_world_rank(), ctx.get_world_size(), report, resume_from)


def train_backed_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """Tune function trial that drives a Ray Train ``TorchTrainer`` (stack-notes §3b)."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = effective_trial_id(config, tune.get_context().get_trial_id())
    res = spec.resources
    per_worker = {k: v for k, v in res.worker_bundle().items() if v}  # CPU, GPU when asked, custom resources
    trainer = TorchTrainer(
        train_worker, train_loop_config={"spec": spec, "params": config, "trial_id": trial_id},
        scaling_config=ray.train.ScalingConfig(num_workers=res.workers, use_gpu=res.gpus_per_worker > 0,
                                               resources_per_worker=per_worker),
        # new per segment; starts with the trial's own id, so a resume finds its checkpoints (storage.py)
        run_config=ray.train.RunConfig(name=train_run_name(trial_id, tune.get_context().get_trial_id()),
                                       storage_path=spec.ray_storage,
                                       callbacks=[TuneReportCallback()],
                                       failure_config=ray.train.FailureConfig(max_failures=res.max_failures),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1)))
    trainer.fit()
    drain_train_reports()
