"""The state a resume trusts (sweeps/engine/durable.py): the reconciliation of the study with MLflow and the
newest complete checkpoint of an interrupted trial."""

from mlflow.tracking import MlflowClient

from sweeps.engine.durable import TRIAL_ID_ATTR, plan_resume
from sweeps.engine.study import StudyRef


def test_plan_resume_reconciles_the_study_with_mlflow_and_finds_the_newest_complete_checkpoint(tmp_path, fake_checkpoint):
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    sweep_dir = tmp_path / "sweeps" / "s"
    sweep_dir.mkdir(parents=True)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{sweep_dir / 'optuna.db'}", direction="maximize")
    dist = {"x": FloatDistribution(0.0, 1.0)}

    def ask(trial_id=None):
        t = study.ask(fixed_distributions=dist)
        if trial_id:
            t.set_user_attr(TRIAL_ID_ATTR, trial_id)
        return t

    study.tell(ask("a"), 0.5)           # finished everywhere
    ask()                               # suggested, never handed to a trial
    c = ask("c")                        # interrupted mid-training
    ask("d")                            # its run was closed, the study never heard
    study.tell(ask("e"), 0.7)           # told, but its run was left open
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("s", artifact_location=str(tmp_path / "mlruns"))

    def run(trial_id, sweep="s1"):
        return client.create_run(exp, tags={"crl.sweep_id": sweep, "crl.role": "trial", "crl.trial_id": trial_id}).info.run_id

    runs = {t: run(t) for t in "acdef"}
    other_sweep = run("c", sweep="s2")
    client.set_terminated(runs["a"], "FINISHED")
    client.log_metric(runs["d"], "eval/score", 0.25, step=4)
    client.set_terminated(runs["d"], "FINISHED")
    fake_checkpoint(sweep_dir / "ray" / "segment-1" / "trial_c" / "checkpoint_000000", step=2)
    fake_checkpoint(sweep_dir / "ray" / "segment-1" / "trial_c" / "checkpoint_000001", step=6, torn=True)
    fake_checkpoint(sweep_dir / "trials" / "c" / "checkpoint", step=4)

    ref = StudyRef(f"sqlite:///{sweep_dir / 'optuna.db'}", "s", sweep_dir / "optuna.db")
    state = {"experiment_id": exp, "sweep_id": "s1"}
    todo = plan_resume(ref, str(sweep_dir / "ray"), sweep_dir / "trials", client, state, ["score"], log=lambda m: None)

    assert [(t.trial_id, t.number, t.step) for t in todo] == [("c", c.number, 4)]  # the torn step-6 copy is skipped
    assert todo[0].checkpoint == str(sweep_dir / "trials" / "c" / "checkpoint") and todo[0].params == c.params
    trials = optuna.load_study(study_name="s", storage=study._storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING,
                                         TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[3].value == 0.25  # told from the run's last evaluation
    status = {t: client.get_run(r).info.status for t, r in runs.items()}
    assert status == {"a": "FINISHED", "c": "RUNNING", "d": "FINISHED", "e": "FINISHED", "f": "KILLED"}
    assert "crl.orphaned" in client.get_run(runs["f"]).data.tags  # no study trial names it
    assert client.get_run(other_sweep).info.status == "RUNNING"  # another sweep's trial is left alone
    assert plan_resume(ref, str(sweep_dir / "ray"), sweep_dir / "trials", client, state, ["score"],
                       log=lambda m: None)[0].trial_id == "c"  # idempotent
