"""A trial's MLflow records (sweeps/engine/runs.py): its LoggedModel, created once, updated on every
evaluation, optional on old servers; and secrets never reach MLflow."""

from pathlib import Path

from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from crl_core.redaction import loggable_params, redact_secrets
from sweeps.engine import LOGGED_MODEL_TAG, TrialTracker


def _tracker(client, experiment_id, run_id):
    tracker = TrialTracker.__new__(TrialTracker)  # the MLflow half only: no model, no trainer
    tracker.client, tracker.experiment_id, tracker.run_id = client, experiment_id, run_id
    tracker.sweep_id, tracker.trial_id, tracker.model_id = "s1", "t1", None
    tracker.logged_models_supported = True
    tracker.model_params = {"triplet.margin_benign": "0.5"}
    return tracker


def test_one_model_per_trial_holds_the_latest_adapter(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(exp).info.run_id
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    tracker = _tracker(client, exp, run_id)
    for step, weights in [(2, b"first"), (4, b"second")]:
        (adapter / "adapter_model.safetensors").write_bytes(weights)
        tracker.log_evaluation(step, {"score": step / 10}, {"kind": "test"}, adapter)
    (model,) = client.search_logged_models([exp])
    assert model.model_id == client.get_run(run_id).data.tags[LOGGED_MODEL_TAG]
    assert model.status == LoggedModelStatus.READY and model.tags["crl.adapter_step"] == "4"
    assert model.params == {"triplet.margin_benign": "0.5"} and model.source_run_id == run_id
    assert sorted((m.step, m.value) for m in model.metrics if m.key == "eval/score") == [(2, 0.2), (4, 0.4)]
    # both copies hold the latest adapter (a local store: the model's artifacts are a folder)
    stored = client.download_artifacts(run_id, "adapter", str(tmp_path / "run_copy"))
    assert (Path(stored) / "adapter_model.safetensors").read_bytes() == b"second"
    assert (Path(model.artifact_location) / "adapter_model.safetensors").read_bytes() == b"second"

    # a restarted trial finds its model through the run tag and does not create a second one
    again = _tracker(client, exp, run_id)
    again.model_id = client.get_run(run_id).data.tags[LOGGED_MODEL_TAG]
    again.log_evaluation(6, {"score": 0.6}, {"kind": "test"}, adapter)
    assert [m.model_id for m in client.search_logged_models([exp])] == [model.model_id]


def test_a_server_without_logged_models_keeps_the_run_artifact(tmp_path, capsys):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(exp).info.run_id
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")

    def unsupported(*args, **kwargs):
        raise MlflowException("404: endpoint not found")

    client.create_logged_model = unsupported
    tracker = _tracker(client, exp, run_id)
    tracker.log_evaluation(2, {"score": 0.5}, {"kind": "test"}, adapter)
    tracker.log_evaluation(4, {"score": 0.7}, {"kind": "test"}, adapter)
    assert capsys.readouterr().out.count("LoggedModel not available") == 1
    assert LOGGED_MODEL_TAG not in client.get_run(run_id).data.tags
    assert [m.value for m in client.get_metric_history(run_id, "eval/score")] == [0.5, 0.7]
    assert "adapter" in {a.path for a in client.list_artifacts(run_id)}


def test_credentials_are_filtered_from_params_and_redacted_from_configs():
    flat = {"tracking.tags.token": "abc", "hf_token": "x", "api_key": "y", "note": "hf_abcdefghijklmnop",
            "key": "sk-abcdefghijkl", "evaluation.max_new_tokens": 24, "triplet.margin_benign": 0.5}
    assert loggable_params(flat) == {"evaluation.max_new_tokens": "24", "triplet.margin_benign": "0.5"}
    assert redact_secrets({"tags": {"password": "p", "owner": "me"}}) == {"tags": {"password": "<redacted>",
                                                                                   "owner": "me"}}
