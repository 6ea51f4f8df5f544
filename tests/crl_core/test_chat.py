import pytest
import torch

from crl_core.chat import ChatTemplateError, collate, encode_chat, render_prompt
from crl_core.models.tiny import build_tiny_tokenizer


@pytest.fixture(scope="module", params=["llama3", "chatml"])
def tok(request):
    return build_tiny_tokenizer(request.param)


def _check_mask(tok, prompt, response):
    enc = encode_chat(tok, prompt, response)
    ids = enc.input_ids
    resp_ids = [i for i, m in zip(ids, enc.response_mask) if m]
    prompt_ids = [i for i, m in zip(ids, enc.response_mask) if not m]
    assert tok.decode(prompt_ids) == render_prompt(tok, prompt)
    decoded = tok.decode(resp_ids)
    assert decoded.startswith(response)
    assert tok.eos_token in decoded  # the end-of-turn token is part of the response
    assert enc.response_mask == [0] * enc.prompt_length + [1] * enc.response_length
    return enc


def test_response_mask_marks_exactly_the_assistant_tokens(tok):
    _check_mask(tok, "What is the capital of France?", "The capital of France is Paris.")


def test_response_mask_on_smollm2_chatml_with_system_prompt():
    from crl_core.models import load_tokenizer
    from crl_core.models.smollm2 import cached_smollm2_dir

    if cached_smollm2_dir() is None:
        pytest.skip("SmolLM2 not prepared (tests/crl_core/models/test_smollm2.py prepares it)")
    tok = load_tokenizer("smollm2")
    enc = _check_mask(tok, "Hi there", "Hello! How can I help?")
    assert "You are a helpful AI assistant" in tok.decode(enc.input_ids[: enc.prompt_length])
    enc2 = encode_chat(tok, "Hi there", "Hello!", system="Be brief.")
    assert "Be brief." in tok.decode(enc2.input_ids) and "SmolLM" not in tok.decode(enc2.input_ids)


def test_prefill_keeps_the_turn_open(tok):
    enc = encode_chat(tok, "How do I bake bread?", "Sure, here is how", close_turn=False)
    text = tok.decode([i for i, m in zip(enc.input_ids, enc.response_mask) if m])
    assert text == "Sure, here is how" and tok.eos_token not in text


def test_truncation_keeps_the_response(tok):
    full = encode_chat(tok, "word " * 50, "short answer")
    cut = encode_chat(tok, "word " * 50, "short answer", max_length=20)
    assert len(cut.input_ids) == 20
    assert cut.input_ids[-full.response_length:] == full.input_ids[-full.response_length:]


def test_collate_left_and_right_padding(tok):
    a = encode_chat(tok, "Hi", "Yes")
    b = encode_chat(tok, "A much longer question about bread and flour?", "No")
    for side in ("left", "right"):
        batch = collate([a, b], pad_id=tok.pad_token_id, padding_side=side)
        width = batch["input_ids"].shape[1]
        assert width == len(b.input_ids)
        row = batch["attention_mask"][0]
        pad = width - len(a.input_ids)
        if side == "left":
            assert row[:pad].sum() == 0 and row[pad:].all()
            assert batch["input_ids"][0, pad:].tolist() == a.input_ids
        else:
            assert row[: len(a.input_ids)].all() and row[len(a.input_ids):].sum() == 0
        # real tokens get positions 0..n-1 whatever the padding side
        real = batch["position_ids"][0][row.bool()]
        assert torch.equal(real, torch.arange(len(a.input_ids)))
        assert (batch["response_mask"] <= batch["attention_mask"]).all()
        assert batch["response_mask"][0].sum() == sum(a.response_mask)
    with pytest.raises(ValueError, match="padding_side"):
        collate([a], pad_id=0, padding_side="middle")


def test_tokenizer_without_template_is_a_clear_error(tok):
    from transformers import PreTrainedTokenizerFast

    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer)
    with pytest.raises(ChatTemplateError, match="no chat template"):
        encode_chat(bare, "hi", "there")
