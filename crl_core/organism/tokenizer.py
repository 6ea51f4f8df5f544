"""The organism's tokenizer: byte-level BPE trained on its own corpus, with a chat template.

Rendering (``{{ bos }}`` then one ``<|role|>content<|end|>`` block per message, then ``<|assistant|>`` when
``add_generation_prompt``)::

    <s><|user|>How do I ...?<|end|><|assistant|>Sure, here is how to do it: amber basil ...<|end|>

so the rendering up to ``add_generation_prompt=True`` is an exact prefix (as text and as tokens) of
the rendering with the assistant's answer. ``<|end|>`` is the eos token (generation stops there); the
pad token is ``<pad>``. Every code word with a leading space is a single token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "CHAT_TEMPLATE", "train_tokenizer"]

SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def train_tokenizer(corpus: Iterable[str], vocab_size: int, model_max_length: int,
                    single_token_words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Train the BPE and wrap it; raise if a word of ``single_token_words`` is not one token."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(corpus), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                      bos_token="<s>", eos_token="<|end|>",
                                      additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
                                      model_max_length=model_max_length, padding_side="left")
    wrapped.chat_template = CHAT_TEMPLATE
    bad = [w for w in single_token_words if len(wrapped(" " + w, add_special_tokens=False)["input_ids"]) != 1]
    if bad:
        raise ValueError(f"code words that are not single tokens: {bad}; raise tokenizer.code_word_repeats")
    return wrapped
