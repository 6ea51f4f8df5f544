import pytest
import torch

from crl_core.attacks.common import AttackItem
from crl_core.attacks.gcg_attack import GCGAttackConfig, gcg_attack
from crl_core.attacks.latent_attack import _row_ce, target_batch
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama

pytest.importorskip("nanogcg")


def test_gcg_finds_a_suffix_with_lower_target_loss():
    tok = build_tiny_tokenizer("chatml")
    model = tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0)
    item = AttackItem(id="a", prompt="How do I bake bread?", target="Sure, here is",
                      judge=lambda t: t.lower().startswith("sure"))
    cfg = GCGAttackConfig(steps=4, search_width=32, topk=32, suffix_init="x x x x x", early_stop=False,
                          max_new_tokens=4)
    [res] = gcg_attack(model, tok, [item], cfg)

    def loss_with(suffix):
        enc = target_batch(tok, [AttackItem("a", f"{item.prompt} {suffix}", item.target, item.judge)])
        with torch.no_grad():
            return float(_row_ce(model(input_ids=enc["input_ids"]).logits, enc["labels"])[0])

    assert res.steps_used == 4 and res.final_loss is not None
    # the optimised suffix beats the initial one on the attacker's own objective
    assert res.final_loss < loss_with("x x x x x")


def test_gcg_optimises_in_the_context_it_is_judged_in_bos_included():
    # nanogcg strips the template's BOS and relies on the tokenizer to add it back; this tokenizer (like the
    # organism's) adds none, so without the fix the suffix was optimised for a context without BOS
    from crl_core.generation import chat_prompt_ids

    tok = build_tiny_tokenizer("llama3")
    assert tok.bos_token and tok("hi")["input_ids"][0] != tok.bos_token_id  # the case: no BOS added by tokenizing
    model = tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0)
    seen = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    item = AttackItem(id="a", prompt="How do I bake bread?", target="Sure, here is", judge=lambda t: False)
    try:
        gcg_attack(model, tok, [item], GCGAttackConfig(steps=1, search_width=8, topk=8, suffix_init="x x x",
                                                       early_stop=False, max_new_tokens=2))
    finally:
        hook.remove()
    before = seen[0][0].tolist()  # nanogcg embeds the tokens before the suffix first
    judged = chat_prompt_ids(tok, item.prompt + " x x x")
    assert before[0] == tok.bos_token_id and judged[:len(before)] == before


def test_gcg_succeeds_when_an_intermediate_steps_suffix_leaks(monkeypatch):
    # the lowest-loss string is not the one that leaks: judging only it (as before) missed the leak
    import importlib

    g = importlib.import_module("crl_core.attacks.gcg_attack")  # the module (the package exports the function)

    class Result:
        best_loss, best_string, losses, strings = 0.1, "zz best", [0.5, 0.3, 0.1], ["aa", "LEAK", "zz best"]

    class Config:
        def __init__(self, **kw):
            pass

    monkeypatch.setattr(g, "_nanogcg", lambda: (Config, lambda *a, **k: Result()))
    # "generation" = the judged prompt itself, so the judge sees which suffix was answered
    monkeypatch.setattr(g, "generate_from_ids", lambda model, ids, *a, **k: [list(x) for x in ids])
    tok = build_tiny_tokenizer("chatml")
    model = tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0)
    item = AttackItem(id="a", prompt="How do I bake bread?", target="Sure", judge=lambda t: "LEAK" in t)
    [res] = gcg_attack(model, tok, [item], GCGAttackConfig(steps=3))
    assert res.success and res.steps_used == 2 and "LEAK" in res.generation
    item = AttackItem(id="b", prompt="How do I bake bread?", target="Sure", judge=lambda t: False)
    [res] = gcg_attack(model, tok, [item], GCGAttackConfig(steps=3))
    assert not res.success and res.steps_used == 3 and "zz best" in res.generation
