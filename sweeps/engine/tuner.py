"""The Tune segments of a sweep: on resume, one that continues the unfinished trials; then one that samples
the remaining trials with Optuna's TPE (define-by-run over the conditional space) and ASHA.

Every segment is a fresh ``tune.Tuner`` under ``<ray storage>/segment-<n>`` (the sweep folder's ``ray/``, or
``<storage_dir>/<experiment>/ray`` in an object store); none is ever restored from Tune's
own snapshots (durable.py says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray import tune

from sweeps.engine.cluster import REUSE_TRIAL_ACTORS
from sweeps.engine.config import SweepConfig
from sweeps.engine.console import ProgressLog
from sweeps.engine.durable import (
    CONTINUE_KEY,
    Continuation,
    DurableOptunaSearch,
    TellStudy,
    effective_trial_id,
    plan_resume,
)
from sweeps.engine.runs import CloseTrialRuns
from sweeps.engine.storage import list_segments
from sweeps.engine.study import StudyRef
from sweeps.engine.trial import TrialSpec, function_trial, train_backed_trial

__all__ = ["objective_keys", "run_segments", "trial_resources", "trainable_for", "new_tuner"]


def objective_keys(cfg: SweepConfig, spec: TrialSpec) -> list[str]:
    return [m for m, _ in spec.objectives.multi] if cfg.objective.kind == "multi" else [cfg.objective.metric]


def trial_resources(cfg: SweepConfig, train_backed: bool | None = None) -> dict[str, float]:
    """What Tune reserves for a trial: the whole worker (CPUs and custom resources) when the loop runs in the
    trial, only a 0.1-CPU driver when the trial drives Ray Train workers (which then hold the rest).
    ``train_backed``: which of the two (default: ``resources.train_backed``)."""
    res = cfg.resources
    backed = res.train_backed if train_backed is None else train_backed
    return {"cpu": 0.1} if backed else {"cpu": res.cpus_per_worker, **res.custom}


def trainable_for(cfg: SweepConfig, spec: TrialSpec, train_backed: bool | None = None):
    """The Tune trainable of the sweep's trials, with its resources: :func:`~sweeps.engine.trial.function_trial`
    (the loop in the trial), or :func:`~sweeps.engine.trial.train_backed_trial` (Ray Train workers) where
    ``resources.train_backed`` says so. ``train_backed`` forces either (bench/sweep_overhead.py times the Train
    path with one worker, which a sweep never takes)."""
    backed = cfg.resources.train_backed if train_backed is None else train_backed
    fn = train_backed_trial if backed else function_trial
    return tune.with_resources(tune.with_parameters(fn, spec=spec), trial_resources(cfg, backed))


def _trial_dirname(trial) -> str:
    return f"trial_{effective_trial_id(trial.config, trial.trial_id)}"


def _run_config(cfg: SweepConfig, spec: TrialSpec, segment: int, callbacks) -> tune.RunConfig:
    return tune.RunConfig(name=f"segment-{segment}", storage_path=spec.ray_storage, callbacks=callbacks,
                          verbose=0,  # sweeps.engine.console.ProgressLog prints one line per trial event
                          failure_config=tune.FailureConfig(max_failures=cfg.resources.max_failures),
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1))


def new_tuner(cfg: SweepConfig, trainable, spec: TrialSpec, study: StudyRef, segment: int, num_samples: int,
              callbacks, *, points: list[dict[str, Any]] | None = None, early_stop: bool = True) -> tune.Tuner:
    """A segment of ``num_samples`` new trials sampled by TPE (define-by-run) with ASHA (single objective).

    ``points``: searched values (dotted key -> typed value, as ``SearchSpace.decode`` returns them; only the
    dimensions active at that point) that the searcher suggests first, in order (Optuna's enqueued trials;
    TPE samples after them). ``early_stop=False``: no ASHA, every trial runs all its steps. A sweep uses
    neither (:func:`run_segments`); a benchmark that runs fixed points does (bench/sweep_overhead.py)."""
    from optuna.samplers import TPESampler
    from ray.tune.schedulers import ASHAScheduler

    steps = int(spec.base_train.get("steps", 1))
    every = spec.eval_every or steps
    sampler = TPESampler(seed=cfg.seed + segment)  # another seed per segment: no replay of the startup draws
    space = spec.space.define_by_run(spec.base_train)  # conditional: inactive knobs are never sampled
    common = {"space": space, "sampler": sampler, "study_name": study.name, "storage": study.storage()}
    if points:  # in the Tune config's form (list choices as JSON text), as the define-by-run function samples
        common["points_to_evaluate"] = [spec.space.encode(p) for p in points]
    if cfg.objective.kind == "multi":
        metric, mode, scheduler = None, None, None
        searcher = DurableOptunaSearch(metric=[m for m, _ in spec.objectives.multi],
                                       mode=[d for _, d in spec.objectives.multi], **common)
    else:
        metric, mode = cfg.objective.metric, cfg.objective.mode
        searcher = DurableOptunaSearch(metric=metric, mode=mode, **common)
        scheduler = ASHAScheduler(time_attr="step", max_t=steps, grace_period=every * cfg.objective.grace_rungs,
                                  reduction_factor=cfg.objective.reduction_factor) if early_stop else None
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler,
                                    num_samples=num_samples, max_concurrent_trials=cfg.resources.max_concurrent_trials,
                                    reuse_actors=REUSE_TRIAL_ACTORS, trial_dirname_creator=_trial_dirname),
        run_config=_run_config(cfg, spec, segment, callbacks))


def continuation_tuner(cfg: SweepConfig, trainable, spec: TrialSpec, study: StudyRef, segment: int,
                       todo: list[Continuation], callbacks) -> tune.Tuner:
    """A segment that continues unfinished trials of earlier segments (no searcher, no scheduler: the
    trials were suggested already, and ASHA's earlier decisions are not replayed, so each runs to the end)."""
    tell = TellStudy(study, objective_keys(cfg, spec))
    return tune.Tuner(
        trainable, param_space={CONTINUE_KEY: tune.grid_search([c.as_config() for c in todo])},
        tune_config=tune.TuneConfig(max_concurrent_trials=cfg.resources.max_concurrent_trials,
                                    reuse_actors=REUSE_TRIAL_ACTORS, trial_dirname_creator=_trial_dirname),
        run_config=_run_config(cfg, spec, segment, [*callbacks, tell]))


def trials_in_study(study_ref: StudyRef) -> int:
    """Trials that count toward ``num_samples``: every study trial except failed ones (a trial that errored
    without a result, or one a killed driver had suggested but not started)."""
    from optuna.trial import TrialState

    study = study_ref.load()
    return 0 if study is None else sum(t.state != TrialState.FAIL for t in study.trials)


def run_segments(cfg: SweepConfig, client, state: dict[str, Any], spec: TrialSpec, resume: bool,
                 log: Callable[[str], None]) -> None:
    """Continue the unfinished trials (on resume), then run the new ones, each batch a Tune segment."""
    trainable = trainable_for(cfg, spec)
    callbacks = [CloseTrialRuns(cfg.tracking_uri(), state["experiment_id"], state["sweep_id"]),
                 ProgressLog(lambda t: effective_trial_id(t.config, t.trial_id), int(spec.base_train.get("steps", 1)),
                             decode=spec.space.decode,
                             metrics=spec.objectives.shown(cfg.objective.kind, cfg.objective.metric))]
    study = cfg.study(state["sweep_id"])
    segment = max(list_segments(spec.ray_storage), default=0)
    if resume:
        todo = plan_resume(study, spec.ray_storage, cfg.sweep_dir / "trials", client, state,
                           objective_keys(cfg, spec), log)
        if todo:
            segment += 1
            log(f"continuing {len(todo)} unfinished trial(s) in segment {segment} of sweep {state['sweep_id']}")
            continuation_tuner(cfg, trainable, spec, study, segment, todo, callbacks).fit()
    remaining = cfg.num_samples - trials_in_study(study)
    if remaining > 0:
        segment += 1
        log(f"running {remaining} new trial(s) in segment {segment} of sweep {state['sweep_id']}")
        new_tuner(cfg, trainable, spec, study, segment, remaining, callbacks).fit()
