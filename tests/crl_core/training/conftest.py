"""Shared fixtures for training tests: a tiny random Llama with a ChatML tokenizer, trained on the
SmolLM2 data preset (vendored prompts + a fixed opening/refusal), so no organism is needed."""

import pytest

from crl_core.config import from_dict
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama
from crl_core.training import TrainConfig


def _tiny_setup(**overrides):
    tok = build_tiny_tokenizer("chatml")
    model = tiny_llama(len(tok), hidden_size=32, num_layers=3, seed=0)
    data = {"method": "crl", "steps": 6, "model": {"name": "tiny"}, "harmful_layers": {"indices": [1, 2]},
            "data": {"preset": "smollm2", "batch_benign": 4, "batch_harmful": 4, "batch_retain": 4,
                     "max_length": 48, "harmful_limit": 40},
            "eval": {"enabled": False}, "log_every": 100, "output_dir": "/tmp/crl-test-unused"}
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return model, tok, from_dict(TrainConfig, data)


@pytest.fixture
def tiny_setup():
    return _tiny_setup
