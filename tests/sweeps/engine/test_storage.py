"""Object-store sweep storage (sweeps/engine/storage.py): the URIs a sweep accepts, the bucket probe before
launch, checkpoints found and downloaded from an object store, and a sweep on a local S3-compatible server
(moto, 127.0.0.1) killed mid-trial and resumed from the checkpoint Tune put there."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from crl_core.config import ConfigError, load_config
from sweeps import margin_sweep
from sweeps.engine.config import SweepConfig
from sweeps.engine.durable import newest_checkpoint
from sweeps.engine.storage import (
    checkpoint_candidates,
    filesystem,
    list_segments,
    local_checkpoint,
    probe_object_store,
    train_run_name,
)
from sweeps.engine.study import StudyRef
from sweeps.tiny import local_s3

ROOT = Path(__file__).resolve().parents[3]
BUCKET = "crl-sweeps-test"
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"


def _cfg(**keys) -> SweepConfig:
    return load_config(SweepConfig, None, [f"{k}={v}" for k, v in keys.items()],
                       base={"search_space": {"optim": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}}})


# ---------------------------------------------------------------- config: what a sweep accepts, offline


def test_an_object_store_uri_keeps_the_durable_state_in_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(experiment="e", storage_dir="s3://my-bucket/crl/sweeps")
    assert cfg.remote_storage
    assert cfg.ray_storage == "s3://my-bucket/crl/sweeps/e/ray"
    assert cfg.sweep_dir == tmp_path / "outputs" / "sweeps" / "e"  # sweep.json, optuna.db, driver.lock
    assert cfg.study("id-1") == StudyRef(f"sqlite:///{tmp_path}/outputs/sweeps/e/optuna.db", "e",
                                         tmp_path / "outputs" / "sweeps" / "e" / "optuna.db")
    shared = _cfg(experiment="e", storage_dir="gs://b-1/x", state_dir="/mnt/state",
                  study_storage="postgresql://crl@db.internal/optuna")
    assert shared.sweep_dir == Path("/mnt/state/e") and shared.ray_storage == "gs://b-1/x/e/ray"
    # in a shared RDB the study is named after the sweep id: two state folders with the same experiment
    # name never share one
    assert shared.study("e-1a2b3c4d") == StudyRef("postgresql://crl@db.internal/optuna", "e-1a2b3c4d")
    local = _cfg(experiment="e", storage_dir=str(tmp_path / "s"))
    assert not local.remote_storage and local.ray_storage == str(tmp_path / "s" / "e" / "ray")


def test_a_study_database_password_never_reaches_the_logged_params():
    from crl_core.config import flatten_dotted, to_dict
    from crl_core.redaction import loggable_params

    cfg = _cfg(storage_dir="s3://my-bucket/x", study_storage=f"postgresql://crl:{SECRET}@db.internal/optuna")
    params = loggable_params(flatten_dotted(to_dict(cfg)))  # what sweep_state logs on the parent run
    assert params["study_storage"] == "postgresql://crl:***@db.internal/optuna"
    assert not any(SECRET in v for v in params.values())


@pytest.mark.parametrize("key,value,message", [
    ("storage_dir", f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET}@bucket/x", "credentials and options do not belong"),
    ("storage_dir", f"s3://bucket/x?secret_key={SECRET}", "credentials and options do not belong"),
    ("storage_dir", "http://example.org/x", "not a folder or an object-store URI"),
    ("storage_dir", "file:///tmp/x", "as a plain path, not file://"),
    ("storage_dir", "s3:///x", "names no bucket"),
    ("state_dir", "s3://bucket/state", "must be a folder"),
    ("study_storage", "mongodb://h/db", "not one Optuna supports"),
    ("study_storage", "sqlite://", "in-memory SQLite"),
    ("study_storage", "not a url", "not an RDB URL"),
])
def test_unusable_storage_settings_are_one_clear_error_that_shows_no_secret(key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        _cfg(**{key: value})
    assert SECRET not in str(err.value)


# ---------------------------------------------------------------- a local S3-compatible server


@pytest.fixture(scope="module")
def s3_env():
    """moto's S3 server on 127.0.0.1 (a free port) with one bucket; the environment a client needs."""
    with local_s3(BUCKET) as env:
        yield env


def _put(uri: str, files: dict[str, bytes]) -> None:
    fs, path = filesystem(uri)
    for name, data in files.items():
        fs.create_dir(f"{path}/{name}".rsplit("/", 1)[0], recursive=True)  # a no-op on S3
        with fs.open_output_stream(f"{path}/{name}") as fh:
            fh.write(data)


def _upload(folder: Path, location: str) -> None:
    """Copy a local checkpoint folder to ``location`` (a folder or a URI), file by file as Tune persists it."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(str(folder), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def test_the_bucket_is_probed_before_launch(s3_env):
    assert "bucket reachable" in probe_object_store(f"s3://{BUCKET}/sweeps")
    with pytest.raises(ConfigError, match="bucket 'no-such-bucket' of s3://no-such-bucket/x does not exist"):
        probe_object_store("s3://no-such-bucket/x")
    _put(f"s3://{BUCKET}", {"a-file": b"1"})
    with pytest.raises(ConfigError, match="is an object, not a prefix"):
        probe_object_store(f"s3://{BUCKET}/a-file")


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_checkpoints_in_an_object_store_are_found_checked_and_downloaded(where, s3_env, tmp_path, fake_checkpoint):
    ray_storage = f"s3://{BUCKET}/ckpt-test/ray" if where == "s3" else str(tmp_path / "sweep" / "ray")
    made = iter(range(100))

    def _fake_checkpoint(location: str, step: int, torn: bool = False) -> None:
        _upload(fake_checkpoint(tmp_path / "made" / str(next(made)), step, torn), location)

    _fake_checkpoint(f"{ray_storage}/segment-1/trial_c/checkpoint_000000", step=2)
    _fake_checkpoint(f"{ray_storage}/segment-2/trial_c/checkpoint_000000", step=4)
    _fake_checkpoint(f"{ray_storage}/segment-2/trial_c/checkpoint_000001", step=6, torn=True)
    _fake_checkpoint(f"{ray_storage}/segment-2/trial_d/checkpoint_000000", step=8)
    _put(f"{ray_storage}/segment-x", {"junk": b""})
    # a Train-backed trial's checkpoints are in its Ray Train runs, one per segment
    train_run = f"{ray_storage}/{train_run_name('c', 'c9f0_00000')}"
    _fake_checkpoint(f"{train_run}/checkpoint_2026-12-05_10-00-00.000000", step=5)
    _fake_checkpoint(f"{ray_storage}/{train_run_name('cc', 'x')}/checkpoint_2026-12-05_10-00-00.000000", step=9)

    assert list_segments(ray_storage) == [1, 2]
    assert sorted(checkpoint_candidates(ray_storage, "c")) == [
        (f"{ray_storage}/segment-1/trial_c/checkpoint_000000", 2),
        (f"{ray_storage}/segment-2/trial_c/checkpoint_000000", 4),  # the torn step-6 copy is not one
        (f"{train_run}/checkpoint_2026-12-05_10-00-00.000000", 5)]  # trial cc's is not c's
    if where == "folder":
        return  # the rest (a trial's own folder, the download) is the object store's
    # a local trial folder is never trusted with remote storage: it is on whichever node ran the trial
    fake_checkpoint(tmp_path / "trials" / "c" / "checkpoint", step=7)
    location, step = newest_checkpoint(ray_storage, tmp_path / "trials", "c")
    assert (location, step) == (f"{train_run}/checkpoint_2026-12-05_10-00-00.000000", 5)
    with local_checkpoint(location) as folder:
        assert (Path(folder) / "adapter" / "adapter_model.safetensors").read_bytes() == b"x" * 64
        assert json.loads((Path(folder) / "checkpoint.json").read_text())["step"] == 5
    assert not Path(folder).exists()  # the download is removed afterwards
    assert newest_checkpoint(ray_storage, tmp_path / "trials", "nobody") == (None, 0)
    assert list_segments(f"s3://{BUCKET}/nothing-here") == []


def test_a_missing_bucket_stops_the_sweep_before_anything_starts(s3_env, sweep_yaml, tmp_path, capsys):
    path = sweep_yaml(storage_dir="s3://no-such-bucket/sweeps", state_dir=str(tmp_path / "state"))
    assert margin_sweep.main(["--config", str(path)]) == 2
    assert "bucket 'no-such-bucket'" in capsys.readouterr().err
    assert not (tmp_path / "state").exists() and not (tmp_path / "mlflow.db").exists()


# ---------------------------------------------------------------- a sweep on the object store, killed, resumed

# the child leads its own process group (start_new_session) and names it for the failpoint, which kills
# the whole group (driver + the local Ray it started) from inside the trial
_LAUNCHER = ("import os, runpy, sys; os.environ['CRL_FAILPOINT_PGID'] = str(os.getpgid(0)); "
             "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _driver(args: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(ROOT / "sweeps" / "margin_sweep.py"), *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    finally:
        try:  # whatever the driver left of its local Ray
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_sweep_on_an_object_store_resumes_from_the_checkpoint_tune_put_there(s3_env, sweep_yaml, tmp_path):
    uri = f"s3://{BUCKET}/e2e"
    state = tmp_path / "state"
    path = sweep_yaml(num_samples=1, train={"overrides": {"steps": 8}}, storage_dir=uri, state_dir=str(state),
                      objective={"eval_every": 2, "grace_rungs": 4}, resources={"num_cpus": 2})
    ray_tmp = tempfile.mkdtemp(prefix="crl-s3-")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, **s3_env, "RAY_TMPDIR": ray_tmp, "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)  # the driver starts its own local Ray, which inherits the S3 environment
    try:
        # the driver's process group and the trial are killed inside the trial's third evaluation (step 6):
        # steps 2 and 4 were reported with checkpoints
        first = _driver(["--config", str(path)], {**env, "CRL_FAILPOINT": "mlflow_metrics:3"}, tmp_path / "d1.log", 600)
        log1 = (tmp_path / "d1.log").read_text()
        assert first == -signal.SIGKILL, f"the failpoint did not kill the driver ({first}):\n{log1[-3000:]}"
        assert f"Tune state and checkpoints in {uri}/tiny/ray" in log1
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        trial_id = client.search_runs([client.get_experiment_by_name("tiny").experiment_id],
                                      filter_string="tags.`crl.role` = 'trial'")[0].data.tags["crl.trial_id"]
        found = checkpoint_candidates(f"{uri}/tiny/ray", trial_id)
        assert max((step for _, step in found), default=0) == 4, found

        second = _driver(["--config", str(path), "--resume"], env, tmp_path / "d2.log", 600)
        log2 = (tmp_path / "d2.log").read_text()
        assert second == 0, log2[-3000:]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert f"continues from its checkpoint at step 4 ({uri}/tiny/ray/segment-1/trial_{trial_id}/checkpoint_" in log2
    # durable state local, Tune's state and checkpoints only in the bucket
    sweep = json.loads((state / "tiny" / "sweep.json").read_text())
    assert (state / "tiny" / "optuna.db").is_file() and not (state / "tiny" / "ray").exists()
    assert list_segments(f"{uri}/tiny/ray") == [1, 2]
    runs = client.search_runs([sweep["experiment_id"]], filter_string="tags.`crl.role` = 'trial'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    tags = runs[0].data.tags
    assert tags["crl.resumed_at_step"] == "4" and tags["crl.adapter_step"] == "8"
    # the continued trial did not redo steps 1-4: its eval history is 2, 4 (first driver), 6, 8 (resumed)
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "eval/score")] == [2, 4, 6, 8]
    assert client.get_run(sweep["parent_run_id"]).info.status == "FINISHED"
    params = client.get_run(sweep["parent_run_id"]).data.params  # the bucket's credentials never reach MLflow
    assert params["storage_dir"] == uri and not any("testing" in v for v in params.values())


@pytest.mark.slow
def test_a_train_backed_sweep_on_an_object_store_resumes_from_its_ray_train_checkpoint(s3_env, sweep_yaml, tmp_path):
    """Two DDP workers through Ray Train: their checkpoints are in the Train run's folder in the bucket
    (``train-<trial>-*``), which a resume finds after the driver was killed."""
    uri = f"s3://{BUCKET}/e2e-train"
    path = sweep_yaml(num_samples=1, train={"overrides": {"steps": 8}}, storage_dir=uri,
                      state_dir=str(tmp_path / "state"), objective={"eval_every": 2, "grace_rungs": 4},
                      resources={"workers": 2, "cpus_per_worker": 0.9, "max_concurrent_trials": 1, "num_cpus": 2})
    ray_tmp = tempfile.mkdtemp(prefix="crl-s3t-")
    env = {**os.environ, **s3_env, "RAY_TMPDIR": ray_tmp, "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    try:
        first = _driver(["--config", str(path)], {**env, "CRL_FAILPOINT": "mlflow_metrics:2"}, tmp_path / "d1.log", 900)
        assert first == -signal.SIGKILL, (tmp_path / "d1.log").read_text()[-3000:]
        second = _driver(["--config", str(path), "--resume"], env, tmp_path / "d2.log", 900)
        log2 = (tmp_path / "d2.log").read_text()
        assert second == 0, log2[-3000:]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id],
                              filter_string="tags.`crl.role` = 'trial'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    trial_id, tags = runs[0].data.tags["crl.trial_id"], runs[0].data.tags
    # rank 0 was killed inside its second evaluation (step 4): the step-2 checkpoint is the newest
    assert tags["crl.resumed_at_step"] == "2"
    assert f"continues from its checkpoint at step 2 ({uri}/tiny/ray/train-{trial_id}-" in log2
    assert tags["crl.adapter_step"] == "8"
