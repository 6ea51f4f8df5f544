"""The README's cluster path: `ray start --head`, then `ray job submit ... -- python sweeps/margin_sweep.py`."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_dashboard(port: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise TimeoutError(f"the Ray dashboard did not open port {port}")


def _submit(path: Path, env_vars: dict[str, str]) -> subprocess.CompletedProcess:
    """Start a head, submit the sweep as the README does (``--working-dir`` = the repository), stop the head."""
    bin_dir = Path(sys.executable).parent
    ray_tmp = tempfile.mkdtemp(prefix="crl-job-", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "token", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    # a cluster started with `ray start` is not the sweep's own single-machine Ray: drop the switch the shared
    # test Ray set in this process (with it the head's job agent never registers: "No available agent")
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    dashboard = _free_port()
    # --block keeps the head in this process group, so it is stopped below without `ray stop` (which would
    # also stop any other Ray on the machine, e.g. the one the other sweep tests share)
    head = subprocess.Popen([str(bin_dir / "ray"), "start", "--head", "--block", "--num-cpus", "2",
                             "--port", str(_free_port()), "--dashboard-host", "127.0.0.1",
                             "--dashboard-port", str(dashboard), "--disable-usage-stats", "--temp-dir", ray_tmp,
                             # the shared test Ray of this process holds the fixed default agent port (52365):
                             # a second head on it has no job agent ("No available agent to submit job")
                             "--dashboard-agent-listen-port", str(_free_port()),
                             "--dashboard-agent-grpc-port", str(_free_port()),
                             "--metrics-export-port", str(_free_port())],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_dashboard(dashboard)
        deadline = time.time() + 180
        while True:  # the dashboard port opens before the head's job agent has registered (slow under load)
            job = subprocess.run(
                [str(bin_dir / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
                 "--working-dir", str(REPO),
                 "--runtime-env-json", json.dumps({"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1", **env_vars}}),
                 "--", "python", "sweeps/margin_sweep.py", "--config", str(path)],
                env=env, capture_output=True, text=True, timeout=900)
            if "No available agent to submit job" not in job.stdout + job.stderr or time.time() > deadline:
                return job
            time.sleep(3)
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=60)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _check_results(job, results: Path, tracking_db: Path) -> None:
    log = job.stdout + job.stderr
    assert job.returncode == 0, log[-4000:]
    assert "succeeded" in log and "best trial" in log
    assert "joining the Ray cluster at" in log and "starting a local Ray" not in log  # joined the head
    state = json.loads((results / "tiny" / "sweep.json").read_text())
    client = MlflowClient(f"sqlite:///{tracking_db}")
    parent = client.get_run(state["parent_run_id"])
    runs = client.search_runs([parent.info.experiment_id], filter_string="tags.`crl.role` = 'trial'")
    assert parent.info.status == "FINISHED" and parent.data.tags["crl.best_trial_id"]
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert all("adapter" in {a.path for a in client.list_artifacts(r.info.run_id)} for r in runs)


def test_ray_job_submit_runs_a_sweep_on_a_running_head(sweep_yaml, tmp_path):
    job = _submit(sweep_yaml(), {})
    _check_results(job, tmp_path / "sweeps", tmp_path / "mlflow.db")


def test_ray_job_submit_with_relative_result_paths_keeps_the_results(sweep_yaml, tmp_path):
    """The README's command as written: relative storage and tracking would land in the job's temporary
    working-dir copy; they go to $CRL_RESULTS_DIR (default ~/crl-sweep) instead, and the log says so."""
    path = sweep_yaml(storage_dir="outputs/sweeps", tracking={"uri": "sqlite:///mlflow.db", "artifact_root": "mlruns"})
    kept = tmp_path / "kept"
    job = _submit(path, {"CRL_RESULTS_DIR": str(kept)})
    assert "running in a `ray job submit` working-dir copy: results go to" in job.stdout + job.stderr
    _check_results(job, kept / "outputs" / "sweeps", kept / "mlflow.db")
