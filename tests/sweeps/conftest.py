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
    from sweeps.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


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
    """Write a tiny-model sweep YAML (sweeps/tiny.py, proxy objective) with ``changes`` deep-merged; returns
    its path."""
    from sweeps.tiny import tiny_sweep

    def write(name: str = "sweep.yaml", **changes) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_sweep(tiny_model_dir, tmp_path, **changes)))
        return path

    return write


@pytest.fixture
def fake_checkpoint():
    """Write a trial checkpoint folder as the trainer does: an adapter, the trainer state and, last, its
    ``checkpoint.json`` manifest; ``torn=True``: a copy cut short (the manifest arrived, the trainer state did
    not fully). Returns the folder."""
    from crl_core.training.trainer import write_checkpoint_manifest

    def write(folder: Path, step: int, torn: bool = False) -> Path:
        (folder / "adapter").mkdir(parents=True)
        (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"x" * 64)
        (folder / "trainer_state.pt").write_bytes(b"y" * 32)
        write_checkpoint_manifest(folder, step)
        if torn:
            (folder / "trainer_state.pt").write_bytes(b"y" * 5)
        return folder

    return write
