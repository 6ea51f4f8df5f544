"""End-to-end sweeps on a tiny model through real Ray Tune and a real MLflow sqlite store."""

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from sweeps import margin_sweep

SECRET = "hf_abcdefghijklmnopqrstuv"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # a secret by value only: no known prefix


def _trial_runs(client, parent_run_id):
    exp = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


def test_smoke_sweep_logs_child_runs_with_a_loadable_adapter(ray_local, sweep_yaml, tiny_model_dir, tmp_path,
                                                             capsys, monkeypatch):
    import mlflow
    import torch
    from mlflow.entities import LoggedModelStatus
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = sweep_yaml(tracking={"tags": {"token": "plain-value", "owner": SECRET, "team": "crl", "note": AWS_SECRET}})
    assert margin_sweep.main(["--config", str(path)]) == 0
    out = capsys.readouterr().out
    # a quiet console: one line per trial event, none of Tune's tables, hints or colour codes
    assert "Trial status" not in out and "TensorBoard" not in out and "\x1b[" not in out
    assert out.count(" started: ") == 2 and out.count(" finished") == 2
    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    runs = _trial_runs(client, state["parent_run_id"])
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["crl.sweep_id"] == state["sweep_id"] and run.data.tags["crl.config_hash"]
        assert run.data.tags["crl.data_hash"] and run.data.tags["crl.git_commit"]
        assert "triplet.margin_benign" in run.data.params and "mining.enabled" in run.data.params
        assert {"eval/score", "eval/asr", "eval/benign_accuracy", "train/loss"} <= set(run.data.metrics)
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert [m.step for m in history] == [1, 2, 3, 4]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"adapter", "evaluation_spec.json", "resolved_config.yaml"} <= artifacts
    assert "pareto.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    best = state and parent.data.tags["crl.best_trial_id"]
    assert f"best trial {best}" in out and "adapter" in out
    # the parent run carries the best trial's own metrics
    best_run = next(r for r in runs if r.data.tags["crl.trial_id"] == best)
    assert parent.data.metrics["best/score"] == best_run.data.metrics["eval/score"]
    assert parent.data.metrics["best/asr"] == best_run.data.metrics["eval/asr"]

    # the adapter artifact loads back onto a fresh base model and changes its outputs
    local = mlflow.artifacts.download_artifacts(run_id=runs[0].info.run_id, artifact_path="adapter",
                                                tracking_uri=uri, dst_path=str(tmp_path / "download"))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = base(input_ids=ids).logits.clone()
        adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), local)
        assert not torch.allclose(adapted(input_ids=ids).logits, before)

    # each trial is also an MLflow LoggedModel: the latest adapter, the searched params, the evaluations
    for run in runs:
        model = client.get_logged_model(run.data.tags["crl.logged_model_id"])
        assert model.status == LoggedModelStatus.READY
        assert model.source_run_id == run.info.run_id and model.tags["crl.trial_id"] == run.data.tags["crl.trial_id"]
        assert model.tags["crl.adapter_step"] == run.data.tags["crl.adapter_step"] == "4"
        searched = run.data.tags["crl.searched"].split(",")
        assert searched and {k: model.params[k] for k in searched} == {k: run.data.params[k] for k in searched}
        assert sorted(m.step for m in model.metrics if m.key == "eval/score") == [2, 4]
    assert len(client.search_logged_models([parent.info.experiment_id])) == 2
    best_model = parent.data.tags["crl.best_model_uri"]
    assert best_model.startswith("models:/") and best_model in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what resolves models:/ URIs
    model_dir = mlflow.artifacts.download_artifacts(best_model, dst_path=str(tmp_path / "model"))
    with torch.no_grad():
        from_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), model_dir)
        assert not torch.allclose(from_model(input_ids=ids).logits, before)

    # portable: trial params and tags name folders relative to the sweep storage, adapters no local base path
    for run in runs:
        data = client.get_run(run.info.run_id).data
        assert str(tmp_path) not in json.dumps([data.params, data.tags])
        assert data.tags["crl.trial_dir"] == data.params["output_dir"] == f"tiny/trials/{data.tags['crl.trial_id']}"
    adapter_config = json.loads((Path(model_dir) / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"].startswith("crl-sweep/") and len(adapter_config["revision"]) == 40

    # secrets: a key named token and a value that looks like a hub token are logged nowhere
    for run in [parent, *runs]:
        data = client.get_run(run.info.run_id).data
        assert "token" not in data.tags and "tracking.tags.token" not in data.params
        assert SECRET not in json.dumps([data.params, data.tags]) and AWS_SECRET not in json.dumps([data.params, data.tags])
    config_artifact = client.download_artifacts(parent.info.run_id, "sweep_config.json", str(tmp_path / "cfg"))
    text = open(config_artifact).read()
    assert SECRET not in text and AWS_SECRET not in text and "plain-value" not in text and '"team": "crl"' in text


def test_resume_reruns_nothing_and_adds_the_missing_trials(ray_local, sweep_yaml, tmp_path):
    path = sweep_yaml()
    assert margin_sweep.main(["--config", str(path), "--num-samples", "2"]) == 0
    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    first = {r.data.tags["crl.trial_id"]: r.info.run_id for r in _trial_runs(client, state["parent_run_id"])}
    # an explicitly named sweep that exists needs --resume (without --experiment a rerun picks NAME-2,
    # tested in test_recipe.py without running trials)
    assert margin_sweep.main(["--config", str(path), "--num-samples", "2", "--experiment", "tiny"]) == 2

    assert margin_sweep.main(["--config", str(path), "--num-samples", "3", "--resume"]) == 0
    runs = _trial_runs(client, state["parent_run_id"])
    assert len(runs) == 3
    by_trial = {r.data.tags["crl.trial_id"]: r for r in runs}
    for trial_id, run_id in first.items():
        assert by_trial[trial_id].info.run_id == run_id
        evals = client.get_metric_history(run_id, "eval/score")
        assert [m.step for m in evals] == [2, 4]  # evaluated once per rung, never again after the resume
    assert all(r.info.status == "FINISHED" for r in runs)
    import optuna

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'sweeps' / 'tiny' / 'optuna.db'}")
    assert len(study.trials) == 3
