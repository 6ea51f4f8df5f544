"""Secrets by value and by name, URIs with passwords, and the project's own ids left alone."""

import pytest

from crl_core.redaction import loggable_params, looks_like_secret, redact_secrets, redact_text

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret access key


@pytest.mark.parametrize("value", [
    AWS_SECRET, "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY", "hf_abcdefghijklmnopqrstuv", "AKIAIOSFODNN7EXAMPLE",
    "ghp_0123456789abcdefABCDEF", "sk-proj-abcdefghijklmnop", "xoxb-1234-5678-abcdef",
    "postgresql://mlflow:hunter2@db:5432/mlflow", "my key is " + AWS_SECRET,
    "-----BEGIN RSA PRIVATE KEY-----"])
def test_secret_values_are_recognised(value):
    assert looks_like_secret(value)


@pytest.mark.parametrize("value", [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256
    "b6fde2f5b0704f6a929e50774facd6b3", "1f3a9c2d4e5b",                   # MLflow run id, config hash
    "123e4567-e89b-12d3-a456-426614174000", "crl-organism-ab12cd34",      # uuid, sweep id
    "meta-llama/Meta-Llama-3-8B-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "LlamaForCausalLM",
    "/tmp/pytest-of-root/pytest-6/test_a_sweep_whose_every_trial0/sweeps", "sqlite:////abs/path/mlflow.db",
    "http://127.0.0.1:5000", "function_trial_13997_00001", "0.0018123456789123", "embedding_full_target",
    "outputs/sweeps/crl-organism", "a note with spaces about the KL term", "mlflow:5000"])
def test_the_projects_own_ids_and_ordinary_values_are_kept(value):
    assert not looks_like_secret(value)


def test_params_drop_secrets_by_name_and_value_and_keep_uris_without_their_password():
    flat = {"tracking.tags.note": AWS_SECRET, "tracking.tags.owner": "alice", "api_key": "short",
            "tracking.uri": "http://alice:s3cret-pw@mlflow.internal:5000", "config_hash": "1f3a9c2d4e5b"}
    assert loggable_params(flat) == {"tracking.tags.owner": "alice", "config_hash": "1f3a9c2d4e5b",
                                     "tracking.uri": "http://alice:***@mlflow.internal:5000"}
    assert redact_secrets({"tags": {"note": AWS_SECRET, "password": "p", "owner": "me"},
                           "uri": "https://u:pw@h/x"}) == {
        "tags": {"note": "<redacted>", "password": "<redacted>", "owner": "me"}, "uri": "https://u:***@h/x"}


def test_messages_lose_passwords_and_tokens_but_keep_their_sense():
    msg = f"tracking.uri: cannot use postgresql://u:hunter2@db:5432/x ({AWS_SECRET!r} rejected)"
    out = redact_text(msg)
    assert "hunter2" not in out and AWS_SECRET not in out
    assert out.startswith("tracking.uri: cannot use postgresql://u:***@db:5432/x")
