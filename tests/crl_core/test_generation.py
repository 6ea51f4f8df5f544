"""Batched greedy generation: ids and embeds (left padding + KV cache) agree with each other, with unbatched
runs, and with the uncached reference that re-runs the whole sequence every step."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from crl_core.generation import (
    chat_parts,
    chat_prompt_ids,
    generate_chat,
    generate_from_embeds,
    generate_from_ids,
)
from crl_core.organism.tokenizer import CHAT_TEMPLATE, train_tokenizer

CORPUS = ["How do I bake bread at home?", "What is the capital of France? Paris",
          "Sure, here is how to do it: amber basil cedar.", "I'm sorry, but I cannot help with that request.",
          "Tell me a story about a fox and a crow in the forest."] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=300, model_max_length=128)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()


PROMPTS = ["How do I bake bread?", "What is the capital of France?", "Tell me a story about a fox, a crow, "
           "a wolf and a bear in the dark forest at night.", "Hi"]


def test_chat_template_generation_prompt_is_a_prefix(tok):
    msgs = [{"role": "user", "content": "How do I bake bread?"}]
    full = msgs + [{"role": "assistant", "content": "Sure, here is how to do it: amber basil."}]
    gen_text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    full_text = tok.apply_chat_template(full, tokenize=False)
    assert full_text.startswith(gen_text) and full_text != gen_text
    gen_ids = tok(gen_text, add_special_tokens=False)["input_ids"]
    full_ids = tok(full_text, add_special_tokens=False)["input_ids"]
    assert full_ids[:len(gen_ids)] == gen_ids
    prefix, tail, pre = chat_parts(tok, "How do I bake bread?", "Sure,")
    assert prefix + tail == gen_ids and pre == tok("Sure,", add_special_tokens=False)["input_ids"]
    assert tok.decode(tail) == "<|end|><|assistant|>"
    assert tok.chat_template == CHAT_TEMPLATE


def test_ids_and_embeds_generation_agree_and_match_unbatched(tok, model):
    ids = [chat_prompt_ids(tok, p) for p in PROMPTS]
    batched = generate_from_ids(model, ids, 12, eos_token_id=None, pad_token_id=tok.pad_token_id)
    single = [generate_from_ids(model, [x], 12, eos_token_id=None)[0] for x in ids]
    emb = model.get_input_embeddings()
    with torch.no_grad():
        embeds = [emb(torch.tensor(x)) for x in ids]
    from_embeds = generate_from_embeds(model, embeds, 12, eos_token_id=None)
    assert all(len(g) == 12 for g in batched)
    assert batched == single == from_embeds
    # a second call is identical (deterministic) and the batch size does not matter
    assert generate_from_ids(model, ids, 12, None, tok.pad_token_id, batch_size=3) == batched
    assert generate_from_embeds(model, embeds, 12, None, batch_size=1) == from_embeds


def test_cached_embeds_generation_equals_the_uncached_reference_token_for_token(tok, model):
    """Soft prompts (random vectors, not token embeddings) of different lengths, a trained-looking model:
    the KV-cache path gives exactly the tokens of re-running the whole sequence at every step."""
    torch.manual_seed(1)
    emb = model.get_input_embeddings()
    with torch.no_grad():
        embeds = [torch.cat([emb(torch.tensor(chat_prompt_ids(tok, p))), torch.randn(n, 32) * 0.5])
                  for p, n in zip(PROMPTS, (4, 1, 7, 16))]
    cached = generate_from_embeds(model, embeds, 16, eos_token_id=None)
    reference = generate_from_embeds(model, embeds, 16, eos_token_id=None, use_cache=False)
    assert cached == reference and all(len(g) == 16 for g in cached)
    eos = reference[2][5]
    assert generate_from_embeds(model, embeds, 16, eos) == generate_from_embeds(model, embeds, 16, eos,
                                                                                 use_cache=False)


def test_generation_stops_at_eos_and_excludes_it(tok, model):
    ids = [chat_prompt_ids(tok, p) for p in PROMPTS]
    free = generate_from_ids(model, ids, 10, eos_token_id=None)
    eos = free[0][3]  # pretend the 4th greedy token is the eos
    stopped = generate_from_ids(model, ids, 10, eos_token_id=eos)
    assert stopped[0] == free[0][:3]
    for full, cut in zip(free, stopped):
        assert cut == (full[:full.index(eos)] if eos in full else full)
    with torch.no_grad():
        embeds = [model.get_input_embeddings()(torch.tensor(x)) for x in ids]
    assert generate_from_embeds(model, embeds, 10, eos_token_id=eos) == stopped


def test_generate_chat_returns_text_and_restores_training_mode(tok, model):
    model.train()
    out = generate_chat(model, tok, PROMPTS[:2], max_new_tokens=5)
    assert model.training
    model.eval()
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


def test_a_peft_wrapped_model_generates_the_same_with_the_current_cache_argument(tok, model):
    import copy
    import warnings

    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj"], lora_dropout=0.0))
    ids = [chat_prompt_ids(tok, p) for p in PROMPTS]
    with warnings.catch_warnings():
        # the peft wrapper's forward takes **kwargs: the cache argument must be named after the base model's
        warnings.filterwarnings("error", message=".*past_key_values.*deprecated")
        out = generate_from_ids(wrapped, ids, 8, eos_token_id=None, pad_token_id=tok.pad_token_id)
    # LoRA's B starts at zero, so the wrapped model's greedy continuations are the base model's
    assert out == generate_from_ids(model, ids, 8, eos_token_id=None, pad_token_id=tok.pad_token_id)
