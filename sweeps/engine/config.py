"""The sweep's config schema (``SweepConfig``: YAML + ``key=value``), the recipe's objectives, and where results go.

Every section is validated on construction (``crl_core.config``); what needs the model, the disk, the
tracking server or Ray is checked in ``preflight.py``. The search space is ``space.py``'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crl_core.config import ConfigBase, ConfigError, apply_overrides, config_field, load_yaml
from crl_core.redaction import redact_uri
from crl_core.registry import METRICS
from sweeps.engine.space import SearchSpace
from sweeps.engine.storage import check_storage_uri, is_uri, join
from sweeps.engine.study import StudyRef, check_study_url

__all__ = ["Objectives", "TrainSection", "ObjectiveSettings", "ResourceSettings", "TrackingSettings", "ConfirmSettings",
           "SweepConfig",
           "in_job_working_dir_copy", "results_base", "resolve_result_path"]


@dataclass(frozen=True)
class Objectives:
    """What a recipe optimises (``sweeps/margin_sweep.py`` declares it).

    ``derived``: objective name -> function of one evaluation's metrics (e.g. ``score``); a trial reports
    them next to the evaluation's own metrics, and ``objective.metric`` may name any of the two.
    ``multi``: the ``(metric, "min"|"max")`` list of ``objective.kind: multi`` (a Pareto front, no ASHA).
    """

    derived: dict[str, Callable[[dict[str, float]], float]] = field(default_factory=dict)
    multi: tuple[tuple[str, str], ...] = ()
    # objective -> the (metric, "min"|"max") axes its Pareto plot shows (x, y, colour): the terms that move
    plots: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def axes(self, kind: str, metric: str) -> tuple[tuple[str, str], ...]:
        """The plot's axes and the table's Pareto front: the objective's own (``plots``) in a single-objective
        sweep that declares them, else the multi-objective list."""
        return self.plots.get(metric, self.multi) if kind == "single" else self.multi

    def shown(self, kind: str, metric: str) -> tuple[str, ...]:
        """What a trial's console line shows, in order: the sweep's objective, the recipe's derived objectives,
        then the metrics of its plot axes and of the multi-objective list."""
        names = [metric] if kind == "single" else []
        names += sorted(self.derived) + [m for m, _ in self.axes(kind, metric)] + [m for m, _ in self.multi]
        return tuple(dict.fromkeys(names))

    def add_derived(self, metrics: dict[str, float]) -> dict[str, float]:
        return {**metrics, **{name: float(fn(metrics)) for name, fn in self.derived.items()}}

    def names(self) -> list[str]:
        return sorted(self.derived) + METRICS.names()

    def check_metric(self, name: str) -> None:
        """``name`` is a derived objective, a registered metric, or a part of one (``asr_direct``)."""
        if name in self.derived or any(name == m or name.startswith(f"{m}_") for m in METRICS.names()):
            return
        raise ConfigError(f"objective.metric: '{name}' is neither a recipe objective nor a registered metric; "
                          f"known: {', '.join(self.names())} (and per-attack parts such as asr_direct)")


def in_job_working_dir_copy(cwd: Path | None = None) -> bool:
    """True when this process runs in the temporary copy ``ray job submit --working-dir`` makes (Ray keeps
    it under ``.../runtime_resources/working_dir_files/``; it goes with the Ray session)."""
    return "working_dir_files" in Path(cwd or os.getcwd()).resolve().parts


def results_base() -> Path:
    """What relative result paths (``storage_dir``, a ``sqlite:///`` tracking file, ``artifact_root``) are
    relative to: the working directory, except inside a ``ray job submit`` working-dir copy, where results
    would vanish with the Ray session: there ``$CRL_RESULTS_DIR``, default ``~/crl-sweep`` (docs/sweeps.md)."""
    if in_job_working_dir_copy():
        return Path(os.environ.get("CRL_RESULTS_DIR") or "~/crl-sweep").expanduser().resolve()
    return Path.cwd()


def resolve_result_path(path: str) -> Path:
    p = Path(path).expanduser()
    return (p if p.is_absolute() else results_base() / p).resolve()


@dataclass
class TrainSection(ConfigBase):
    preset: str = config_field("organism-crl", help="name in crl_core/configs/train/ or a YAML path")
    overrides: dict[str, Any] = config_field(default_factory=dict, help="nested TrainConfig values on top")

    def preset_path(self) -> Path:
        from crl_core.training import preset_path

        p = Path(self.preset)
        if p.suffix in (".yaml", ".yml"):
            if not p.is_file():
                raise ConfigError(f"train.preset: file not found: {p}")
            return p
        try:
            return preset_path(self.preset)
        except ConfigError as exc:
            raise ConfigError(f"train.preset: {exc}") from None


@dataclass
class ObjectiveSettings(ConfigBase):
    kind: Literal["single", "multi"] = config_field(
        "single", help="single: metric + mode with ASHA; multi: the recipe's objectives with a Pareto front")
    metric: str = config_field("score", help="a recipe objective (margin_sweep.py: score) or a registered metric")
    mode: Literal["min", "max"] = config_field("max")
    eval_every: int = config_field(0, min=0, help="steps between evaluations (ASHA rungs); 0 = only at the end")
    grace_rungs: int = config_field(1, min=1, help="ASHA: evaluations a trial always gets")
    reduction_factor: int = config_field(2, min=2, help="ASHA reduction factor")


@dataclass
class ResourceSettings(ConfigBase):
    workers: int = config_field(1, min=1, help="training processes per trial (> 1: Ray Train DDP)")
    cpus_per_worker: float = config_field(1.0, min=0.1)
    gpus_per_worker: float = config_field(0.0, min=0.0)
    max_concurrent_trials: int = config_field(2, min=1)
    max_failures: int = config_field(1, min=0, help="restarts of a failed trial / worker group from its checkpoint")
    num_cpus: int = config_field(0, min=0, help="CPUs of a Ray started by the sweep (0 = every core)")
    custom: dict[str, float] = config_field(
        default_factory=dict, help="custom Ray resources per worker, e.g. {crl_gpu_node: 1}: the cluster files' GPU "
                                   "node types declare 1 each, so 1 = one worker per node, 0.125 = eight share one")
    cluster_config: str = config_field(
        "", help="a Ray cluster-launcher or KubeRay RayCluster YAML: the pre-launch check compares one trial with "
                 "its node types (autoscaling, from zero nodes too) instead of the nodes that are up now")

    def validate(self) -> None:
        import math

        for key, value in self.custom.items():
            if key.upper() in ("CPU", "GPU", "MEMORY", "OBJECT_STORE_MEMORY"):
                raise ConfigError(f"resources.custom.{key}: use cpus_per_worker / gpus_per_worker for {key}; custom "
                                  "holds node-type resources such as crl_gpu_node")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"resources.custom.{key}: {value!r} must be a positive number of units per worker")

    @property
    def train_backed(self) -> bool:
        return self.workers > 1 or self.gpus_per_worker > 0

    def worker_bundle(self) -> dict[str, float]:
        """What one training worker holds (the function trial itself, or one Ray Train worker)."""
        return {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker, **self.custom}

    def per_trial(self) -> dict[str, float]:
        """CPU/GPU/custom one trial holds: the Train path adds a 0.1-CPU driver (stack-notes §3b)."""
        cpu = self.workers * self.cpus_per_worker + (0.1 if self.train_backed else 0.0)
        return {"CPU": cpu, "GPU": self.workers * self.gpus_per_worker,
                **{k: self.workers * v for k, v in self.custom.items()}}


@dataclass
class TrackingSettings(ConfigBase):
    uri: str = config_field("", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    artifact_root: str = config_field("", help="artifact folder of a new sqlite-backed experiment (default ./mlruns)")
    tags: dict[str, str] = config_field(default_factory=dict, help="extra tags of the parent run (secrets dropped)")


@dataclass
class ConfirmSettings(ConfigBase):
    """The held-out confirmation at the end of a sweep (``confirm.py``; docs/sweeps.md, "Confirmation")."""

    top_k: int = config_field(3, min=0, help="best trials re-evaluated on the confirmation evaluation (0 = none)")
    default: bool = config_field(True, help="also train the training preset's default point (the base config, "
                                            "with `default_point` on top) and confirm it: the 'sweep pick vs "
                                            "default' row")
    default_point: dict[str, Any] = config_field(
        default_factory=dict, help="searched keys' values of the default row (dotted; the rest: the base config's)")
    seeds: list[int] = config_field(default_factory=lambda: [0, 1, 2],
                                    help="evaluation seeds: each adapter is evaluated once per seed")
    evaluation: dict[str, Any] = config_field(
        default_factory=dict, help="the confirmation evaluation: a `preset` and EvaluationConfig keys, laid over "
                                   "the sweep's `evaluation` section with split: test (organism.yaml: the strong suite)")

    @property
    def enabled(self) -> bool:
        return self.top_k > 0 or self.default

    def validate(self) -> None:
        if self.enabled and not self.seeds:
            raise ConfigError("confirm.seeds: empty; give at least one evaluation seed (or set confirm.top_k: 0 and "
                              "confirm.default: false to skip the confirmation)")
        if any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"confirm.seeds: {self.seeds} must be distinct non-negative integers")
        for key in ("adapter", "model"):
            if key in self.evaluation:
                raise ConfigError(f"confirm.evaluation.{key}: set by the confirmation itself (each adapter on the "
                                  "sweep's model); remove it")


@dataclass
class SweepConfig(ConfigBase):
    experiment: str = config_field("crl-organism", help="MLflow experiment and sweep folder name")
    num_samples: int = config_field(8, min=1, help="number of trials")
    seed: int = config_field(0, min=0, help="seed of the TPE sampler")
    train: TrainSection = field(default_factory=TrainSection)
    search_space: dict[str, Any] = config_field(
        default_factory=dict, help="dotted TrainConfig key -> {type, low, high | values, when}; null drops a key")
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)
    evaluation: dict[str, Any] = config_field(
        default_factory=lambda: {"preset": "organism-sweep"},
        help="a registered evaluation preset (`preset`) and EvaluationConfig keys on top (crl_core/evaluation)")
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    storage_dir: str = config_field(
        "outputs/sweeps", help="Tune state and trial checkpoints: a folder (local or a shared mount) or an "
        "object-store URI (s3://, gs://, ...); docs/sweeps.md, 'Object-store storage'")
    state_dir: str = config_field(
        "", help="local folder of the sweep's durable state (sweep.json, Optuna study, driver lock, trial "
        "working folders); default: storage_dir, or outputs/sweeps when storage_dir is an object store")
    study_storage: str = config_field(
        "", help="the Optuna study as an RDB URL (postgresql://, mysql://, sqlite:///); default: "
        "sqlite <state folder>/<experiment>/optuna.db")
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    confirm: ConfirmSettings = field(default_factory=ConfirmSettings)

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.experiment):
            raise ConfigError(f"experiment: '{self.experiment}' must be letters, digits, '_', '.', '-'")
        if is_uri(self.storage_dir):
            check_storage_uri(self.storage_dir)
        if is_uri(self.state_dir):
            raise ConfigError(f"state_dir: '{redact_uri(self.state_dir)}' must be a folder: the sweep record and "
                              "the driver lock need a file system (an object store has no atomic rename or lock); "
                              "put the Optuna study in an RDB with study_storage if it must be shared")
        if self.study_storage:
            check_study_url(self.study_storage)
        if "kind" in self.evaluation:
            raise ConfigError("evaluation.kind: replaced by evaluation.preset (organism-sweep for the organism, "
                              "proxy for any model; `crl eval --help` lists the presets)")
        if not self.space().params:
            raise ConfigError("search_space: empty; declare at least one dimension")

    def space(self) -> SearchSpace:
        return SearchSpace.parse(self.search_space)

    def evaluation_config(self, train_cfg):
        """The trials' evaluation: this section over its preset, on the trained model, seed and length."""
        from crl_core.evaluation import evaluation_config_for

        section = dict(self.evaluation)
        preset = section.pop("preset", "organism-sweep")
        base = {"model": train_cfg.model.name, "seed": train_cfg.seed, "max_length": train_cfg.data.max_length}
        try:
            return evaluation_config_for(preset, {**base, **section})
        except ConfigError as exc:
            raise ConfigError(f"evaluation.{exc}") from None

    def confirm_evaluation_config(self, train_cfg, seed: int, adapter: str | None = None):
        """The confirmation's evaluation of one adapter: the sweep's `evaluation` section on the test split,
        with `confirm.evaluation` on top (a `preset` there replaces the sweep's), at evaluation seed ``seed``."""
        from crl_core.evaluation import evaluation_config_for

        section = {**dict(self.evaluation), "split": "test"}
        if "preset" in self.confirm.evaluation:  # another preset: the sweep's own keys do not carry over
            section = {"split": "test"}
        section.update(self.confirm.evaluation)
        preset = section.pop("preset", "organism-sweep")
        base = {"model": train_cfg.model.name, "max_length": train_cfg.data.max_length}
        try:
            return evaluation_config_for(preset, {**base, **section, "seed": seed, "adapter": adapter})
        except ConfigError as exc:
            raise ConfigError(f"confirm.evaluation.{exc}") from None

    @property
    def remote_storage(self) -> bool:
        """Tune state and checkpoints in an object store (``storage_dir`` is a URI)."""
        return is_uri(self.storage_dir)

    @property
    def state_root(self) -> Path:
        """The local folder of every sweep's durable state (docs/sweeps.md, "Durable state and resume")."""
        if self.state_dir:
            return resolve_result_path(self.state_dir)
        return resolve_result_path("outputs/sweeps" if self.remote_storage else self.storage_dir)

    @property
    def sweep_dir(self) -> Path:
        """This sweep's local folder: sweep.json, optuna.db, driver.lock, trials/, confirm/ (and ray/ when
        storage_dir is a folder)."""
        return self.state_root / self.experiment

    @property
    def ray_storage(self) -> str:
        """Where Tune and Train persist this sweep's segments and checkpoints: a path or a URI."""
        return join(self.storage_dir, self.experiment, "ray") if self.remote_storage else str(self.sweep_dir / "ray")

    @property
    def study_url(self) -> str:
        """The Optuna study's storage: ``study_storage`` (a relative sqlite path resolved like the results),
        else ``optuna.db`` in the sweep folder."""
        url = self.study_storage or f"sqlite:///{self.sweep_dir / 'optuna.db'}"
        if url.startswith("sqlite:///"):
            url = f"sqlite:///{resolve_result_path(url[len('sqlite:///'):])}"
        return url

    def study(self, sweep_id: str) -> StudyRef:
        """The sweep's Optuna study: in its folder (named after the experiment), or in ``study_storage`` (named
        after the sweep id, so sweeps of the same name in other state folders never share a study)."""
        if self.study_storage:
            return StudyRef(self.study_url, sweep_id)
        return StudyRef(self.study_url, self.experiment, self.sweep_dir / "optuna.db")

    def tracking_uri(self) -> str:
        uri = self.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "") or "sqlite:///mlflow.db"
        if uri.startswith("sqlite:///"):  # Tune moves trials into other folders: never relative
            return f"sqlite:///{resolve_result_path(uri[len('sqlite:///'):])}"
        return uri

    def artifact_location(self) -> str | None:
        if self.tracking_uri().startswith(("http://", "https://")) and not self.tracking.artifact_root:
            return None  # the server's --default-artifact-root / --serve-artifacts decides
        return str(resolve_result_path(self.tracking.artifact_root or "mlruns") / self.experiment)

    def base_train_dict(self) -> dict[str, Any]:
        base = apply_overrides(load_yaml(self.train.preset_path()), self.train.overrides)
        base["eval"] = {**base.get("eval", {}), "enabled": False}  # the sweep evaluates, not `crl train`
        return base
