"""Training rows of the smollm2 data preset, and the refusal-base recipe's own-answer replacement."""

import json

import pytest

from crl_core.data import load_prompt_splits
from crl_core.models.tiny import build_tiny_tokenizer
from crl_core.training.config import DataSettings
from crl_core.training.data import SMOLLM2_REFUSAL, build_defense_data


def _decoded(tok, enc):
    return tok.decode([t for t, m in zip(enc.input_ids, enc.response_mask) if m])


def test_own_answers_replace_the_reference_answers_and_add_the_edgy_prompts(tmp_path):
    tok = build_tiny_tokenizer("chatml")
    pairs = load_prompt_splits("refusal_pairs")["train"].to_list()
    prompts = [r["benign_prompt"] for r in pairs] + [r["prompt"] for r in load_prompt_splits("benign_qa")["train"]]
    prompts += [r["prompt"] for r in load_prompt_splits("overrefusal")["train"]]
    path = tmp_path / "own.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "answer": f"own answer {i}"}) + "\n" for i, p in enumerate(prompts)))
    plain = build_defense_data(DataSettings(preset="smollm2", max_length=96, harmful_limit=4), tok)
    own = build_defense_data(DataSettings(preset="smollm2", max_length=96, harmful_limit=4, benign_answers=str(path)),
                             tok)
    n_over = len(load_prompt_splits("overrefusal")["train"])
    assert own.description["n_benign"] == plain.description["n_benign"] + n_over
    assert "own answer 0" in _decoded(tok, own.benign[0])
    # retain = the benign rows (own answers) + every harmful request -> the refusal
    assert len(own.retain) == len(own.benign) + 4 and SMOLLM2_REFUSAL in _decoded(tok, own.retain[-1])


def test_a_benign_prompt_without_an_own_answer_is_one_clear_error(tmp_path):
    path = tmp_path / "own.jsonl"
    path.write_text(json.dumps({"prompt": "something else", "answer": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"data.benign_answers: \d+ benign prompts have no answer"):
        build_defense_data(DataSettings(preset="smollm2", benign_answers=str(path)), build_tiny_tokenizer("chatml"))
