"""Sweep tests: a tiny Llama saved to disk (no organism), one Ray for the whole session, a fresh MLflow
sqlite store and sweep folder per test, and a helper that writes a tiny sweep YAML."""

import os
import tempfile
from pathlib import Path

import pytest
import yaml

# one folder per test session (short: Ray's socket paths must fit in 107 bytes): two sessions at once on a
# machine never share a Ray temp dir
RAY_TMP = Path(tempfile.mkdtemp(prefix="crl-rt-", dir="/tmp"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama

    folder = tmp_path_factory.mktemp("tiny-model")
    tok = build_tiny_tokenizer("chatml")
    tiny_llama(len(tok), hidden_size=32, num_layers=3, seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs, dashboard on: Train V2 needs the State API) shared by every sweep test."""
    import ray

    from sweeps.engine import bind_local_ray_to_loopback

    bind_local_ray_to_loopback()  # as the sweep's own local Ray: nothing listens beyond 127.0.0.1
    RAY_TMP.mkdir(parents=True, exist_ok=True)
    os.environ["RAY_TMPDIR"] = str(RAY_TMP)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    ray.init(address="local", num_cpus=2, include_dashboard=True, _temp_dir=str(RAY_TMP),
             runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}})
    yield ray
    ray.shutdown()
    import shutil

    shutil.rmtree(RAY_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_leaked_placement_groups():
    """After each test on the shared Ray: remove placement groups a test's trials left behind (a Train-backed
    trial whose worker was killed can leave one), so they cannot starve the next test's trials."""
    yield
    import ray

    if not ray.is_initialized():
        return
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    for pg_id, info in placement_group_table().items():
        if info.get("state") not in ("REMOVED",):
            try:
                remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id))))
            except Exception:  # already gone
                pass


@pytest.fixture
def sweep_yaml(tmp_path, tiny_model_dir):
    """Write a tiny-model sweep YAML (proxy objective) with ``changes`` deep-merged; returns its path."""
    from crl_core.config import apply_overrides

    def write(name: str = "sweep.yaml", **changes) -> Path:
        data = {
            "experiment": "tiny", "num_samples": 2, "seed": 0,
            "train": {"preset": "smollm2-crl", "overrides": {
                "model": {"name": str(tiny_model_dir)}, "steps": 4, "num_threads": 1,
                "harmful_layers": {"start": 1, "width": 2}, "benign_layers": "all",
                "lora": {"rank": 4, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
                "data": {"preset": "smollm2", "batch_benign": 2, "batch_harmful": 2, "batch_retain": 2,
                         "max_length": 48, "harmful_limit": 16},
                "mining": {"init_steps": 2, "reinit_every": 2}, "log_every": 100}},
            "search_space": {
                "triplet.margin_benign": {"type": "uniform", "low": 0.0, "high": 1.9},
                "triplet.margin_harmful": {"type": "uniform", "low": 0.0, "high": 1.9},
                "harmful_layers.start": {"type": "int", "low": 1, "high": 2},
                "mining.enabled": {"type": "choice", "values": [False, True]}},
            "objective": {"kind": "single", "metric": "score", "mode": "max", "eval_every": 2},
            "evaluation": {"kind": "proxy", "limit": 4},
            "resources": {"workers": 1, "cpus_per_worker": 1, "max_concurrent_trials": 2, "max_failures": 0},
            "storage_dir": str(tmp_path / "sweeps"),
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_root": str(tmp_path / "mlruns")},
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(apply_overrides(data, changes)))
        return path

    return write
