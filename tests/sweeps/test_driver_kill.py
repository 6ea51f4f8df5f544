"""The sweep driver killed mid-sweep (SIGKILL, with the local Ray it started), then ``--resume``: finished
trials are not rerun, no trial gets a second MLflow run, and the sweep ends with ``num_samples`` trials,
even when the kill tore Tune's own snapshot files (a resume reads only the sweep's durable state).
The pieces that make it safe are tested on their own: the one-driver lock in engine/test_cluster.py, the
reconciliation of the study with MLflow in engine/test_durable.py."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from sweeps import margin_sweep

ROOT = Path(__file__).resolve().parents[2]


def _trial_rows(db: Path) -> list[tuple[str, str, str]]:
    """(run id, status, trial id) of every trial run, read straight from the sqlite store (read-only)."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT r.run_uuid, r.status, t.value FROM runs r JOIN tags t ON t.run_uuid = "
                               "r.run_uuid WHERE t.key = 'crl.trial_id'").fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # the schema is still being created
        return []


def _evaluated(db: Path, run_id: str) -> bool:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return bool(con.execute("SELECT 1 FROM metrics WHERE run_uuid = ? AND key = 'eval/score'", (run_id,)).fetchall())
    finally:
        con.close()


def test_a_killed_driver_resumes_without_rerunning_or_duplicating_trials(ray_local, sweep_yaml, tmp_path):
    path = sweep_yaml(num_samples=3, train={"overrides": {"steps": 12}},
                      objective={"eval_every": 2, "grace_rungs": 6},  # no ASHA stop: every trial runs 12 steps
                      resources={"max_concurrent_trials": 1, "num_cpus": 2})
    db = tmp_path / "mlflow.db"
    ray_tmp = tempfile.mkdtemp(prefix="crl-dk-")  # short: Ray's socket paths must fit in 107 bytes
    env = dict(os.environ, RAY_TMPDIR=ray_tmp, HF_HUB_OFFLINE="1")
    env.pop("RAY_ADDRESS", None)  # the driver starts its own local Ray, as `python sweeps/margin_sweep.py` does
    with open(tmp_path / "driver.log", "w") as out:
        driver = subprocess.Popen([sys.executable, str(ROOT / "sweeps" / "margin_sweep.py"), "--config", str(path)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # kill mid-sweep: a trial has finished, and the next one has evaluated (so it has a checkpoint)
        deadline = time.time() + 300
        while True:
            rows = _trial_rows(db)
            finished = [r for r in rows if r[1] == "FINISHED"]
            in_flight = [r for r in rows if r[1] == "RUNNING" and _evaluated(db, r[0])]
            if finished and in_flight:
                break
            assert driver.poll() is None, f"the driver ended before it could be killed:\n{(tmp_path / 'driver.log').read_text()[-3000:]}"
            assert time.time() < deadline, "the sweep did not get to a second trial in time"
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        try:  # the local Ray the driver started (raylet, agents) lives in its process group
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
    # what a kill inside Tune's snapshot write leaves (issue 11): every snapshot file torn to 0 bytes
    torn = [f for pattern in ("experiment_state-*.json", "searcher-state-*.pkl", "search_gen_state-*.json")
            for f in (tmp_path / "sweeps" / "tiny" / "ray").glob(f"segment-*/{pattern}")]
    assert torn, "Tune wrote no snapshot to tear"
    for f in torn:
        f.write_bytes(b"")
    before_kill = {trial: run_id for run_id, status, trial in _trial_rows(db) if status == "FINISHED"}
    interrupted = {trial: run_id for run_id, status, trial in in_flight}
    client = MlflowClient(f"sqlite:///{db}")
    histories = {run_id: [m.step for m in client.get_metric_history(run_id, "eval/score")]
                 for run_id in before_kill.values()}
    models_before = {run_id: client.get_run(run_id).data.tags["crl.logged_model_id"]
                     for run_id in [*before_kill.values(), *interrupted.values()]}

    assert margin_sweep.main(["--config", str(path), "--resume"]) == 0

    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    runs = client.search_runs([state["experiment_id"]], filter_string="tags.`crl.role` = 'trial'")
    trial_ids = [r.data.tags["crl.trial_id"] for r in runs]
    assert len(trial_ids) == len(set(trial_ids)), "a trial got a second MLflow run"
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    by_trial = {r.data.tags["crl.trial_id"]: r for r in runs}
    for trial, run_id in interrupted.items():  # the interrupted trial continued in its own run
        assert by_trial[trial].info.run_id == run_id and "crl.resumed_at_step" in by_trial[trial].data.tags
    for trial, run_id in before_kill.items():  # finished trials: same run, evaluations not redone
        assert trial in trial_ids
        assert [m.step for m in client.get_metric_history(run_id, "eval/score")] == histories[run_id]
    for run in runs:
        assert run.data.tags["crl.adapter_step"] == "12"
    # one LoggedModel per trial: a resumed trial updated its model instead of creating a second one
    for run_id, model_id in models_before.items():
        assert client.get_run(run_id).data.tags["crl.logged_model_id"] == model_id
    models = client.search_logged_models([state["experiment_id"]])
    assert sorted(m.source_run_id for m in models) == sorted(r.info.run_id for r in runs)
    assert all(m.tags["crl.adapter_step"] == "12" for m in models)
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'sweeps' / 'tiny' / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 3 and TrialState.RUNNING not in states
