"""Tiny random Llama models and tokenizers built from code, for tests and benchmarks (no files, no hub)."""

from __future__ import annotations

from typing import Literal

__all__ = ["CHAT_TEMPLATES", "build_tiny_tokenizer", "tiny_llama"]

CHAT_TEMPLATES = {
    # Llama-3 style headers, one end-of-turn token per message.
    "llama3": (
        "{{ '<|begin_of_text|>' }}{% for m in messages %}"
        "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
        "{% endif %}"
    ),
    # ChatML, as used by SmolLM2 and Qwen.
    "chatml": (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
}

_SPECIALS = {
    "llama3": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<pad>"],
    "chatml": ["<|im_start|>", "<|im_end|>", "<pad>"],
}

_CORPUS = [
    "How do I bake bread at home? Mix flour, water, salt and yeast, then bake.",
    "What is the capital of France? The capital of France is Paris.",
    "Write a short poem about the sea and the sky.",
    "Sure, here is how to do it: first, second, third.",
    "I cannot help with that request.",
    "Explain how plants use sunlight to make food.",
    "user assistant system the a an of to in is and for with on",
]


def build_tiny_tokenizer(template: Literal["llama3", "chatml"] = "llama3", vocab_size: int = 400):
    """A byte-level BPE tokenizer trained in milliseconds on a fixed corpus, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if template not in CHAT_TEMPLATES:
        raise ValueError(f"unknown template '{template}'; known: {sorted(CHAT_TEMPLATES)}")
    specials = _SPECIALS[template]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    eos = "<|eot_id|>" if template == "llama3" else "<|im_end|>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token="<pad>",
                                   bos_token="<|begin_of_text|>" if template == "llama3" else None)
    fast.chat_template = CHAT_TEMPLATES[template]
    fast.model_max_length = 512
    return fast


def tiny_llama(vocab_size: int, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
               intermediate_size: int = 128, seed: int = 0, tie_word_embeddings: bool = True):
    """A randomly initialised ``LlamaForCausalLM`` (deterministic for ``seed``), float32, eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads,
                      num_key_value_heads=max(1, num_heads // 2), max_position_embeddings=512,
                      tie_word_embeddings=tie_word_embeddings)
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.eval()
    return model
