"""The sweep engine: Ray Tune + Optuna search over ``crl_core`` training runs, tracked in MLflow.

One module per job (docs/sweeps.md has the walk-through):

- ``config``: the sweep's config schema and the recipe's objectives; ``space``: the conditional search space;
- ``preflight``: every check before Ray starts; ``cluster``: the Ray it runs on and the driver lock;
- ``trial``: one trial's loop (in the Tune trial, or as Ray Train DDP workers); ``point``: the loop it shares
  with :func:`run_point` (one point of the space, trained and evaluated without Tune, Ray or MLflow; timing
  hooks for the benchmarks); ``runs``: the trial's MLflow records
  (``mlflow_client``: retries through outages);
- ``durable``: the state a resume trusts; ``storage``: where Tune's state and checkpoints live (a folder or
  an object store); ``study``: where the Optuna study lives (the sweep folder or an RDB);
- ``tuner``: the Tune segments; ``report``: ranking, table, Pareto; ``confirm``: the held-out confirmation;
- ``driver``: ``run_sweep``; ``console``: what the terminal shows; ``failpoints``: deliberate kills for
  bench/fault_matrix.py; ``ray_private``: the two private Ray APIs used, isolated.

A recipe (``sweeps/margin_sweep.py``) declares the search space, the objectives and the resources, and
calls :func:`run_sweep`.
"""

from sweeps.engine.cluster import DriverLock, bind_local_ray_to_loopback, local_ray_options
from sweeps.engine.config import (
    Objectives,
    ObjectiveSettings,
    ResourceSettings,
    SweepConfig,
    TrackingSettings,
    TrainSection,
    in_job_working_dir_copy,
    resolve_result_path,
    results_base,
)
from sweeps.engine.driver import SweepSummary, run_sweep
from sweeps.engine.point import PointHooks, PointResult, run_point
from sweeps.engine.preflight import check_resources, check_tracking, validate_before_launch
from sweeps.engine.report import SweepFailed
from sweeps.engine.runs import LOGGED_MODEL_TAG, TrialTracker, trial_run_id
from sweeps.engine.space import ParamSpec, SearchSpace, train_config_for
from sweeps.engine.trial import TrialSpec

__all__ = ["DriverLock", "bind_local_ray_to_loopback", "local_ray_options", "Objectives", "ObjectiveSettings",
           "ResourceSettings", "SweepConfig", "TrackingSettings", "TrainSection", "in_job_working_dir_copy",
           "resolve_result_path", "results_base", "SweepSummary", "run_sweep", "check_resources", "check_tracking",
           "validate_before_launch", "SweepFailed", "LOGGED_MODEL_TAG", "TrialTracker", "trial_run_id", "ParamSpec",
           "SearchSpace", "train_config_for", "PointHooks", "PointResult", "run_point", "TrialSpec"]
