"""``run_sweep``: validate, connect to Ray, run (or resume) the sweep's segments, rank, report; nothing else."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from crl_core.config import ConfigError
from crl_core.redaction import redact_uri
from sweeps.engine import failpoints
from sweeps.engine.cluster import DriverLock, connect_ray
from sweeps.engine.config import Objectives, SweepConfig, in_job_working_dir_copy
from sweeps.engine.confirm import ConfirmFailed, describe_evaluation, run_confirmation
from sweeps.engine.console import quiet_driver
from sweeps.engine.preflight import check_node_types, check_resources, local_resources, validate_before_launch
from sweeps.engine.report import SweepFailed, columns, format_table, rank_and_record
from sweeps.engine.runs import client_for, mark_failed, sweep_state
from sweeps.engine.space import train_config_for
from sweeps.engine.trial import TrialSpec
from sweeps.engine.tuner import objective_keys, run_segments

__all__ = ["SweepSummary", "run_sweep"]


@dataclass
class SweepSummary:
    sweep_id: str
    parent_run_id: str
    rows: list[dict[str, Any]]  # ranked, best first
    pareto_png: Path | None
    wall_s: float
    confirmation: dict[str, Any] | None = None  # confirm.py's result (None: confirmation off)

    @property
    def best(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


def _check_identity(cfg: SweepConfig, resume: bool) -> None:
    exists = (cfg.sweep_dir / "sweep.json").is_file()
    if exists and not resume:
        raise ConfigError(f"a sweep named '{cfg.experiment}' already exists in {cfg.sweep_dir}: "
                          "pass --resume to continue it, or choose another --experiment")
    if resume and not exists:
        raise ConfigError(f"nothing to resume: no sweep named '{cfg.experiment}' in {cfg.sweep_dir.parent} "
                          "(run without --resume to start it)")


def _join_running_ray(cfg: SweepConfig, log: Callable[[str], None]) -> bool:
    """A running Ray (a cluster, a job, a caller's) is joined and checked before the sweep exists: against the
    nodes up now, or, with ``resources.cluster_config``, against the node types it can scale to."""
    started = connect_ray(0, cfg.resources.train_backed)
    if cfg.resources.cluster_config:
        log(check_node_types(cfg.resources, cfg.resources.cluster_config))
        return started
    cluster = ray.cluster_resources()
    try:
        check_resources(cfg.resources, dict(cluster), "the Ray cluster")
    except ConfigError:
        if started:
            ray.shutdown()
        raise
    return started


def run_sweep(cfg: SweepConfig, objectives: Objectives, resume: bool = False,
              log: Callable[[str], None] = print) -> SweepSummary:
    """Validate, run (or resume) the sweep, then rank the trials and log the Pareto plot to the parent run.
    Raises :class:`SweepFailed` when no trial produced the objective (the parent run is then FAILED)."""
    t0 = time.time()
    joins = bool(os.environ.get("RAY_ADDRESS")) or ray.is_initialized()
    quiet_driver(local_ray=not joins)
    base_train = validate_before_launch(cfg, objectives, ray_running=ray.is_initialized())
    base_cfg = train_config_for(base_train, {}, str(cfg.sweep_dir / "trials" / "probe"))
    if in_job_working_dir_copy():
        log(f"running in a `ray job submit` working-dir copy: results go to {cfg.sweep_dir} and "
            f"{redact_uri(cfg.tracking_uri())} (set CRL_RESULTS_DIR, or absolute storage_dir / tracking.uri)")
    _check_identity(cfg, resume)
    if cfg.remote_storage or cfg.study_storage:
        log(f"durable state (sweep record, driver lock{'' if cfg.study_storage else ', Optuna study'}) in "
            f"{cfg.sweep_dir}; Tune state and checkpoints in {cfg.ray_storage}"
            + (f"; the study in {redact_uri(cfg.study_url)}" if cfg.study_storage else ""))
    client = client_for(cfg.tracking_uri())
    # each trial checkpoint forces a snapshot (num_to_keep=1): intended here, so not worth a warning each time
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    failpoints.install_tune_state_failpoint()  # a no-op unless bench/fault_matrix.py armed it
    started = _join_running_ray(cfg, log) if joins else False
    with DriverLock(cfg.sweep_dir):
        state = sweep_state(cfg, client)  # durable before a local Ray starts: a kill from here on is resumable
        spec = TrialSpec.for_sweep(cfg, state, base_train, objectives)
        try:
            if not joins:
                started = connect_ray(int(local_resources(cfg.resources)["CPU"]), cfg.resources.train_backed)
            run_segments(cfg, client, state, spec, resume, log)
            rows, png = rank_and_record(cfg, client, state, objectives, objective_keys(cfg, spec), log)
            log(f"ranked on {describe_evaluation(cfg.evaluation_config(base_cfg))}, trial seed; "
                f"step = the trial's last evaluated step")
            log(format_table(rows, columns(cfg, objectives)))
            _log_best(rows[0], png, state, log)
            confirmation = None
            if cfg.confirm.enabled:
                try:
                    confirmation = run_confirmation(cfg, client, state, base_train, rows, objectives, log)
                except ConfirmFailed as exc:
                    why = (f"sweep {state['sweep_id']}: confirmation failed ({exc}); the trials are ranked and "
                           f"logged, --resume reruns only the missing confirmation")
                    mark_failed(client, state, cfg, "FAILED", why)
                    raise SweepFailed(why) from None
            client.set_terminated(state["parent_run_id"], "FINISHED")
        except SweepFailed:
            raise
        except KeyboardInterrupt:
            mark_failed(client, state, cfg, "KILLED", "interrupted (KeyboardInterrupt); --resume continues it")
            raise
        except BaseException as exc:
            mark_failed(client, state, cfg, "FAILED", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if started:
                ray.shutdown()
    summary = SweepSummary(state["sweep_id"], state["parent_run_id"], rows, png, time.time() - t0, confirmation)
    log(f"sweep {state['sweep_id']}: {len(rows)} trials, {summary.wall_s:.0f} s")
    return summary


def _log_best(best: dict[str, Any], png: Path | None, state: dict[str, Any], log: Callable[[str], None]) -> None:
    model = f", MLflow model {best['model_uri']}" if best["model_uri"] else ""
    log(f"best trial {best['trial_id']}: adapter {best['adapter_uri']}{model} (local copy {best['trial_dir']}/adapter)")
    if png:
        log(f"Pareto plot: {png} (also on the parent run {state['parent_run_id']})")
