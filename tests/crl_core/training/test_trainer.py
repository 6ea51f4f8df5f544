import json
import math

import pytest
import torch

from crl_core.config import ConfigError, from_dict
from crl_core.training import DefenseTrainer, TrainConfig, TrainingDivergedError, preset_names, preset_path

# Loss trajectories (first 20 steps) of tiny_setup() in float64, pinned; regenerate only on purpose
# (golden_trajectory() below computes them). Why float64 and not the float32 the trainer uses: float32
# kernels round differently per CPU capability, and the optimiser turns that into visibly different
# trajectories (circuit breakers diverged from step 2 between ATEN_CPU_CAPABILITY=default/avx2/avx512,
# 29% apart by step 20). In float64 the three capabilities agreed to 4e-15 relative on every method
# (measured on one AVX-512 machine with each capability forced), so GOLDEN_REL = 1e-8 leaves seven orders
# of magnitude for other CPUs and still catches any change to the maths.
GOLDEN_REL = 1e-8
GOLDEN = {
    "crl": [1.06675482191, 1.05143194525, 1.07918480058, 1.04106512898, 1.01512031855, 1.04664064719, 0.998246452361, 1.00580765688, 0.948877794516, 0.934598123742, 0.881560006985, 0.900035032219, 0.82565209191, 0.779146447291, 0.721074533211, 0.733518721729, 0.663807963469, 0.671768502533, 0.567031062637, 0.771272815969],
    "crl_mining": [0.965462133663, 0.903684360605, 0.872438393124, 0.801260396841, 0.756370378306, 0.997978638691, 0.929566719437, 0.943017829083, 0.87683974161, 0.873067034499, 0.782585101715, 0.830299717882, 0.733777739596, 0.682185498734, 0.629504812678, 0.580555338579, 0.576985333748, 0.569406099359, 0.503888796096, 0.520675353206],
    "circuit_breaker": [9.98609881459, 9.6968535523, 9.29900629426, 8.78017311239, 8.22256510351, 7.69462126452, 6.84303286879, 5.93906273512, 5.10176051989, 4.10560459374, 4.32886533231, 4.10690396406, 3.99786587293, 4.00049754267, 3.80661819302, 3.56679167251, 4.14539787005, 3.78201458015, 3.30158762893, 3.05906374707],
    "repbend": [0.00539686013301, 0.0279056853312, 0.0467648504043, 0.0295514489679, 0.0377120607269, 0.0462446740727, 0.0401827837916, 0.035966410947, 0.0474743638916, 0.046590496004, 0.0468257359853, 0.0330681063022, 0.0322830522741, 0.0341554058108, 0.0292482641234, 0.0277000802969, 0.0491676169044, 0.0492947219928, 0.032748703461, 0.0320825476272],
    "sft": [5.99206201526, 5.96617456254, 5.98702186679, 5.98914560323, 5.96312553035, 5.95957133379, 5.94912112551, 5.96810615274, 5.91981264356, 5.9312743879, 5.93126000454, 5.95251418201, 5.9281494134, 5.87492117072, 5.88789157501, 5.94285879353, 5.92556189191, 5.91997890177, 5.88930180739, 5.86504615879],
}

MINING = {"enabled": True, "reinit_every": 5, "init_steps": 3, "gate_loss": 100.0, "probability": 1.0}
# Circuit breakers from a zero-initialised LoRA start where adapted == frozen states: ReLU(cos) is at its
# maximum with a gradient that is exactly zero in exact arithmetic, so what moves the adapter first is
# rounding noise (in float32 that noise is above Adam's eps and sets the direction; in float64 it is
# amplified more slowly but still set the trajectory apart from step 8). The pinned RR run therefore
# starts from a small seeded lora_B, where the gradient is the loss's own, not the noise's.
RR_LORA_B_STD = 1e-2


def golden_trajectory(key: str, tiny_setup) -> list[float]:
    """The first 20 losses of method ``key`` on tiny_setup(), computed in float64."""
    method = key.replace("_mining", "")
    extra = {"mining": MINING} if key.endswith("_mining") else {}
    previous = torch.get_default_dtype()
    # built in float64 too: a float32 build computes buffers such as the rotary frequencies with
    # capability-dependent rounding (1e-7 apart between avx2 and avx512 when built in float32 and widened)
    torch.set_default_dtype(torch.float64)
    try:
        model, tok, cfg = tiny_setup(method=method, steps=20, **extra)
        trainer = DefenseTrainer(cfg, model=model.double(), tokenizer=tok, log=lambda m: None)
        if method == "circuit_breaker":
            gen = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for name, p in trainer.model.named_parameters():
                    if "lora_B" in name:
                        p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * RR_LORA_B_STD)
        return [h["loss"] for h in trainer.fit()]
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_golden_loss_trajectory(key, tiny_setup):
    """Pin the first 20 losses per method: a refactor that changes the maths shows up here."""
    assert golden_trajectory(key, tiny_setup) == pytest.approx(GOLDEN[key], rel=GOLDEN_REL, abs=1e-12)


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_golden_trajectories_hold_under_every_cpu_capability(capability):
    """The same pins with torch's kernels forced to another instruction set: what a CI machine of another CPU
    would compute. A capability above what this CPU has is skipped: forcing it dies with SIGILL (seen on an
    AVX2-only machine), so only the capabilities this CPU can run are checked here."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    order = ["default", "avx2", "avx512"]
    best = {"no avx": "default"}.get(torch.backends.cpu.get_cpu_capability().lower(), torch.backends.cpu.get_cpu_capability().lower())
    if best in order and order.index(capability) > order.index(best):
        pytest.skip(f"this CPU's best kernel capability is {best}; forcing {capability} would die with SIGILL")

    here = Path(__file__).resolve().parent
    code = ("import json, sys; sys.path[:0] = [sys.argv[1]]; import torch; torch.set_num_threads(1); "
            "from conftest import _tiny_setup; from test_trainer import golden_trajectory; "
            "print(json.dumps({k: golden_trajectory(k, _tiny_setup) for k in ('circuit_breaker', 'crl_mining')}))")
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    out = subprocess.run([sys.executable, "-c", code, str(here)], env=env, capture_output=True, text=True,
                         timeout=600, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for key, losses in got.items():
        assert losses == pytest.approx(GOLDEN[key], rel=GOLDEN_REL, abs=1e-12), key


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
    ({"eval": {"overrides": {"split": "train"}}}, "split"),
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


@pytest.mark.parametrize("method", ["crl", "circuit_breaker"])
def test_gradient_checkpointing_changes_memory_not_the_maths(method, tiny_setup):
    # the same five losses (float64) with the blocks' activations recomputed in the backward pass
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        runs = []
        for gc in (False, True):
            model, tok, cfg = tiny_setup(method=method, steps=5, gradient_checkpointing=gc)
            trainer = DefenseTrainer(cfg, model=model.double(), tokenizer=tok, log=lambda m: None)
            assert trainer.model.base_model.model.is_gradient_checkpointing is gc
            runs.append([h["loss"] for h in trainer.fit()])
    finally:
        torch.set_default_dtype(previous)
    assert runs[1] == pytest.approx(runs[0], rel=1e-9)


def test_bf16_training_runs_on_cpu(tiny_setup):
    # bfloat16 base weights, forward and backward on the CPU: finite losses that move; peft keeps the LoRA
    # weights in float32 (its autocast_adapter_dtype default), the usual mixed setup
    model, tok, cfg = tiny_setup(steps=4, model={"name": "tiny", "dtype": "bfloat16"})
    trainer = DefenseTrainer(cfg, model=model.to(torch.bfloat16), tokenizer=tok, log=lambda m: None)
    losses = [h["loss"] for h in trainer.fit()]
    assert all(math.isfinite(x) for x in losses) and len(set(losses)) > 1
    dtypes = {n: p.dtype for n, p in trainer.model.named_parameters()}
    assert {d for n, d in dtypes.items() if "lora_" not in n} == {torch.bfloat16}
    assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.float32}
