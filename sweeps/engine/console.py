"""The sweep's console: one line per trial event, the noise of Ray, Tune, MLflow and transformers off.

What stays: the sweep's own lines (start, each trial's start, evaluations, end, errors with the file that
holds the traceback, worker restarts), warnings from the project, and errors. What goes (each still in
Ray's session logs or the trial's ``error.txt``): Tune's status tables and TensorBoard hint, Ray's start-up
INFO lines and the notice that token auth is on (it stays on), colour codes in redirected output, per-trial
tracebacks (one line instead), weight-loading progress bars, a transformers deprecation warning raised by
peft internals, and the trainer's per-step lines (a trial reports at each evaluation).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from ray import tune

__all__ = ["quiet_driver", "quiet_trial_process", "ProgressLog", "trial_log", "drop_torn_snapshot_copy"]

QUIET_ENV = {
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",     # ProgressLog prints one line per error instead of a traceback
    "RAY_AIR_NEW_OUTPUT": "0",              # Tune's newer console prints its experiment header even at verbose=0
    "MLFLOW_LOGGING_LEVEL": "WARNING",      # read when mlflow is imported: the database-creation INFO lines
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # the "View run ... at" lines of an HTTP tracking store
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


def quiet_driver(local_ray: bool) -> None:
    """Before Ray starts: environment the driver and Ray's processes read, and the loggers of this process."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if local_ray:  # Ray's notice that it turned token auth on for a local cluster (auth stays on)
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_drop_auth_notice)
    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    for name in ("ray", "ray.tune", "ray.train", "mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    snapshot_logger = logging.getLogger("ray.tune.execution.experiment_state")
    if drop_torn_snapshot_copy not in snapshot_logger.filters:
        snapshot_logger.addFilter(drop_torn_snapshot_copy)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _drop_auth_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def drop_torn_snapshot_copy(record: logging.LogRecord) -> bool:
    """Tune's background copy of its snapshot folder races with its own rename of a ``.<uuid>-tmp-...``
    file and logs a FileNotFoundError traceback at the end of a good sweep. Harmless (the sweep never
    reads that snapshot: sweeps/durable.py), so dropped; any other sync failure is kept."""
    exc = record.exc_info[1] if record.exc_info else None
    return not (record.getMessage().startswith("Saving experiment state to storage")
                and isinstance(exc, FileNotFoundError) and "-tmp-" in str(exc))


def quiet_trial_process() -> None:
    """Inside a trial (a Ray worker): the same loggers, no progress bars, peft's internal deprecation off."""
    for name in ("ray", "ray.tune", "ray.train", "mlflow", "alembic", "optuna", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    sys.unraisablehook = _drop_shutdown_exit


def _drop_shutdown_exit(unraisable) -> None:
    """Ray ends an idle trial actor at shutdown with SIGTERM, whose handler raises SystemExit; when that lands
    inside a weakref callback Python prints it as an "Exception ignored" traceback. Only that one is dropped."""
    if isinstance(unraisable.exc_value, SystemExit):
        return
    sys.__unraisablehook__(unraisable)


def trial_log(message: str) -> None:
    """The trainer's log inside a sweep trial: per-step lines dropped (evaluations are reported), the rest kept."""
    if not message.startswith("step "):
        print(message, flush=True)


def _short(value: Any) -> str:
    if isinstance(value, (bool, list, tuple)):
        return str(value)
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _first_line(path: str | None) -> str:
    try:
        lines = [ln.strip() for ln in open(path or "", encoding="utf-8", errors="replace") if ln.strip()]
    except OSError:
        return "no error file"
    return lines[-1][:300] if lines else "empty error file"  # a traceback's last line is the exception


class ProgressLog(tune.Callback):
    """Driver side: one console line per trial event. ``metrics``: the names a result line shows, in order
    (the engine passes the recipe's, :meth:`Objectives.shown`); without them, every number the trial
    reported besides its step."""

    def __init__(self, name_of, max_step: int, decode=None, metrics: Sequence[str] = ()) -> None:
        self.name_of, self.max_step = name_of, max_step  # name_of(trial) -> the trial's id in MLflow
        self.decode = decode or (lambda params: params)  # Tune-encoded searched values -> their own form
        self.metrics = tuple(metrics)
        self.t0 = time.time()

    def _say(self, trial, text: str) -> None:
        print(f"[{time.time() - self.t0:6.0f} s] trial {self.name_of(trial)} {text}", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        params = self.decode(trial.config.get("crl_continue", {}).get("params", trial.config))
        self._say(trial, "started: " + " ".join(f"{k}={_short(v)}" for k, v in sorted(params.items())))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        names = self.metrics or [k for k, v in result.items() if k != "step" and isinstance(v, (int, float))]
        shown = " ".join(f"{k}={_short(result[k])}" for k in names if k in result)
        if shown:
            self._say(trial, f"step {result.get('step', '?')}: {shown}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        step = (trial.last_result or {}).get("step", 0)
        self._say(trial, "finished" if step >= self.max_step else f"stopped at step {step} (ASHA)")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(trial, f"lost its process ({_first_line(trial.error_file)}); restarting from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(trial, f"failed: {_first_line(trial.error_file)} (traceback: {trial.error_file})")
