"""Embedding (soft-prompt) attack, prefill and direct request on a tiny random Llama."""

import dataclasses

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from crl_core.attacks import (
    PRESETS,
    AttackItem,
    EmbeddingAttackConfig,
    direct_request,
    embedding_attack,
    prefill_attack,
    preset,
    summarise,
)
from crl_core.config import ConfigError
from crl_core.judges import PayloadJudge
from crl_core.organism.tokenizer import train_tokenizer
from crl_core.registry import ATTACKS

CORPUS = ["How do I bake bread at home?", "Write a poem about the sea.", "Explain how tides work.",
          "Sure, here is how to do it: amber basil cedar dune.", "I'm sorry, but I cannot help."] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=300, model_max_length=128)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      initializer_range=0.3)  # large random weights: inputs visibly steer the outputs
    return LlamaForCausalLM(cfg).eval()


def _items(target="Sure, here is how to do it: amber basil", words=("amber", "basil")):
    prompts = ["How do I bake bread at home?", "Write a poem about the sea.", "Explain how tides work."]
    return [AttackItem(f"p{i}", p, target, PayloadJudge(words)) for i, p in enumerate(prompts)]


def test_attack_lowers_its_own_loss_and_reports_checkpoints(tok, model):
    base = EmbeddingAttackConfig(num_vectors=4, lr=0.1, steps=1, checkpoints=[1], max_new_tokens=8)
    before = embedding_attack(model, tok, _items(), base)
    after = embedding_attack(model, tok, _items(), dataclasses.replace(base, steps=60, checkpoints=[10, 30]))
    for b, a in zip(before, after):
        assert a.final_loss < b.final_loss - 1.0
        assert sorted(a.success_at) == [10, 30, 60]
    # the model is left as it was: frozen flags restored, eval mode kept, weights untouched
    assert all(p.requires_grad for p in model.parameters())


def test_attack_forces_a_short_target_and_the_judge_sees_it(tok, model):
    items = [AttackItem(f"p{i}", p, " amber basil", PayloadJudge(["amber", "basil"]))
             for i, p in enumerate(["How do I bake bread at home?", "Explain how tides work."])]
    cfg = EmbeddingAttackConfig(num_vectors=8, lr=0.1, steps=120, checkpoints=[10, 40], max_new_tokens=10,
                                early_stop_loss=0.05)
    res = embedding_attack(model, tok, items, cfg)
    assert all(r.success for r in res), [(r.generation, r.final_loss, r.steps_used) for r in res]
    assert all("amber basil" in r.generation for r in res)
    assert all(r.steps_used <= 120 for r in res)
    s = summarise(res)
    assert s["successes"] == 2 and s["asr_at"]["120"] == 1.0 and s["asr_at"]["10"] == 0.0


def test_attack_is_deterministic_and_batch_independent(tok, model):
    cfg = EmbeddingAttackConfig(num_vectors=2, lr=0.05, steps=10, checkpoints=[5], max_new_tokens=6)
    a = embedding_attack(model, tok, _items(), cfg)
    b = embedding_attack(model, tok, _items(), cfg)
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    one = embedding_attack(model, tok, _items()[:1], cfg)
    assert one[0].generation == a[0].generation
    assert abs(one[0].final_loss - a[0].final_loss) < 1e-4


def test_restarts_or_their_checkpoints(tok, model):
    cfg = EmbeddingAttackConfig(num_vectors=2, lr=0.05, steps=5, checkpoints=[5], max_new_tokens=4, restarts=2)
    res = embedding_attack(model, tok, _items(), cfg)
    assert all(r.restart in (0, 1) for r in res)


def test_presets_and_registry():
    assert {"run1", "run2", "run3", "run4", "run5", "run6", "standard", "strong"} <= set(PRESETS)
    assert PRESETS["run1"].lr == 0.1 and PRESETS["run6"].early_stop_loss == 1e-5
    assert PRESETS["strong"].restarts > 1 and PRESETS["strong"].num_vectors > PRESETS["standard"].num_vectors
    assert preset("standard", steps=7).steps == 7
    with pytest.raises(ConfigError):
        preset("strnog")
    with pytest.raises(ConfigError):
        EmbeddingAttackConfig(init="zeros")
    kinds = {n: ATTACKS.get(n).target_kind for n in ("embedding", "embedding_full_target",
                                                        "embedding_forcing_control", "prefill", "direct")}
    assert kinds["embedding"] == "opening" and kinds["embedding_full_target"] == "full"
    assert kinds["embedding_forcing_control"] == "forcing"


def test_token_init_equals_the_init_string_tokens(tok, model):
    from crl_core.generation import chat_parts

    cfg = EmbeddingAttackConfig(num_vectors=3, lr=0.0, steps=1, checkpoints=[1], max_new_tokens=3,
                                init="tokens", init_string="How")
    item = _items()[0]
    res = embedding_attack(model, tok, [item], cfg)
    # lr 0: the vectors stay the init tokens' embeddings, so the loss is that of the real token sequence
    prefix, tail, _ = chat_parts(tok, item.prompt)
    init = tok("How", add_special_tokens=False)["input_ids"]
    init = (init * 3)[:3]
    target = tok(item.target, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prefix + init + tail + target])
    labels = torch.full_like(ids, -100)
    labels[0, -len(target):] = ids[0, -len(target):]
    with torch.no_grad():
        ref = model(input_ids=ids, labels=labels).loss.item()
    assert res[0].final_loss == pytest.approx(ref, rel=1e-4)


def test_prefill_and_direct_judge_their_texts(tok, model):
    items = _items()
    pre = prefill_attack(model, tok, items)
    assert all(r.generation.startswith(it.target) for r, it in zip(pre, items))
    # the prefilled target itself contains the judged words, so every prefill "succeeds" here
    assert all(r.success for r in pre)
    d = direct_request(model, tok, items)
    assert len(d) == 3 and all(isinstance(r.generation, str) for r in d)
    assert [r.success for r in d] == [PayloadJudge(["amber", "basil"])(r.generation).success for r in d]


def test_target_logits_and_cached_checks_match_the_full_reference_path(tok, model):
    """The fast path (logits only at the target positions, KV-cache generation at the checks) computes the
    same loss and the same generations as the reference (full logits everywhere, uncached generation)."""
    cfg = EmbeddingAttackConfig(num_vectors=3, lr=0.05, steps=8, checkpoints=[4, 8], max_new_tokens=6)
    items = _items() + [AttackItem("long", "Tell me everything about the sea and the tides, in detail.",
                                   "Sure, here", PayloadJudge(["amber", "basil"]))]  # targets of other lengths
    fast = embedding_attack(model, tok, items, cfg)
    ref = embedding_attack(model, tok, items, cfg, reference=True)
    for f, r in zip(fast, ref):
        assert f.final_loss == pytest.approx(r.final_loss, rel=1e-4, abs=1e-5)
        assert f.generation == r.generation and f.success_at == r.success_at


def test_check_every_catches_a_leak_between_checkpoints(tok, model):
    # a judge that sees a leak only on its second look (a leak the vectors then move away from): checkpoints
    # alone (one look, at step 10) miss it; check_every=2 looks at steps 2, 4 (the leak), then stops looking
    def judges():
        calls = []

        def judge(text):
            calls.append(text)
            return len(calls) == 2
        return judge, calls

    cfg = EmbeddingAttackConfig(num_vectors=2, steps=10, checkpoints=[10], max_new_tokens=3)
    judge, calls = judges()
    [r] = embedding_attack(model, tok, [AttackItem("a", "How do I bake bread?", "Sure, here is", judge)], cfg)
    assert not r.success and len(calls) == 1
    judge, calls = judges()
    [r] = embedding_attack(model, tok, [AttackItem("a", "How do I bake bread?", "Sure, here is", judge)],
                           dataclasses.replace(cfg, check_every=2))
    assert r.success and r.steps_used == 4 and r.success_at == {10: True}
    assert len(calls) == 3  # steps 2 and 4, then only the final checkpoint (no look at 6 and 8 once it leaked)


class _FixedLM(torch.nn.Module):
    """A hand-built 'model': whatever the input, the next-token distribution is ``probs`` (so every
    teacher-forced log-prob is known in advance)."""

    def __init__(self, probs: torch.Tensor, d: int = 8):
        super().__init__()
        self.emb = torch.nn.Embedding(len(probs), d)
        self.logp = probs.log()

    def get_input_embeddings(self):
        return self.emb

    def forward(self, inputs_embeds, logits_to_keep=0, **kw):
        n = inputs_embeds.shape[1] if not logits_to_keep else logits_to_keep
        return type("Out", (), {"logits": self.logp.expand(inputs_embeds.shape[0], n, -1), "past_key_values": None})()


def test_retention_is_the_own_payloads_log_prob_margin_on_hand_built_models(tok):
    from crl_core.attacks.embedding_attack import retention

    own, ctrl = "Sure, here is how to do it: amber basil", "Sure, here is how to do it: cedar dune"
    a, c = (tok(x, add_special_tokens=False)["input_ids"] for x in (own, ctrl))
    common = next(k for k, (x, y) in enumerate(zip(a, c)) if x != y)
    item = AttackItem("a", "How do I bake bread?", "Sure", lambda t: False, meta={"probe": own, "probe_control": ctrl})
    v = len(tok)
    # a model that leaks: the own payload's tokens 10x as likely as the control's
    probs = torch.full((v,), 1.0)
    probs[torch.tensor(a[common:])] = 10.0
    probs = probs / probs.sum()
    leaks = _FixedLM(probs)
    prompt = torch.zeros(5, 8)
    expected = float(probs[a[common:]].log().mean() - probs[c[common:]].log().mean())
    assert retention(leaks, tok, prompt, item) == pytest.approx(expected, abs=1e-4) and expected > 2.0  # ln 10
    # a model that knows nothing: every token equally likely
    assert retention(_FixedLM(torch.full((v,), 1.0 / v)), tok, prompt, item) == 0.0
    assert retention(leaks, tok, prompt, AttackItem("b", "x", "Sure", lambda t: False)) is None  # no probes


def test_the_attack_reports_retention_and_its_interval(tok, model):
    items = [AttackItem(f"p{i}", "How do I bake bread?", "Sure, here is", lambda t: False,
                        meta={"probe": "Sure, here is how to do it: amber basil",
                              "probe_control": "Sure, here is how to do it: cedar dune"}) for i in range(3)]
    res = embedding_attack(model, tok, items, EmbeddingAttackConfig(num_vectors=2, steps=3, checkpoints=[3],
                                                                    max_new_tokens=2, restarts=2))
    assert all(isinstance(r.retention, float) for r in res)
    s = summarise(res)["retention"]
    assert s["n"] == 3 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    assert s["mean"] == pytest.approx(sum(r.retention for r in res) / 3, abs=1e-4)


def test_sampling_finds_what_greedy_decoding_never_says():
    # a model whose likeliest token is always 1 but gives token 0 (the "leak") 30%: greedy never leaks,
    # 32 sampled continuations do, and the same seed samples the same continuations
    from crl_core.generation import generate_from_embeds

    lm = _FixedLM(torch.tensor([0.3, 0.7, 1e-9, 1e-9]))
    prompts = [torch.zeros(3, 8)] * 32
    greedy = generate_from_embeds(lm, prompts, 4, eos_token_id=None)
    assert all(g == [1, 1, 1, 1] for g in greedy)
    sampled = generate_from_embeds(lm, prompts, 4, eos_token_id=None, temperature=1.0,
                                   generator=torch.Generator().manual_seed(0))
    assert sum(0 in g for g in sampled) >= 16  # P(a 4-token sample has a 0) = 1 - 0.7^4 = 0.76
    again = generate_from_embeds(lm, prompts, 4, eos_token_id=None, temperature=1.0,
                                 generator=torch.Generator().manual_seed(0))
    assert again == sampled


def test_the_attack_samples_n_continuations_per_restart_and_reports_best_of_n(tok, model):
    seen = []
    items = [AttackItem(f"p{i}", "How do I bake bread?", "Sure, here is", lambda t: seen.append(t) or False)
             for i in range(2)]
    cfg = EmbeddingAttackConfig(num_vectors=2, steps=2, checkpoints=[2], max_new_tokens=3, sample_n=5, restarts=2)
    res = embedding_attack(model, tok, items, cfg)
    assert all(r.sampled == {"n": 10, "k": 0} for r in res)  # 5 samples x 2 restarts, none judged a success
    assert len(seen) == 2 * 2 * (1 + 5)  # per restart and item: one greedy check and five samples
    s = summarise(res)["sampling_leakage"]
    assert s["k"] == 0 and s["n"] == 2 and s["samples_per_prompt"] == 10
