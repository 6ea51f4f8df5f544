"""The sweep's MLflow records: the parent run (``sweep.json`` identity), one child run per trial with its
params, metrics, evaluations and adapter (also an MLflow LoggedModel), and the driver-side callback that
closes a trial's run. Every call goes through :class:`~sweeps.engine.mlflow_client.RetryingClient`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

from ray import tune

from crl_core.config import config_hash, flatten_dotted, save_resolved_config, to_dict
from crl_core.redaction import loggable_params, redact_secrets, redact_text
from sweeps.engine import failpoints
from sweeps.engine.durable import effective_trial_id, write_json_atomic
from sweeps.engine.mlflow_client import RetryingClient, find_or_create

__all__ = ["LOGGED_MODEL_TAG", "client_for", "trial_run_id", "TrialTracker", "CloseTrialRuns", "sweep_state",
           "mark_failed"]

LOGGED_MODEL_TAG = "crl.logged_model_id"


def client_for(uri: str) -> RetryingClient:
    return RetryingClient(uri)  # every call survives a tracking-server outage (mlflow_client.py)


def trial_run_id(client, experiment_id: str, sweep_id: str, trial_id: str) -> str | None:
    """The MLflow run of a trial, if one exists (the identity is the tag pair, never the run name)."""
    runs = client.search_runs([experiment_id], max_results=1,
                              filter_string=f"tags.`crl.sweep_id` = '{sweep_id}' AND tags.`crl.trial_id` = '{trial_id}'")
    return runs[0].info.run_id if runs else None


class TrialTracker:
    """The child run of one trial (rank 0 only): params, tags, per-step metrics, evaluations, adapter."""

    def __init__(self, spec, trial_id: str, searched: dict[str, Any], train_cfg, trainer) -> None:
        from mlflow.entities import Param, RunStatus
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        from crl_core.evaluation.report import git_commit

        self.client = client_for(spec.tracking_uri)
        self.experiment_id, self.sweep_id, self.trial_id = spec.experiment_id, spec.sweep_id, trial_id
        self.model_params = loggable_params(flatten_dotted(searched))
        self.model_id: str | None = None  # the trial's MLflow LoggedModel, created at its first evaluation
        self.logged_models_supported = True  # False once the tracking server refused the LoggedModel API
        existing = trial_run_id(self.client, spec.experiment_id, spec.sweep_id, trial_id)
        if existing:
            self.run_id = existing
            self.model_id = self.client.get_run(existing).data.tags.get(LOGGED_MODEL_TAG)
            self.client.update_run(existing, status=RunStatus.to_string(RunStatus.RUNNING))
            return
        self.run_id = find_or_create(  # a create retried after a lost answer must not make a second run
            self.client, lambda: trial_run_id(self.client, spec.experiment_id, spec.sweep_id, trial_id),
            lambda: self.client.raw.create_run(spec.experiment_id, run_name=f"trial-{trial_id}", tags={
                MLFLOW_PARENT_RUN_ID: spec.parent_run_id, "crl.sweep_id": spec.sweep_id, "crl.trial_id": trial_id,
                "crl.role": "trial"}).info.run_id)
        data_desc = json.dumps(trainer.data.description, sort_keys=True, default=str)
        # folders relative to the sweep's storage root, so the runs name no path of this machine
        trial_dir = os.path.relpath(train_cfg.output_dir, Path(spec.trials_dir).parents[1])
        import ray

        tags = {"crl.config_hash": config_hash(train_cfg), "crl.git_commit": git_commit() or "unknown",
                # the Ray node the trial started on (which node type ran it, on a cluster)
                "crl.ray_node": ray.get_runtime_context().get_node_id() if ray.is_initialized() else "none",
                "crl.data_hash": hashlib.sha256(data_desc.encode()).hexdigest()[:12],
                "crl.searched": ",".join(sorted(searched)), "crl.trial_dir": trial_dir}
        params = loggable_params({**flatten_dotted(to_dict(train_cfg)), "output_dir": trial_dir})
        items = [Param(k, v) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100],
                                  tags=[] if i else [_tag(k, v) for k, v in tags.items()])
        resolved = save_resolved_config(train_cfg, train_cfg.output_dir, {"searched": searched})
        self.client.log_artifact(self.run_id, str(resolved))
        self.client.log_dict(self.run_id, trainer.data.description, "data_description.json")

    def log_metrics(self, rows: list[tuple[int, dict[str, float]]], prefix: str = "", model_id: str | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(f"{prefix}{k}", float(v), now, step, model_id=model_id) for step, m in rows
                 for k, v in m.items() if isinstance(v, (int, float)) and math.isfinite(v) and k != "step"]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def log_evaluation(self, step: int, metrics: dict[str, float], spec: dict[str, Any], adapter_dir: Path) -> None:
        model_id = self._logged_model(step, adapter_dir)
        self.log_metrics([(step, metrics)], prefix="eval/", model_id=model_id)
        self.client.log_dict(self.run_id, spec, "evaluation_spec.json")
        self.client.log_artifacts(self.run_id, str(adapter_dir), "adapter")
        self.client.set_tag(self.run_id, "crl.adapter_step", str(step))

    def _logged_model(self, step: int, adapter_dir: Path) -> str | None:
        """One MLflow LoggedModel per trial (``models:/<id>``): the latest adapter, its searched params as the
        model's params, its evaluations as the model's metrics. Its id is kept as a run tag, so a restarted
        trial updates the same model. A tracking server without the LoggedModel API (MLflow < 3) only
        loses this: the adapter is still a run artifact."""
        from mlflow.exceptions import MlflowException

        if not self.logged_models_supported:
            return None
        try:
            if self.model_id is None:
                model = self.client.create_logged_model(
                    self.experiment_id, name=f"adapter-{self.trial_id}", source_run_id=self.run_id,
                    params=self.model_params, model_type="peft-lora-adapter",
                    tags={"crl.sweep_id": self.sweep_id, "crl.trial_id": self.trial_id})
                self.model_id = model.model_id
                self.client.set_tag(self.run_id, LOGGED_MODEL_TAG, self.model_id)
            self.client.log_model_artifacts(self.model_id, str(adapter_dir))
            failpoints.hit("adapter_upload")
            self.client.set_logged_model_tags(self.model_id, {"crl.adapter_step": str(step)})
            self.client.finalize_logged_model(self.model_id, "READY")
            return self.model_id
        except MlflowException as exc:
            print(f"MLflow LoggedModel not available ({str(exc)[:200]}); the adapter stays a run artifact only")
            self.logged_models_supported = False
            return None

    def mark_resumed(self, step: int) -> None:
        self.client.set_tag(self.run_id, "crl.resumed_at_step", str(step))


def _tag(key: str, value: str):
    from mlflow.entities import RunTag

    return RunTag(key, value)


class CloseTrialRuns(tune.Callback):
    """Driver side: end each trial's MLflow run when Tune ends the trial (the trial itself may be killed)."""

    def __init__(self, tracking_uri: str, experiment_id: str, sweep_id: str) -> None:
        self.tracking_uri, self.experiment_id, self.sweep_id = tracking_uri, experiment_id, sweep_id

    def _close(self, trial, status: str) -> None:
        client = client_for(self.tracking_uri)
        run_id = trial_run_id(client, self.experiment_id, self.sweep_id,
                              effective_trial_id(trial.config, trial.trial_id))
        if run_id:
            client.set_tag(run_id, "crl.final_step", str((trial.last_result or {}).get("step", 0)))
            failpoints.hit("mlflow_close")
            client.set_terminated(run_id, status)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._close(trial, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial, "FAILED")


def sweep_state(cfg, client) -> dict[str, Any]:
    """The sweep's identity (``sweep.json``): the one being resumed, or a new one with its parent run."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    path = cfg.sweep_dir / "sweep.json"
    if path.is_file():
        state = json.loads(path.read_text())
        client.update_run(state["parent_run_id"], status="RUNNING")
        return state
    exp = client.get_experiment_by_name(cfg.experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(cfg.experiment,
                                                                    artifact_location=cfg.artifact_location())
    sweep_id = f"{cfg.experiment}-{uuid.uuid4().hex[:8]}"
    parent = client.create_run(exp_id, run_name=f"sweep-{sweep_id}", tags={
        MLFLOW_RUN_NAME: f"sweep-{sweep_id}", "crl.sweep_id": sweep_id, "crl.role": "sweep",
        **loggable_params(cfg.tracking.tags)})
    state = {"sweep_id": sweep_id, "experiment_id": exp_id, "parent_run_id": parent.info.run_id}
    log_sweep_config(client, parent.info.run_id, cfg)
    cfg.sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, state)
    return state


def log_sweep_config(client, run_id: str, cfg) -> None:
    from mlflow.entities import Param

    params = loggable_params(flatten_dotted(to_dict(cfg)))
    items = [Param(k, v) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])
    client.log_dict(run_id, redact_secrets(to_dict(cfg)), "sweep_config.json")


def mark_failed(client, state: dict[str, Any], cfg, status: str, why: str) -> None:
    """A sweep that failed after launch: parent run ``status`` with the reason; if no trial ever opened a
    run, its ``sweep.json`` goes too, so the same command simply starts it again."""
    with contextlib.suppress(Exception):  # never mask the original error
        client.set_tag(state["parent_run_id"], "crl.failure", redact_text(why)[:4000])
        client.set_terminated(state["parent_run_id"], status)
        trials = client.search_runs([state["experiment_id"]], max_results=1, filter_string=(
            f"tags.`crl.sweep_id` = '{state['sweep_id']}' AND tags.`crl.role` = 'trial'"))
        if not trials and cfg.study(state["sweep_id"]).load() is None:
            (cfg.sweep_dir / "sweep.json").unlink(missing_ok=True)
