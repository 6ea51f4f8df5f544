"""A sweep that failed says so: a non-zero exit with one summary line and a FAILED parent run, and
nothing left behind that blocks running it again (issue 11, part A)."""

import json
import shutil

import pytest
from mlflow.tracking import MlflowClient

from sweeps import margin_sweep
from sweeps.engine import driver


def _parent(client, tmp_path):
    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    return client.get_run(state["parent_run_id"])


def test_a_sweep_whose_every_trial_failed_exits_nonzero_and_a_resume_runs_it_again(
        ray_local, sweep_yaml, tiny_model_dir, tmp_path, capsys):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = next(broken.glob("*.safetensors"))
    intact = weights.read_bytes()
    weights.write_bytes(intact[:100])  # config.json is fine (pre-flight passes), the weights are not
    path = sweep_yaml(train={"overrides": {"model": {"name": str(broken)}}})

    assert margin_sweep.main(["--config", str(path)]) == 1
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("margin_sweep:")]
    assert len(err) == 1  # one summary line (the trials' own tracebacks are Ray's and MLflow's logging)
    assert err[0].startswith("margin_sweep: sweep failed:") and "no trial produced the objective score" in err[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = _parent(client, tmp_path)
    assert parent.info.status == "FAILED" and "no trial produced" in parent.data.tags["crl.failure"]
    assert "crl.best_trial_id" not in parent.data.tags

    weights.write_bytes(intact)  # fixed: --resume samples new trials in place of the failed ones
    assert margin_sweep.main(["--config", str(path), "--resume"]) == 0
    parent = _parent(client, tmp_path)
    assert parent.info.status == "FINISHED" and "crl.best_trial_id" in parent.data.tags
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'sweeps' / 'tiny' / 'optuna.db'}")
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    assert TrialState.RUNNING not in [t.state for t in study.trials]


def test_a_sweep_that_fails_before_any_trial_marks_its_run_failed_and_can_simply_be_rerun(
        ray_local, sweep_yaml, tmp_path, monkeypatch):
    path = sweep_yaml(num_samples=1)

    def boom(*args, **kwargs):
        raise RuntimeError("the Tuner could not be built")

    monkeypatch.setattr(driver, "run_segments", boom)
    with pytest.raises(RuntimeError, match="could not be built"):
        margin_sweep.main(["--config", str(path), "--experiment", "tiny"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.`crl.role` = 'sweep'")
    assert parent.info.status == "FAILED" and "could not be built" in parent.data.tags["crl.failure"]
    assert not (tmp_path / "sweeps" / "tiny" / "sweep.json").exists()  # nothing that blocks a rerun

    monkeypatch.undo()
    assert margin_sweep.main(["--config", str(path), "--experiment", "tiny"]) == 0  # the same command again
    assert _parent(client, tmp_path).info.status == "FINISHED"


def test_resume_with_nothing_to_resume_is_refused(sweep_yaml, tmp_path, capsys):
    path = sweep_yaml()
    assert margin_sweep.main(["--config", str(path), "--experiment", "tiny", "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "sweeps" / "tiny" / "sweep.json").exists()
