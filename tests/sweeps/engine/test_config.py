"""The sweep config (sweeps/engine/config.py), where results go: relative paths resolve against the working
directory, except inside the temporary working-dir copy of `ray job submit`, where they would vanish with the
Ray session (issue 11, part B)."""

from crl_core.config import load_config
from sweeps.engine import SweepConfig, in_job_working_dir_copy


def _cfg(**values):
    return load_config(SweepConfig, None, [f"{k}={v}" for k, v in values.items()],
                       base={"search_space": {"optim": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}}})


def test_relative_results_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = _cfg(experiment="e")
    assert cfg.sweep_dir == tmp_path / "outputs" / "sweeps" / "e"
    assert cfg.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cfg.artifact_location() == str(tmp_path / "mlruns" / "e")
    assert not in_job_working_dir_copy()


def test_inside_a_job_working_dir_copy_results_go_to_crl_results_dir_or_home(tmp_path, monkeypatch):
    copy = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CRL_RESULTS_DIR", str(tmp_path / "kept"))
    cfg = _cfg(experiment="e")
    assert in_job_working_dir_copy()
    assert cfg.sweep_dir == tmp_path / "kept" / "outputs" / "sweeps" / "e"
    assert cfg.tracking_uri() == f"sqlite:///{tmp_path / 'kept' / 'mlflow.db'}"
    assert str(copy) not in cfg.artifact_location()
    absolute = _cfg(experiment="e", storage_dir=str(tmp_path / "abs"))
    assert absolute.sweep_dir == tmp_path / "abs" / "e"  # an absolute path is taken as it is
    monkeypatch.delenv("CRL_RESULTS_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cfg(experiment="e").sweep_dir == tmp_path / "home" / "crl-sweep" / "outputs" / "sweeps" / "e"
