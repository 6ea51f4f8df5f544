import json
import math

import pytest
import torch

from crl_core.config import ConfigError, from_dict
from crl_core.training import DefenseTrainer, TrainConfig, TrainingDivergedError, preset_names, preset_path

# Loss trajectories (first 20 steps) pinned from a run of tiny_setup(); regenerate only on purpose.
GOLDEN = {
    "crl": [1.0563, 1.03823, 1.07627, 1.0401, 0.98652, 1.00295, 0.97243, 0.99387, 0.91479, 0.86542, 0.89917, 0.85334, 0.75636, 0.64548, 0.66197, 0.64252, 0.71373, 0.62659, 0.47814, 0.55747],
    "crl_mining": [0.95362, 0.90853, 0.91172, 0.84828, 0.76612, 0.96291, 0.93595, 0.94615, 0.84642, 0.79676, 0.90094, 0.83874, 0.75681, 0.63163, 0.65251, 0.61839, 0.62133, 0.61633, 0.49364, 0.53986],
    "circuit_breaker": [10.0, 9.74978, 9.48251, 9.19013, 8.81928, 8.43453, 8.02916, 7.44259, 6.70858, 5.51188, 5.23116, 4.39871, 3.78947, 3.14194, 2.99674, 3.05346, 2.94826, 2.70099, 2.1414, 2.34096],
    "repbend": [0.00335, 0.02982, 0.06989, 0.04366, 0.0479, 0.09011, 0.04606, 0.06094, 0.04372, 0.0301, 0.05295, 0.03757, 0.03366, 0.02325, 0.02841, 0.04143, 0.04377, 0.0341, 0.03333, 0.04744],
    "sft": [5.95775, 5.95171, 5.98116, 5.95357, 5.96315, 5.9, 5.94461, 5.94834, 5.87482, 5.92993, 5.93927, 5.96858, 5.8875, 5.87352, 5.86258, 5.90979, 5.93539, 5.9078, 5.86234, 5.84824],
}

MINING = {"enabled": True, "reinit_every": 5, "init_steps": 3, "gate_loss": 100.0, "probability": 1.0}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_golden_loss_trajectory(key, tiny_setup):
    """Pin the first 20 losses per method: a refactor that changes the maths shows up here."""
    method = key.replace("_mining", "")
    extra = {"mining": MINING} if key.endswith("_mining") else {}
    model, tok, cfg = tiny_setup(method=method, steps=20, **extra)
    hist = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None).fit()
    assert [h["loss"] for h in hist] == pytest.approx(GOLDEN[key], rel=2e-4, abs=2e-5)


def test_mining_replaces_harmful_states_when_the_gate_is_open(tiny_setup):
    model, tok, cfg = tiny_setup(steps=4, mining=MINING)
    tr = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None)
    hist = tr.fit()
    assert all(h["mined"] == 1.0 for h in hist) and tr.miner.reinits == 1
    assert tr.miner.attack_steps_total == 3 + 4  # init steps + one per training step
    closed = tiny_setup(steps=3, mining={**MINING, "gate_loss": 0.0})
    tr2 = DefenseTrainer(closed[2], model=closed[0], tokenizer=closed[1], log=lambda m: None)
    assert all(h["mined"] == 0.0 for h in tr2.fit())


def test_adapter_disabled_outputs_equal_the_base_model(tiny_setup):
    model, tok, cfg = tiny_setup(steps=3)
    ids = torch.tensor([tok("hello there, how are you")["input_ids"]])
    with torch.no_grad():
        base = [h.clone() for h in model(ids, output_hidden_states=True).hidden_states]
    tr = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None)
    tr.fit()
    tr.model.eval()
    with torch.no_grad():
        with tr.model.disable_adapter():
            off = tr.model(ids, output_hidden_states=True).hidden_states
        on = tr.model(ids, output_hidden_states=True).hidden_states
    assert all(torch.equal(a, b) for a, b in zip(base, off))
    assert not torch.allclose(on[-1], off[-1])  # the adapter did learn something


@pytest.mark.parametrize("mining", [False, True])
def test_resume_from_checkpoint_equals_an_uninterrupted_run(tmp_path, mining, tiny_setup):
    extra = {"mining": MINING} if mining else {}
    model, tok, cfg = tiny_setup(steps=6, **extra, lora={"dropout": 0.1})
    full = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None)
    full_hist = full.fit()

    model2, tok2, cfg2 = tiny_setup(steps=6, **extra, lora={"dropout": 0.1})
    first = DefenseTrainer(cfg2, model=model2, tokenizer=tok2, log=lambda m: None)
    while first.step < 3:
        first.history.append({**first.train_step(), "step": first.step})
    ckpt = first.save_checkpoint(tmp_path / "ckpt")
    model3, tok3, cfg3 = tiny_setup(steps=6, **extra, lora={"dropout": 0.1})
    resumed = DefenseTrainer(cfg3, model=model3, tokenizer=tok3, log=lambda m: None)
    hist = resumed.fit(resume_from=ckpt)
    assert [h["loss"] for h in hist] == [h["loss"] for h in full_hist]
    a = {k: v for k, v in full.model.named_parameters() if "lora" in k}
    b = {k: v for k, v in resumed.model.named_parameters() if "lora" in k}
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_from_another_config_is_refused(tmp_path, tiny_setup):
    model, tok, cfg = tiny_setup(steps=2)
    tr = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None)
    tr.fit()
    ckpt = tr.save_checkpoint(tmp_path / "c")
    model2, tok2, cfg2 = tiny_setup(steps=3)
    with pytest.raises(ConfigError, match="another config"):
        DefenseTrainer(cfg2, model=model2, tokenizer=tok2, log=lambda m: None).load_checkpoint(ckpt)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, tiny_setup):
    model, tok, cfg = tiny_setup(steps=6)
    tr = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None)
    tr.train_step()
    ckpt = tr.save_checkpoint(tmp_path / "last")
    before = (ckpt / "adapter" / "adapter_model.safetensors").read_bytes()
    good = tr.method
    tr.method = lambda inp: (good(inp)[0] * float("nan"), {})
    with pytest.raises(TrainingDivergedError, match="non-finite loss at step 1"):
        tr.train_step()
    assert (ckpt / "adapter" / "adapter_model.safetensors").read_bytes() == before
    assert json.loads((ckpt / "adapter" / "crl_adapter.json").read_text())["base_model"] == "tiny"


def test_saved_adapter_loads_with_plain_peft(tmp_path, tiny_setup):
    from peft import PeftModel

    from crl_core.models.adapters import save_adapter
    from crl_core.models.tiny import tiny_llama

    model, tok, cfg = tiny_setup(steps=3)
    tr = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None)
    tr.fit()
    save_adapter(tr.model, tmp_path / "adapter", "tiny")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    fresh = PeftModel.from_pretrained(tiny_llama(len(tok), hidden_size=32, num_layers=3, seed=0), tmp_path / "adapter")
    ids = torch.tensor([tok("a question")["input_ids"]])
    tr.model.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(ids).logits, tr.model(ids).logits, atol=1e-6)


@pytest.mark.parametrize("overrides,message", [
    ({"harmful_layers": {"indices": [1, 9]}}, "past the model's depth"),
    ({"harmful_layers": {"indices": None, "start": 3, "width": 4}}, "past the model's depth"),
    ({"lora": {"blocks": [0, 5]}}, "lora.blocks"),
    ({"mining": {**MINING, "block_max": 7}}, "mining.block_max"),
])
def test_impossible_layers_are_rejected_before_any_compute(overrides, message, tiny_setup):
    model, tok, cfg = tiny_setup(**overrides)
    with pytest.raises((ConfigError, ValueError), match=message):
        DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None)


@pytest.mark.parametrize("data,message", [
    ({"method": "crll"}, "did you mean 'crl'"),
    ({"method": "circuit_breaker", "mining": {"enabled": True}}, "part of the crl method"),
    ({"steps": 0}, "steps"),
    ({"optim": {"lr": -1.0}}, "optim.lr"),
    ({"triplet": {"harmful_positive_distance": "cosin"}}, "cosine"),
    ({"mining": {"block_min": 2, "block_max": 2}}, "block_max"),
    ({"positions": "responses"}, "response"),
    ({"harmful_layers": {"indices": [2, 2]}}, "duplicate"),
    ({"data": {"preset": "llama"}}, "preset"),
    ({"lora": {"rank": 0}}, "lora.rank"),
    ({"retain": {"kl_temperature": 0.0}}, "kl_temperature"),
    ({"eval": {"split": "train"}}, "split"),
])
def test_train_config_validation(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, data)


def test_every_preset_validates():
    from crl_core.config import load_config

    names = preset_names()
    assert {"organism-crl", "organism-crl-mining", "organism-rr", "organism-repbend", "smollm2-crl"} <= set(names)
    for name in names:
        cfg = load_config(TrainConfig, preset_path(name))
        assert cfg.steps > 0 and not math.isnan(cfg.optim.lr)
    with pytest.raises(ConfigError, match="did you mean 'organism-crl'"):
        preset_path("organism-crll")
