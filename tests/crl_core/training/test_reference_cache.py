"""The reference-state cache (docs/method.md, "Reference-state cache"): exact, and keyed by every part that
determines a cached state. Each key-part test shows both sides: a trainer that shares a cache filled under
another base / rows / layers / dtype computes the losses of an uncached run, and the same run with that part
dropped from the key reads stale states and does not."""

import dataclasses

import pytest
import torch

import crl_core.training.trainer as trainer_mod
from crl_core.config import from_dict
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama
from crl_core.training import DefenseTrainer, TrainConfig
from crl_core.training.reference_cache import CacheKey, ReferenceCache, row_fingerprint, weights_fingerprint

MINING = {"enabled": True, "reinit_every": 5, "init_steps": 3, "gate_loss": 100.0, "probability": 1.0,
          "block_min": 0, "block_max": 2}


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _model(seed: int = 0, dtype=torch.float64):
    tok = build_tiny_tokenizer("chatml")
    return tiny_llama(len(tok), hidden_size=32, num_layers=5, seed=seed).to(dtype), tok


def _run(model, tok, cache: ReferenceCache | None, steps: int = 20, **extra) -> list[float]:
    data = {"method": "crl", "steps": steps, "reference_cache_mb": 0 if cache is None else 64,
            "model": {"name": "tiny"}, "harmful_layers": {"indices": [1, 2]}, "benign_layers": "target",
            "lora": {"init_b_std": 1e-2},
            "data": {"preset": "smollm2", "batch_benign": 4, "batch_harmful": 4, "batch_retain": 4,
                     "max_length": 48, "harmful_limit": 12},
            "eval": {"enabled": False}, "log_every": 100, "output_dir": "/tmp/crl-test-unused"}
    for k, v in extra.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    tr = DefenseTrainer(from_dict(TrainConfig, data), model=model, tokenizer=tok, log=lambda m: None,
                        reference_cache=cache)
    losses = [h["loss"] for h in tr.fit()]
    assert (tr.ref_cache is None) == (cache is None)
    return losses


@pytest.mark.parametrize("method,extra", [("crl", {}), ("crl", {"mining": MINING}), ("circuit_breaker", {}),
                                          ("repbend", {})], ids=["crl", "crl_mining", "circuit_breaker", "repbend"])
def test_cached_reference_states_give_the_losses_of_the_frozen_pass(float64, method, extra):
    cache = ReferenceCache(64)
    cached = _run(*_model(), cache, method=method, **extra)
    plain = _run(*_model(), None, method=method, **extra)
    assert cache.hits > 0 and cache.misses > 0  # filled, then reused (12 harmful rows, 4 per step)
    assert len(set(round(x, 6) for x in plain)) > 5
    assert cached == pytest.approx(plain, rel=1e-6, abs=1e-9)


def test_the_cache_is_not_used_where_the_method_did_not_declare_what_it_reads():
    # a cache budget is set, yet sft (no frozen pass) gets no cache: _run asserts trainer.ref_cache is None
    assert _run(*_model(dtype=torch.float32), None, steps=1, method="sft", reference_cache_mb=64)
    assert _run(*_model(dtype=torch.float32), None, steps=1, reference_cache_mb=0)  # switched off


def _drop(monkeypatch, part: str, value):
    """Make the trainer build keys without ``part`` (a constant in its place)."""
    monkeypatch.setattr(trainer_mod, "CacheKey", lambda *a: dataclasses.replace(CacheKey(*a), **{part: value}))


# (part dropped from the key, how the second run differs from the run that filled the cache)
CASES = {
    "base": ({}, {"seed": 1}),                                          # another base model
    "row": ({}, {"data": {"split_seed": 3}}),                           # other training rows
    "layer": ({}, {"harmful_layers": {"indices": [2, 3]}}),             # another layer window
    "dtype": ({"dtype": torch.float32}, {}),                            # the same weights, run in float64
}


@pytest.mark.parametrize("part", sorted(CASES))
def test_every_key_part_keeps_stale_states_out(float64, monkeypatch, part):
    fill_changes, run_changes = CASES[part]
    run_changes = dict(run_changes)
    seed = run_changes.pop("seed", 0)

    def second_model():
        model, tok = _model(seed, dtype=torch.float32)  # float32 weights: exact in float64 too
        return model.double(), tok

    def filled() -> ReferenceCache:
        cache = ReferenceCache(64)
        dtype = fill_changes.get("dtype", torch.float64)
        model, tok = _model(0, dtype=torch.float32)
        torch.set_default_dtype(dtype)  # the fill runs in its own dtype (the fixture restores the default)
        try:
            _run(model.to(dtype), tok, cache, steps=8)
        finally:
            torch.set_default_dtype(torch.float64)
        return cache

    plain = _run(*second_model(), None, steps=8, **run_changes)
    shared = _run(*second_model(), filled(), steps=8, **run_changes)
    assert shared == pytest.approx(plain, rel=1e-12, abs=1e-14)  # the key kept the other run's states out
    _drop(monkeypatch, part, {"base": "same", "row": "same", "layer": 1, "dtype": "same"}[part])
    try:
        stale = _run(*second_model(), filled(), steps=8, **run_changes)
    except RuntimeError as exc:  # float32 states reach a float64 matmul: stale states, caught by torch
        assert "dtype" in str(exc) and part == "dtype"
        return
    assert stale != pytest.approx(plain, rel=1e-12, abs=1e-14)  # without the part, stale states leak in


def test_fingerprints_follow_values_not_storage():
    a, _ = _model(0, dtype=torch.float32)
    assert weights_fingerprint(a) == weights_fingerprint(a.double())  # same values: the dtype is its own part
    assert weights_fingerprint(a) != weights_fingerprint(_model(1, dtype=torch.float32)[0])
    assert row_fingerprint([1, 2, 3]) != row_fingerprint([1, 2, 3, 4]) == row_fingerprint((1, 2, 3, 4))


def test_the_store_is_bounded_least_recently_used_first():
    cache = ReferenceCache(max_mb=3 * 4 * 1024 / 2**20)  # room for three [1024] float32 entries
    keys = [CacheKey("b", str(i), 1, "float32") for i in range(4)]
    for k in keys[:3]:
        cache.put(k, torch.zeros(1024))
    cache.get(keys[0])  # used: the oldest unused is keys[1]
    cache.put(keys[3], torch.zeros(1024))
    assert [k in cache for k in keys] == [True, False, True, True] and cache.evicted == 1
    assert cache.stats()["mb"] == pytest.approx(3 * 4 * 1024 / 2**20)
