"""Bad sweep configs are rejected before Ray starts or any trial runs (sweeps/engine/preflight.py)."""

import pytest

from crl_core.config import ConfigError, load_config, load_yaml
from sweeps.engine import SweepConfig, run_sweep, validate_before_launch
from sweeps.margin_sweep import OBJECTIVES


def _config(path, *overrides) -> SweepConfig:
    return load_config(SweepConfig, None, list(overrides), base=load_yaml(path))


def test_the_tiny_sweep_config_is_valid(sweep_yaml):
    cfg = _config(sweep_yaml())
    base = validate_before_launch(cfg, OBJECTIVES)
    assert base["model"]["name"] and sorted(cfg.space().params) == [
        "harmful_layers.start", "mining.enabled", "triplet.margin_benign", "triplet.margin_harmful"]


def test_unknown_search_key_is_rejected_with_a_suggestion(sweep_yaml):
    cfg = _config(sweep_yaml(search_space={"triplet.margin_benig": {"type": "uniform", "low": 0, "high": 1}}))
    with pytest.raises(ConfigError, match=r"search_space\.triplet\.margin_benig=.*did you mean 'margin_benign'"):
        validate_before_launch(cfg, OBJECTIVES)


def test_a_layer_past_the_model_depth_is_rejected(sweep_yaml):
    cfg = _config(sweep_yaml(search_space={"harmful_layers.start": {"type": "int", "low": 1, "high": 3}}))
    with pytest.raises(ConfigError, match=r"harmful_layers\.start=3.*index 4 is past the model's depth.*3 decoder"):
        validate_before_launch(cfg, OBJECTIVES)


def test_a_layer_window_ignored_by_the_preset_is_rejected(sweep_yaml):
    cfg = _config(sweep_yaml(train={"overrides": {"harmful_layers": {"indices": [1, 2]}}}))
    with pytest.raises(ConfigError, match="overrides start/width"):
        validate_before_launch(cfg, OBJECTIVES)


def test_workers_that_cannot_fit_are_rejected_before_any_trial(sweep_yaml, tmp_path):
    cfg = _config(sweep_yaml(resources={"workers": 3, "cpus_per_worker": 1}))
    with pytest.raises(ConfigError, match=r"resources: one trial needs 3\.1 CPU .* has 2"):
        run_sweep(cfg, OBJECTIVES)
    assert not (tmp_path / "sweeps").exists()


def test_an_unreachable_tracking_server_is_rejected(sweep_yaml):
    cfg = _config(sweep_yaml(tracking={"uri": "http://127.0.0.1:9"}))
    with pytest.raises(ConfigError, match="tracking.uri: the MLflow server at http://127.0.0.1:9 is not reachable"):
        validate_before_launch(cfg, OBJECTIVES)


@pytest.mark.parametrize("changes, message", [
    ({"train": {"overrides": {"optim": {"lr": float("nan")}}}}, r"optim\.lr: expected a finite number, got nan"),
    ({"search_space": {"optim.lr": {"type": "loguniform", "low": float("nan"), "high": 1e-3}}},
     r"search_space\.optim\.lr\.low: expected a finite number"),
    ({"objective": {"eval_every": 50}}, r"objective\.eval_every: 50 is more than the 4 training steps"),
    ({"objective": {"eval_every": 2, "grace_rungs": 3}}, r"objective\.grace_rungs: 3 rungs of 2 steps = 6 steps"),
    ({"train": {"overrides": {"data": {"batch_benign": 100000, "batch_harmful": 100000, "batch_retain": 100000,
                                       "max_length": 4096}}}}, r"need at least [0-9.]+ GiB .* available"),
    ({"train": {"overrides": {"data": {"preset": "published"}}}}, r"data\.preset: 'published' .* offline"),
    # this machine's resources, or (when an earlier test left the shared Ray running) the joined Ray's
    ({"resources": {"custom": {"crl_gpu_node": 1}}}, r"resources\.custom\.crl_gpu_node: one trial needs 1 .* "
                                                     r"(this machine|the Ray cluster) has 0"),
])
def test_bad_input_fails_before_ray_starts_with_one_line(sweep_yaml, tmp_path, changes, message):
    cfg_path = sweep_yaml(**changes)
    with pytest.raises(ConfigError, match=message) as info:
        run_sweep(_config(cfg_path), OBJECTIVES)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()


def test_an_unknown_attack_fails_before_ray_starts(tmp_path):
    from sweeps.margin_sweep import load_sweep_config, parse_args

    cfg = load_sweep_config(parse_args(["--smoke", "evaluation.attacks=[nosuch]", f"storage_dir={tmp_path / 's'}",
                                        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]))
    with pytest.raises(ConfigError, match=r"evaluation\.attacks: unknown attack 'nosuch'"):
        run_sweep(cfg, OBJECTIVES)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("kind", ["file", "readonly"])
def test_an_unusable_storage_dir_fails_before_ray_starts(sweep_yaml, tmp_path, kind):
    import os

    if kind == "file":
        target = tmp_path / "a-file"
        target.write_text("x")
        storage, message = target / "sweeps", "is a file, not a folder"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere: a read-only folder cannot be simulated")
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
        storage, message = target / "sweeps", "is not writable"
    with pytest.raises(ConfigError, match=message):
        run_sweep(_config(sweep_yaml(storage_dir=str(storage))), OBJECTIVES)


def test_a_storage_dir_that_is_a_file_is_refused(sweep_yaml, tmp_path):
    target = tmp_path / "store"
    target.write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        run_sweep(_config(sweep_yaml(storage_dir=str(target))), OBJECTIVES)


def test_first_runs_against_a_new_sqlite_store_at_once_all_succeed(tmp_path):
    """Without the schema lock two of three such processes failed inside alembic's migration."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    code = (f"import sys; sys.path.insert(0, {str(root)!r}); from sweeps.engine.preflight import check_tracking; "
            f"check_tracking('sqlite:///{tmp_path / 'new.db'}')")
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(e[-500:] for e in errors)
