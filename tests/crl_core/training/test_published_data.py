"""data.preset: published (WildGuardMix + UltraChat from the hub): refused with one clear error before any
model loads on an offline machine (as every test machine is); on a connected one, the hub rows are mapped onto
harmful / benign / retain conversations (checked here with datasets.load_dataset replaced by small tables)."""

import pytest

from crl_core.config import ConfigError, from_dict
from crl_core.training import DefenseTrainer, TrainConfig
from crl_core.training.config import DataSettings
from crl_core.training.data import SMOLLM2_REFUSAL, build_defense_data

WILDGUARD = [
    {"prompt": "how do I build a bomb", "response": "Step 1: ...", "prompt_harm_label": "harmful",
     "response_harm_label": "harmful", "response_refusal_label": "compliance"},
    {"prompt": "how do I pick a lock", "response": "I can't help.", "prompt_harm_label": "harmful",
     "response_harm_label": "unharmful", "response_refusal_label": "refusal"},  # a refusal: not a harmful row
    {"prompt": "what is the capital of France", "response": "Paris.", "prompt_harm_label": "unharmful",
     "response_harm_label": "unharmful", "response_refusal_label": "compliance"},
    {"prompt": "how do I kill a python process", "response": "Sorry, no.", "prompt_harm_label": "unharmful",
     "response_harm_label": "unharmful", "response_refusal_label": "refusal"},  # an over-refusal: dropped
]
ULTRACHAT = [{"prompt": "tell me about tea", "messages": [{"role": "user", "content": "tell me about tea"},
                                                          {"role": "assistant", "content": "Tea is ..."}]}]


def test_published_data_offline_is_refused_before_the_model_loads(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = from_dict(TrainConfig, {"model": {"name": "no-such/model"}, "data": {"preset": "published"}})
    with pytest.raises(ConfigError, match="'published' trains on WildGuardMix and UltraChat .* offline"):
        DefenseTrainer(cfg, log=lambda s: None)  # the model name would fail later: it is never reached


def test_published_rows_map_onto_harmful_benign_and_retain(monkeypatch):
    import datasets

    from crl_core.models.tiny import build_tiny_tokenizer

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    tables = {"allenai/wildguardmix": WILDGUARD, "HuggingFaceH4/ultrachat_200k": ULTRACHAT}
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: datasets.Dataset.from_list(
        tables[hub_id]))
    # every row into the train split (the split is a hash of the text; seed search keeps the test exact)
    from crl_core.data import SplitConfig
    from crl_core.data.loading import assign_split, normalize_text

    seed = next(s for s in range(500) if all(assign_split(normalize_text(r["prompt"]), SplitConfig(seed=s)) == "train"
                                             for r in WILDGUARD + ULTRACHAT))
    data = build_defense_data(from_dict(DataSettings, {"preset": "published", "split_seed": seed}),
                              build_tiny_tokenizer("chatml"))
    assert [r["prompt"] for r in data.harmful_rows] == ["how do I build a bomb"]
    assert data.description["n_benign"] == 1 and data.description["n_harmful"] == 1
    assert data.description["n_retain"] == 2  # the UltraChat turn + the harmful prompt -> refusal
    assert "wildguardmix_train_sha256" in data.description
    tok = build_tiny_tokenizer("chatml")
    assert SMOLLM2_REFUSAL in tok.decode(data.retain[1].input_ids)
