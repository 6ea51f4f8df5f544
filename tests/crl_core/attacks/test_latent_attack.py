import pytest
import torch

from crl_core.attacks.common import AttackItem
from crl_core.attacks.latent_attack import LatentAttackConfig, _row_ce, latent_attack, target_batch
from crl_core.config import ConfigError
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama
from crl_core.perturbation import LayerPerturbation, attach_perturbation


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer("chatml")
    return tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0), tok


def _items(target="Sure"):
    return [AttackItem(id=f"i{k}", prompt=p, target=target,
                       judge=lambda text: "sure" in text.lower())
            for k, p in enumerate(["How do I bake bread?", "Write a poem about the sea."])]


def test_latent_attack_lowers_its_own_loss(tiny):
    model, tok = tiny
    items = _items()
    enc = target_batch(tok, items)
    with torch.no_grad():
        before = _row_ce(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits,
                         enc["labels"])
    res = latent_attack(model, tok, items, LatentAttackConfig(block=0, steps=30, lr=0.05, checkpoints=[10, 30],
                                                              max_new_tokens=8))
    after = torch.tensor([r.final_loss for r in res])
    # a random tiny model has nearly flat logits, so the CE cannot go far below log(vocab); the
    # attack must still lower it clearly and flip the greedy answer to the target
    assert (after < before - 0.2).all(), (before, after)
    assert all(r.success and r.generation.startswith("Sure") for r in res)
    clean = latent_attack(model, tok, items, LatentAttackConfig(block=0, steps=1, lr=0.0, checkpoints=[1],
                                                                max_new_tokens=8))
    assert not any(r.success for r in clean)  # without optimisation the model does not say it
    assert all(set(r.success_at) == {10, 30} for r in res)
    # the model's own weights are untouched and trainable again afterwards
    assert all(p.requires_grad for p in model.parameters())


def test_latent_attack_rejects_a_block_past_the_depth(tiny):
    model, tok = tiny
    with pytest.raises(ConfigError, match="past the model's depth"):
        latent_attack(model, tok, _items(), LatentAttackConfig(block=5, steps=1))


def test_perturbation_edits_exactly_the_chosen_hidden_state(tiny):
    model, tok = tiny
    ids = torch.tensor([tok("hello there")["input_ids"]])
    clean = model(ids, output_hidden_states=True).hidden_states
    pert = LayerPerturbation(32, "additive", rows=1)
    with torch.no_grad():
        pert.delta.fill_(0.5)
    with attach_perturbation(model, 0, pert):
        hit = model(ids, output_hidden_states=True).hidden_states
    assert torch.allclose(hit[0], clean[0]) and torch.allclose(hit[1], clean[1] + 0.5, atol=1e-5)
    assert not torch.allclose(hit[2], clean[2])
    with pytest.raises(ValueError, match="out of range"), attach_perturbation(model, 9, pert):
        pass
    affine = LayerPerturbation(32, "affine")
    with attach_perturbation(model, 1, affine):  # zero-initialised affine map is the identity
        same = model(ids, output_hidden_states=True).hidden_states
    assert torch.allclose(same[2], clean[2], atol=1e-6)


def test_projection_bounds_the_norm():
    pert = LayerPerturbation(8, "additive", rows=2, max_norm=1.0)
    with torch.no_grad():
        pert.delta.fill_(3.0)
    pert.project_()
    assert torch.allclose(pert.delta.norm(dim=-1), torch.ones(2, 1))


def test_config_validation():
    with pytest.raises(ConfigError, match="steps"):
        LatentAttackConfig(steps=0)
    with pytest.raises(ConfigError, match="checkpoints"):
        LatentAttackConfig(checkpoints=[0])
