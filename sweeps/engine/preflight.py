"""Pre-flight: every check a sweep can make before Ray starts, so bad input costs one clear error and no compute.

:func:`validate_before_launch` builds a TrainConfig at every corner of the search space (with the values
that switch conditional dimensions on), checks layer indices against the model's depth
(``TrainConfig.layout``), the evaluation, the budget, memory, storage, resources and the tracking URI.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from crl_core.config import ConfigError
from crl_core.redaction import redact_text, redact_uri
from crl_core.registry import EVAL_PRESETS, JUDGES
from sweeps.engine.config import Objectives, ResourceSettings, SweepConfig
from sweeps.engine.space import train_config_for

__all__ = ["validate_before_launch", "check_confirm", "check_resources", "check_node_types", "node_types",
           "local_resources", "check_tracking", "check_remote_state", "sqlite_schema_lock", "memory_floor_bytes"]

LAYER_KEYS = ("harmful_layers.", "lora.blocks", "mining.block_", "mining.enabled")


def model_config(model_name: str):
    from transformers import AutoConfig

    from crl_core.models.loading import resolve_model_path

    return AutoConfig.from_pretrained(resolve_model_path(model_name))


def sqlite_schema_lock(uri: str):
    """For a ``sqlite:///`` store: a file lock on ``<db>.lock`` while MLflow creates or migrates its schema
    (two first runs against a new store at once: the second failed inside alembic's migration)."""
    import contextlib

    from filelock import FileLock

    return FileLock(f"{uri[len('sqlite:///'):]}.lock") if uri.startswith("sqlite:///") else contextlib.nullcontext()


def check_tracking(uri: str) -> None:
    shown = redact_uri(uri)  # never echo a password
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10) as resp:
                if resp.status != 200:
                    raise ConfigError(f"tracking.uri: {shown}/health answered HTTP {resp.status}")
        except (urllib.error.URLError, OSError) as exc:
            raise ConfigError(f"tracking.uri: the MLflow server at {shown} is not reachable: {redact_text(str(exc))}") from None
        return
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"tracking.uri: cannot create {folder} for {shown}: {exc}") from None
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"tracking.uri: {folder} is not writable")
    from mlflow.tracking import MlflowClient

    try:
        with sqlite_schema_lock(uri):  # the first use creates the schema: one process at a time
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # mlflow raises many kinds; any of them means "unusable"
        raise ConfigError(f"tracking.uri: cannot use {shown}: {type(exc).__name__}: {redact_text(str(exc))}") from None


def check_resources(res: ResourceSettings, available: dict[str, float], where: str) -> None:
    need = res.per_trial()
    for kind in ("CPU", "GPU"):
        if need[kind] > available.get(kind, 0.0) + 1e-9:
            raise ConfigError(
                f"resources: one trial needs {need[kind]:g} {kind} (workers={res.workers} x "
                f"{kind.lower()}s_per_worker={res.cpus_per_worker if kind == 'CPU' else res.gpus_per_worker:g}"
                f"{' + 0.1 for the trial driver' if kind == 'CPU' and res.train_backed else ''}) but {where} "
                f"has {available.get(kind, 0.0):g}")
    for key, per_worker in res.custom.items():
        if need[key] > available.get(key, 0.0) + 1e-9:
            raise ConfigError(
                f"resources.custom.{key}: one trial needs {need[key]:g} (workers={res.workers} x {per_worker:g}) but "
                f"{where} has {available.get(key, 0.0):g}; custom resources exist only on nodes that declare them "
                "(cluster/*.yaml node types); for a cluster that autoscales, set resources.cluster_config")


def node_types(path: str | Path) -> dict[str, dict[str, Any]]:
    """The node types of a Ray cluster-launcher YAML (``available_node_types``) or a KubeRay RayCluster /
    RayJob YAML (head and worker groups' ``rayStartParams``): name -> ``{"resources", "max_workers"}``."""
    import json

    import yaml

    p = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"resources.cluster_config: cannot read {p}: {exc}") from None
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for name, t in (doc.get("available_node_types") or {}).items():
            max_workers = t.get("max_workers", doc.get("max_workers", 0)) if name != doc.get("head_node_type") else 1
            out[name] = {"resources": {k: float(v) for k, v in (t.get("resources") or {}).items()},
                         "max_workers": int(max_workers)}
        spec = doc.get("spec") or {}
        spec = spec.get("rayClusterSpec", spec)  # a RayJob wraps the RayCluster spec
        groups = ([("head", spec["headGroupSpec"], 1)] if "headGroupSpec" in spec else []) + [
            (g.get("groupName", f"group{i}"), g, int(g.get("maxReplicas", g.get("replicas", 0))))
            for i, g in enumerate(spec.get("workerGroupSpecs") or [])]
        for name, g, max_workers in groups:
            params = g.get("rayStartParams") or {}
            limits = {}
            for c in ((g.get("template") or {}).get("spec") or {}).get("containers") or []:
                limits.update((c.get("resources") or {}).get("limits") or {})
            res: dict[str, float] = {}
            cpu = params.get("num-cpus", limits.get("cpu"))
            if cpu is not None:
                res["CPU"] = float(str(cpu).strip('"'))
            gpu = params.get("num-gpus", limits.get("nvidia.com/gpu"))
            if gpu is not None:
                res["GPU"] = float(str(gpu).strip('"'))
            if params.get("resources"):
                res.update({k: float(v) for k, v in json.loads(str(params["resources"]).strip().strip('"')
                                                             .replace('\\"', '"')).items()})
            out[name] = {"resources": res, "max_workers": max_workers}
    if not out:
        raise ConfigError(f"resources.cluster_config: {p} declares no node types (available_node_types, or a "
                          "KubeRay headGroupSpec / workerGroupSpecs)")
    return out


def check_node_types(res: ResourceSettings, path: str | Path) -> str:
    """One trial against the node types a cluster can scale to: every worker's bundle must fit one node type
    that can be launched (max_workers > 0), and the trial's workers must fit the largest such cluster.
    Returns the line the sweep prints; raises ConfigError naming the node types otherwise."""
    types = node_types(path)
    bundle = res.worker_bundle()

    def fits(r: dict[str, float]) -> int:  # how many worker bundles one node of this type holds
        counts = [int(r.get(k, 0.0) / v + 1e-9) for k, v in bundle.items() if v > 0]
        return min(counts) if counts else 0

    usable = {n: fits(t["resources"]) * t["max_workers"] for n, t in types.items()
              if t["max_workers"] > 0 and fits(t["resources"]) > 0}
    shown = "; ".join(f"{n}: {t['resources']} x {t['max_workers']}" for n, t in types.items())
    if not usable:
        raise ConfigError(f"resources: one worker needs {bundle}, which no node type of {path} can hold ({shown})")
    if sum(usable.values()) < res.workers:
        raise ConfigError(f"resources: one trial needs {res.workers} workers of {bundle}, but the node types of "
                          f"{path} hold at most {sum(usable.values())} at their max_workers ({shown})")
    return (f"resources checked against the node types of {path} (autoscaling: nodes may still be starting): a "
            f"worker ({bundle}) fits {', '.join(f'{n} (up to {k} workers)' for n, k in usable.items())}")


def local_resources(res: ResourceSettings) -> dict[str, float]:
    import torch

    return {"CPU": float(res.num_cpus or os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def check_storage(cfg: SweepConfig) -> None:
    """The sweep's local state folder (``state_dir``, else ``storage_dir``) must be (or be creatable as) a
    writable folder; nothing is created here. An object store and an RDB study are probed by
    :func:`check_remote_state`."""
    key = "state_dir" if cfg.state_dir or cfg.remote_storage else "storage_dir"
    root = cfg.state_root
    for path in (cfg.sweep_dir, root):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{key}: {path} exists and is not a folder")
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{key}: {existing} (on the way to {root}) is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {existing} is not writable, so {root} cannot be created or used")


def check_remote_state(cfg: SweepConfig) -> None:
    """An object-store ``storage_dir`` is reachable and an RDB ``study_storage`` answers (network: last)."""
    from sweeps.engine.storage import probe_object_store
    from sweeps.engine.study import probe_study_url

    if cfg.remote_storage:
        probe_object_store(cfg.storage_dir)
    if cfg.study_storage:
        probe_study_url(cfg.study_url)


def check_objective(cfg: SweepConfig, objectives: Objectives, steps: int) -> None:
    every = cfg.objective.eval_every
    if every > steps:
        raise ConfigError(f"objective.eval_every: {every} is more than the {steps} training steps of a trial")
    grace = (every or steps) * cfg.objective.grace_rungs
    if cfg.objective.kind == "single" and grace > steps:
        raise ConfigError(f"objective.grace_rungs: {cfg.objective.grace_rungs} rungs of {every or steps} steps = "
                          f"{grace} steps, more than the {steps} steps of a trial (ASHA's grace period must fit)")
    if cfg.objective.kind == "single":
        objectives.check_metric(cfg.objective.metric)
    elif not objectives.multi:
        raise ConfigError("objective.kind: multi, but the recipe declares no multi-objective list")


def check_evaluation(cfg: SweepConfig, base_cfg, ecfg=None, section: str = "evaluation") -> Any:
    """The trials' evaluation (or, with ``ecfg``, the confirmation's) fits the model and the resources."""
    ecfg = ecfg or cfg.evaluation_config(base_cfg)
    preset, name = EVAL_PRESETS.get(ecfg.preset), base_cfg.model.name
    if preset.payloads and name != "organism" and not (Path(name) / "payloads.jsonl").is_file():
        raise ConfigError(f"{section}.preset: '{ecfg.preset}' judges the organism's payloads, but the model is "
                          f"'{name}'; use {section}.preset=proxy for other models")
    judge = JUDGES.get(ecfg.asr_judge())
    if getattr(judge, "needs_gpu", False):
        if cfg.resources.gpus_per_worker <= 0:
            raise ConfigError(f"{section}.judge: {ecfg.asr_judge()} needs a GPU in every trial; set "
                              "resources.gpus_per_worker (or use judge: compliance on CPU)")
        if hasattr(judge, "check_model"):  # the classifier's model, where it can be checked from here
            try:
                judge.check_model(ecfg.judge_model)
            except ConfigError as exc:
                raise ConfigError(f"{section}.{exc}") from None
    return ecfg


def check_confirm(cfg: SweepConfig, base: dict[str, Any], base_cfg, depth: int) -> None:
    """The confirmation's evaluation and default point (its layers against the model's depth), before any
    trial runs (confirm.py)."""
    if not cfg.confirm.enabled:
        return
    from sweeps.engine.confirm import default_point

    check_evaluation(cfg, base_cfg, cfg.confirm_evaluation_config(base_cfg, cfg.confirm.seeds[0]), "confirm.evaluation")
    if cfg.confirm.default:
        point = default_point(cfg, base)  # names only searched keys (its own one-line error)
        try:
            train_config_for(base, point, str(cfg.sweep_dir / "confirm" / "default")).layout(depth)
        except ConfigError as exc:
            raise ConfigError(f"confirm.default_point: {exc}") from None


def memory_floor_bytes(train_cfg, model_cfg) -> int:
    """A lower bound on one trial's training memory: the weights, the hidden states of every layer for the
    adapted and the frozen pass, and the retain rows' logits of both (activations inside blocks, optimizer
    state and the evaluation come on top)."""
    d = train_cfg.data
    rows, t = d.batch_benign + d.batch_harmful + d.batch_retain, d.max_length
    width = 2 if train_cfg.model.dtype in ("bfloat16", "float16") else 4
    layers, hidden = int(model_cfg.num_hidden_layers), int(model_cfg.hidden_size)
    vocab = int(model_cfg.vocab_size)
    n_params = layers * 12 * hidden * hidden + 2 * vocab * hidden  # a transformer's usual count
    return int(n_params * width + 2 * rows * t * hidden * (layers + 1) * width + 2 * d.batch_retain * t * vocab * 4)


def check_memory(cfg: SweepConfig, train_cfg, model_cfg) -> None:
    """Refuse a batch that cannot fit: only for trials on this machine's CPUs (a GPU or a cluster's nodes
    are not visible from the driver before launch)."""
    if os.environ.get("RAY_ADDRESS") or cfg.resources.train_backed:
        return
    import psutil

    concurrent = min(cfg.resources.max_concurrent_trials, cfg.num_samples)
    need = memory_floor_bytes(train_cfg, model_cfg) * concurrent
    available = psutil.virtual_memory().available
    if need > available:
        d = train_cfg.data
        raise ConfigError(f"train.data: batches of {d.batch_benign}+{d.batch_harmful}+{d.batch_retain} rows x "
                          f"{d.max_length} tokens need at least {need / 2**30:.1f} GiB for {concurrent} concurrent "
                          f"trial(s), this machine has {available / 2**30:.1f} GiB available; lower the batch "
                          "sizes, data.max_length or resources.max_concurrent_trials")


def _shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def validate_before_launch(cfg: SweepConfig, objectives: Objectives, ray_running: bool = False) -> dict[str, Any]:
    """Every check that needs no running Ray; returns the base train dict. Raises ConfigError."""
    base = cfg.base_train_dict()
    space = cfg.space()
    probe_dir = str(cfg.sweep_dir / "trials" / "probe")
    try:
        base_cfg = train_config_for(base, {}, probe_dir)
    except ConfigError as exc:
        raise ConfigError(f"train ({cfg.train.preset} + overrides): {exc}") from None
    for key in space.params:
        for values in space.corners([key], base):
            try:
                train_config_for(base, values, probe_dir)
            except ConfigError as exc:
                raise ConfigError(f"search_space.{key}={values.get(key)!r}: {exc}") from None
    idle = space.never_active(base)
    if idle:
        raise ConfigError(f"search_space.{idle[0]}: never sampled (its condition {space.params[idle[0]].when} is false "
                          "in the training preset); drop it (null) or search the key it depends on")
    from crl_core.training.data import check_data_available

    check_data_available(base_cfg.data)  # hub data on an offline machine
    window = [k for k in space.params if k in ("harmful_layers.start", "harmful_layers.width")]
    if window and base_cfg.harmful_layers.indices is not None:
        raise ConfigError(f"search_space.{window[0]}: the preset sets harmful_layers.indices "
                          f"{base_cfg.harmful_layers.indices}, which overrides start/width; set "
                          "train.overrides.harmful_layers.indices: null")
    check_evaluation(cfg, base_cfg)
    check_storage(cfg)
    check_objective(cfg, objectives, base_cfg.steps)
    mcfg = model_config(base_cfg.model.name)
    depth = int(mcfg.num_hidden_layers)
    check_memory(cfg, base_cfg, mcfg)
    layer_keys = [k for k in space.params if k.startswith(LAYER_KEYS)]
    for values in space.corners(layer_keys, base):
        try:
            train_config_for(base, values, probe_dir).layout(depth)
        except ConfigError as exc:
            raise ConfigError(f"search_space ({_shown(values) if values else 'the base preset'}): {exc}") from None
    check_confirm(cfg, base, base_cfg, depth)
    if cfg.resources.cluster_config:  # the cluster it will join can scale to these node types
        check_node_types(cfg.resources, cfg.resources.cluster_config)
    if not os.environ.get("RAY_ADDRESS") and not ray_running:  # a local Ray: only this machine's resources
        check_resources(cfg.resources, local_resources(cfg.resources), "this machine")
    elif ray_running and not cfg.resources.cluster_config:  # joined already: its nodes, before anything is written
        import ray

        if ray.is_initialized():
            check_resources(cfg.resources, dict(ray.cluster_resources()), "the Ray cluster")
    check_remote_state(cfg)
    check_tracking(cfg.tracking_uri())
    return base
