"""Slow sweep checks (minutes on 2 CPUs; run with ``-m slow``): the Ray Train path with two DDP workers,
a killed worker resuming from its checkpoint, and a real ``mlflow server`` used through its REST API."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeps import margin_sweep

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

TRAIN_BACKED = {"resources": {"workers": 2, "cpus_per_worker": 0.9, "max_concurrent_trials": 1, "max_failures": 2}}


def _trial_runs(client, parent_run_id):
    exp = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


def test_two_worker_ddp_trial_runs_through_ray_train(ray_local, sweep_yaml, tmp_path):
    path = sweep_yaml(num_samples=1, **TRAIN_BACKED)
    assert margin_sweep.main(["--config", str(path)]) == 0
    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    runs = _trial_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), state["parent_run_id"])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["eval/score"] is not None
    assert list((tmp_path / "sweeps" / "tiny" / "ray").glob("train-*"))  # the TorchTrainer's own run folder


def test_a_killed_worker_resumes_the_trial_from_its_checkpoint(ray_local, sweep_yaml, tmp_path):
    from ray.util.state import list_actors

    steps = 24  # long enough that the kill lands mid-training even on a loaded machine
    path = sweep_yaml(num_samples=1, train={"overrides": {"steps": steps}}, **TRAIN_BACKED)
    ray_dir = tmp_path / "sweeps" / "tiny" / "ray"
    killed = []

    def kill_a_worker_after_the_first_checkpoint():
        deadline = time.time() + 400
        pids: list[int] = []
        while time.time() < deadline and not killed:
            if not pids:  # the State API is slow under load: find the workers first, while they start
                pids = [a.pid for a in list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])]
            # the snapshot is written once the controller has registered a checkpoint (the checkpoint
            # folder alone appears earlier: a kill then restarts the trial from scratch, not from step 2)
            elif list(ray_dir.glob("train-*/checkpoint_manager_snapshot.json")):
                os.kill(pids[-1], signal.SIGKILL)
                killed.append(pids[-1])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_after_the_first_checkpoint, daemon=True)
    killer.start()
    assert margin_sweep.main(["--config", str(path)]) == 0
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = _trial_runs(client, state["parent_run_id"])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the same run continued, none duplicated
    assert int(runs[0].data.tags["crl.resumed_at_step"]) >= 2
    assert runs[0].data.tags["crl.adapter_step"] == str(steps)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_sweep_against_a_real_mlflow_server(ray_local, sweep_yaml, tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300  # an mlflow server starts slowly on a loaded machine
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline, "mlflow server did not start"
                time.sleep(1)
        path = sweep_yaml(tracking={"uri": url, "artifact_root": ""})
        assert margin_sweep.main(["--config", str(path)]) == 0
        exps = _post(f"{url}/api/2.0/mlflow/experiments/search", {"max_results": 10})["experiments"]
        exp_id = next(e["experiment_id"] for e in exps if e["name"] == "tiny")
        runs = _post(f"{url}/api/2.0/mlflow/runs/search", {
            "experiment_ids": [exp_id], "filter": "tags.`crl.role` = 'trial'",
            "order_by": ["metrics.`eval/score` DESC"]})["runs"]
        assert len(runs) == 2 and all(r["info"]["status"] == "FINISHED" for r in runs)
        run_id = runs[0]["info"]["run_id"]
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=adapter") as resp:
            files = {f["path"] for f in json.loads(resp.read())["files"]}
        assert "adapter/adapter_model.safetensors" in files
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: the server's workers linger past SIGTERM
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)


def _start_mlflow_server(port: int, tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300  # an mlflow server starts slowly on a loaded machine
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            assert time.time() < deadline, "mlflow server did not start"
            time.sleep(1)


def test_an_mlflow_outage_mid_sweep_warns_retries_and_loses_nothing(sweep_yaml, tmp_path):
    """The tracking server dies after the first evaluation and comes back 25 s later: the driver (its own
    local Ray, as `python sweeps/margin_sweep.py`) prints a warning, retries, and every trial run ends
    FINISHED with its full evaluation history and its adapter."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_mlflow_server(port, tmp_path)
    path = sweep_yaml(num_samples=2, train={"overrides": {"steps": 8}}, objective={"eval_every": 2, "grace_rungs": 4},
                      tracking={"uri": url, "artifact_root": ""})
    ray_tmp = tempfile.mkdtemp(prefix="crl-ml-")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "driver.log"
    driver = subprocess.Popen([sys.executable, str(ROOT / "sweeps" / "margin_sweep.py"), "--config", str(path)],
                              env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while "step 2:" not in log.read_text():  # the first evaluation reached the server
            assert driver.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "no evaluation in time"
            time.sleep(0.2)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        time.sleep(25)
        server = _start_mlflow_server(port, tmp_path)
        assert driver.wait(timeout=600) == 0, log.read_text()[-4000:]
        out = log.read_text()
        assert f"warning: MLflow at {url} is unreachable" in out and "answers again after" in out
        client = MlflowClient(url)
        exp = client.get_experiment_by_name("tiny")
        runs = client.search_runs([exp.experiment_id], filter_string="tags.`crl.role` = 'trial'")
        assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
        for run in runs:
            assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/score")] == [2, 4, 6, 8]
            files = {f.path for f in client.list_artifacts(run.info.run_id, "adapter")}
            assert "adapter/adapter_model.safetensors" in files
    finally:
        for proc in (driver, server):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
