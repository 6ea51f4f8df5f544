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
