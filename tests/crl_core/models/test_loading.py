import json

import pytest
import torch

from crl_core.config import ConfigError
from crl_core.models import (
    ModelLoadError,
    ModelSpec,
    build_tiny_tokenizer,
    load_model,
    load_tokenizer,
    tiny_llama,
)
from crl_core.models.loading import _hub_kwargs


def test_tiny_llama_is_deterministic_and_exposes_all_hidden_states():
    tok = build_tiny_tokenizer("llama3")
    m1, m2 = tiny_llama(len(tok), seed=3), tiny_llama(len(tok), seed=3)
    ids = torch.tensor([tok("hello there")["input_ids"]])
    out1 = m1(ids, output_hidden_states=True)
    out2 = m2(ids, output_hidden_states=True)
    assert torch.equal(out1.logits, out2.logits)
    assert len(out1.hidden_states) == m1.config.num_hidden_layers + 1


def test_saved_tiny_model_loads_back_from_a_folder_offline(tmp_path):
    tok = build_tiny_tokenizer("chatml")
    model = tiny_llama(len(tok), seed=1)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    spec = ModelSpec(name=str(tmp_path), padding_side="right")
    m = load_model(spec)
    t = load_tokenizer(spec)
    assert t.padding_side == "right" and t.chat_template
    ids = torch.tensor([t("hello")["input_ids"]])
    assert torch.allclose(m(ids).logits, model(ids).logits)


def test_trust_remote_code_is_off_by_default():
    assert ModelSpec().trust_remote_code is False
    assert _hub_kwargs(ModelSpec(name="someone/model"), "someone/model")["trust_remote_code"] is False
    assert _hub_kwargs(ModelSpec(name="x/y", trust_remote_code=True), "x/y")["trust_remote_code"] is True


def test_unknown_model_id_while_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline"):
        load_tokenizer("no-such-org/no-such-model-xyz")


def test_folder_without_config_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(str(tmp_path / "missing" / "deeper"))


def test_model_spec_validation():
    with pytest.raises(ConfigError, match="dtype"):
        ModelSpec(dtype="float8")
    with pytest.raises(ConfigError, match="empty"):
        ModelSpec(name="  ")


def test_hf_folder_config_is_plain_json(tmp_path):
    tok = build_tiny_tokenizer("llama3")
    tiny_llama(len(tok)).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "auto_map" not in cfg
