"""The sweep's durable state, and resuming from it alone (docs/sweeps.md, "Durable state and resume").

What a resume trusts, all under the sweep folder ``<storage_dir>/<experiment>/``:

- ``sweep.json``: the sweep's identity (sweep id, MLflow experiment and parent run), written atomically;
- ``optuna.db``: the Optuna study (SQLite, transactional; or the RDB ``study_storage`` names, study.py).
  Every Optuna trial carries the user attribute ``crl.trial_id``: the trial's id everywhere else (MLflow
  tag, trial folder, Tune trial folder). Its state says whether the trial finished;
- MLflow: one child run per trial (tags ``crl.sweep_id`` + ``crl.trial_id``) with its history;
- trial checkpoints: the ones Tune persisted (``ray/segment-*/trial_<id>/checkpoint_*``, in the sweep folder
  or under an object-store ``storage_dir``: storage.py) and, with folder storage, the trial's own
  ``trials/<id>/checkpoint``; one counts only if its ``checkpoint.json`` manifest checks out
  (``crl_core.training.checkpoint_manifest_step``).

Tune's own experiment snapshots (``experiment_state-*.json``, ``searcher-state-*.pkl``) are never read:
Ray rewrites them in place, and a driver killed while they were being written left them torn (0 bytes)
for good. So a resume does not call ``Tuner.restore``. It reconciles the study with MLflow
(:func:`plan_resume`), continues each unfinished trial in a new Tune segment from its newest complete
checkpoint, in its own MLflow run, tells the study its result (:class:`TellStudy`), and then samples new
trials as usual. With object-store storage the sweep record, driver lock and (unless ``study_storage`` puts
it in an RDB) the study stay in the local state folder; only Tune's state and the checkpoints go remote.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search.optuna import OptunaSearch

from sweeps.engine.storage import checkpoint_candidates, is_uri
from sweeps.engine.study import StudyRef

__all__ = ["TRIAL_ID_ATTR", "CONTINUE_KEY", "write_json_atomic", "DurableOptunaSearch", "Continuation", "plan_resume",
           "TellStudy", "effective_trial_id", "trial_params", "newest_checkpoint"]

TRIAL_ID_ATTR = "crl.trial_id"
CONTINUE_KEY = "crl_continue"  # the Tune config of a continued trial: {CONTINUE_KEY: Continuation as dict}
ORPHAN_REASON = ("the sweep driver died after this trial's MLflow run was opened but the study never had "
                 "it; a new trial takes its place")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` so that a reader sees the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class DurableOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, plus: each suggestion's Tune trial id goes into the study (``crl.trial_id``), so
    the study alone says which trial is which once the driver is gone; and a trial whose result Optuna
    refused (a NaN objective) becomes FAIL instead of staying RUNNING."""

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if config is not None and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(TRIAL_ID_ATTR, trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        from optuna.trial import TrialState

        super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None:
            storage = self._ot_study._storage
            if storage.get_trial(ot_trial._trial_id).state == TrialState.RUNNING:
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)


def effective_trial_id(config: dict[str, Any], tune_trial_id: str) -> str:
    """The trial's id in MLflow, the study and its folders: a continued trial keeps its first id."""
    cont = config.get(CONTINUE_KEY)
    return cont["trial_id"] if cont else tune_trial_id


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The searched values of a Tune config (a continued trial carries the ones it was suggested)."""
    cont = config.get(CONTINUE_KEY)
    return dict(cont["params"]) if cont else dict(config)


def newest_checkpoint(ray_storage: str, trials_dir: Path, trial_id: str) -> tuple[str | None, int]:
    """The newest complete checkpoint of a trial and its step, or ``(None, 0)``: among those Tune persisted
    under ``ray_storage`` (a folder or an object-store URI) and, with folder storage, the trial's own
    ``trials/<id>/checkpoint`` (with an object store that folder is on whichever node ran the trial)."""
    from crl_core.training import complete_checkpoint_step

    candidates = checkpoint_candidates(ray_storage, trial_id)
    if not is_uri(ray_storage):
        own = Path(trials_dir) / trial_id / "checkpoint"
        step = complete_checkpoint_step(own)
        if step is not None:
            candidates.append((str(own), step))
    best: tuple[str | None, int] = (None, 0)
    for location, step in candidates:
        if step > best[1]:
            best = (location, step)
    return best


@dataclass
class Continuation:
    """An unfinished trial to continue: its id, Optuna trial number, searched values, checkpoint."""

    trial_id: str
    number: int
    params: dict[str, Any]
    checkpoint: str | None
    step: int

    def as_config(self) -> dict[str, Any]:
        return asdict(self)


def _final_values(run, metrics: list[str]) -> list[float] | None:
    values = [run.data.metrics.get(f"eval/{m}") for m in metrics]
    return values if all(v is not None and math.isfinite(v) for v in values) else None


def plan_resume(study_ref: StudyRef, ray_storage: str, trials_dir: Path, client, state: dict[str, Any],
                metrics: list[str], log: Callable[[str], None]) -> list[Continuation]:
    """Reconcile the study with MLflow after a driver died, and list the trials to continue.

    - study RUNNING, no ``crl.trial_id``: suggested but never handed to a trial -> FAIL;
    - study RUNNING, its MLflow run already ended: the driver closed the run but died before the study
      heard -> told from the run's last evaluation (FAIL without one);
    - study RUNNING otherwise: continued (from its newest complete checkpoint, or from scratch);
    - study finished, MLflow run still RUNNING: the run is closed (the study is right);
    - MLflow run RUNNING that no study trial names: orphaned (KILLED, tag ``crl.orphaned``, never ranked).
    Only safe while no trial of this sweep runs, which the driver lock guarantees.
    """
    from optuna.trial import TrialState

    runs = {r.data.tags.get("crl.trial_id"): r for r in client.search_runs(
        [state["experiment_id"]], max_results=5000,
        filter_string=f"tags.`crl.sweep_id` = '{state['sweep_id']}' AND tags.`crl.role` = 'trial'")}
    study = study_ref.load()
    named: set[str] = set()
    continuations: list[Continuation] = []
    for t in (study.trials if study is not None else []):
        trial_id = t.user_attrs.get(TRIAL_ID_ATTR)
        if trial_id:
            named.add(trial_id)
        run = runs.get(trial_id)
        running = run is not None and run.info.status == "RUNNING"
        if t.state == TrialState.RUNNING:
            if not trial_id:
                study.tell(t.number, state=TrialState.FAIL)
                log(f"Optuna trial {t.number}: suggested but never started before the driver died -> FAIL")
            elif run is not None and not running and "crl.orphaned" not in run.data.tags:
                values = _final_values(run, metrics) if run.info.status == "FINISHED" else None
                if values is None:
                    study.tell(t.number, state=TrialState.FAIL)
                else:
                    study.tell(t.number, values if len(values) > 1 else values[0])
                log(f"trial {trial_id}: its run had ended ({run.info.status}); the study now knows")
            else:
                checkpoint, step = newest_checkpoint(ray_storage, trials_dir, trial_id)
                continuations.append(Continuation(trial_id, t.number, dict(t.params), checkpoint, step))
        elif running:
            status = "FAILED" if t.state == TrialState.FAIL else "FINISHED"
            client.set_tag(run.info.run_id, "crl.final_step", run.data.tags.get("crl.adapter_step", "0"))
            client.set_terminated(run.info.run_id, status)
            log(f"trial {trial_id}: finished in the study, its run was left open -> {status}")
    for trial_id, run in runs.items():
        if run.info.status == "RUNNING" and trial_id not in named:
            client.set_tag(run.info.run_id, "crl.orphaned", ORPHAN_REASON)
            client.set_terminated(run.info.run_id, "KILLED")
            log(f"trial {trial_id} (MLflow run {run.info.run_id}) was orphaned by a killed driver: marked KILLED")
    for c in continuations:
        where = f"from its checkpoint at step {c.step} ({c.checkpoint})" if c.checkpoint else "from the start (no checkpoint)"
        log(f"trial {c.trial_id} continues {where}")
    return continuations


class TellStudy(tune.Callback):
    """Driver side, continuation segments only: tell the study the result of each continued trial (the
    segment has no searcher: the trials were suggested by an earlier one)."""

    def __init__(self, study_ref: StudyRef, metrics: list[str]) -> None:
        self.study_ref, self.metrics = study_ref, list(metrics)

    def _tell(self, trial, error: bool) -> None:
        from optuna.trial import TrialState

        cont = trial.config.get(CONTINUE_KEY)
        study = self.study_ref.load() if cont else None
        if study is None:
            return
        result = trial.last_result or {}
        values = [result.get(m) for m in self.metrics]
        finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        try:
            if error or not finite:
                study.tell(cont["number"], state=TrialState.FAIL)
            else:
                study.tell(cont["number"], values if len(values) > 1 else values[0])
        except (RuntimeError, ValueError):  # already finished (told by an earlier, killed driver)
            pass

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._tell(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._tell(trial, error=True)
