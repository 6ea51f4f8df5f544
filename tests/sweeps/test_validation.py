"""Bad sweep configs are rejected before Ray starts or any trial runs; secrets never reach MLflow."""

import pytest

from crl_core.config import ConfigError, load_config, load_yaml
from sweeps.engine import SweepConfig, loggable_params, redact_secrets, run_sweep, validate_before_launch


def _config(path, *overrides) -> SweepConfig:
    return load_config(SweepConfig, None, list(overrides), base=load_yaml(path))


def test_the_tiny_sweep_config_is_valid(sweep_yaml):
    cfg = _config(sweep_yaml())
    base = validate_before_launch(cfg)
    assert base["model"]["name"] and sorted(cfg.params()) == [
        "harmful_layers.start", "mining.enabled", "triplet.margin_benign", "triplet.margin_harmful"]


def test_unknown_search_key_is_rejected_with_a_suggestion(sweep_yaml):
    cfg = _config(sweep_yaml(search_space={"triplet.margin_benig": {"type": "uniform", "low": 0, "high": 1}}))
    with pytest.raises(ConfigError, match=r"search_space\.triplet\.margin_benig=.*did you mean 'margin_benign'"):
        validate_before_launch(cfg)


def test_a_layer_past_the_model_depth_is_rejected(sweep_yaml):
    cfg = _config(sweep_yaml(search_space={"harmful_layers.start": {"type": "int", "low": 1, "high": 3}}))
    with pytest.raises(ConfigError, match=r"harmful_layers\.start=3.*index 4 is past the model's depth.*3 decoder"):
        validate_before_launch(cfg)


def test_a_layer_window_ignored_by_the_preset_is_rejected(sweep_yaml):
    cfg = _config(sweep_yaml(train={"overrides": {"harmful_layers": {"indices": [1, 2]}}}))
    with pytest.raises(ConfigError, match="overrides start/width"):
        validate_before_launch(cfg)


def test_workers_that_cannot_fit_are_rejected_before_any_trial(sweep_yaml, tmp_path):
    cfg = _config(sweep_yaml(resources={"workers": 3, "cpus_per_worker": 1}))
    with pytest.raises(ConfigError, match=r"resources: one trial needs 3\.1 CPU .* has 2"):
        run_sweep(cfg)
    assert not (tmp_path / "sweeps").exists()


def test_an_unreachable_tracking_server_is_rejected(sweep_yaml):
    cfg = _config(sweep_yaml(tracking={"uri": "http://127.0.0.1:9"}))
    with pytest.raises(ConfigError, match="tracking.uri: the MLflow server at http://127.0.0.1:9 is not reachable"):
        validate_before_launch(cfg)


def test_bad_parameter_specs_are_rejected(sweep_yaml):
    with pytest.raises(ConfigError, match="loguniform needs low > 0"):
        _config(sweep_yaml(search_space={"optim.lr": {"type": "loguniform", "low": 0, "high": 1}})).params()
    with pytest.raises(ConfigError, match="choice needs a non-empty 'values'"):
        _config(sweep_yaml(search_space={"mining.enabled": {"type": "choice", "values": []}})).params()


def test_credentials_are_filtered_from_params_and_redacted_from_configs():
    flat = {"tracking.tags.token": "abc", "hf_token": "x", "api_key": "y", "note": "hf_abcdefghijklmnop",
            "key": "sk-abcdefghijkl", "evaluation.max_new_tokens": 24, "triplet.margin_benign": 0.5}
    assert loggable_params(flat) == {"evaluation.max_new_tokens": "24", "triplet.margin_benign": "0.5"}
    assert redact_secrets({"tags": {"password": "p", "owner": "me"}}) == {"tags": {"password": "<redacted>",
                                                                                   "owner": "me"}}


def test_a_malformed_actor_reuse_switch_is_rejected():
    from sweeps.engine import _reuse_trial_actors

    assert _reuse_trial_actors("1") is True and _reuse_trial_actors("0") is False
    with pytest.raises(ConfigError, match="CRL_REUSE_TRIAL_ACTORS must be 0 or 1, got 'false'"):
        _reuse_trial_actors("false")
