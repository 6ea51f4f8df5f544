"""``crl train`` end to end on a tiny model: adapter, resolved config and the evaluation report of the adapter,
the evaluation resolved from the data preset's evaluation preset plus ``eval.overrides``."""

import json

from crl_core.config import load_config
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama
from crl_core.training import TrainConfig, preset_path, train


def test_train_writes_the_adapter_and_its_evaluation_report(tmp_path):
    folder = tmp_path / "tiny"
    tok = build_tiny_tokenizer("chatml")
    tiny_llama(len(tok), hidden_size=32, num_layers=3, seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = load_config(TrainConfig, preset_path("smollm2-crl"), [
        f"model.name={folder}", "steps=2", "harmful_layers.indices=[1,2]", "lora.rank=2",
        "data.batch_benign=2", "data.batch_harmful=2", "data.batch_retain=2", "data.max_length=48",
        "data.harmful_limit=8", "eval.overrides.limit=2", "eval.overrides.attacks=[direct,prefill]",
        "eval.overrides.max_new_tokens=3", f"output_dir={tmp_path / 'out'}",
        # the preset's outcome judge scores coherence with the real SmolLM2, which a fresh CI machine lacks
        "eval.overrides.judge=compliance"])
    ecfg = cfg.evaluation_config()
    assert (ecfg.preset, ecfg.model, ecfg.split, ecfg.limit) == ("smollm2", str(folder), "test", 2)
    train(cfg, log=lambda s: None)
    out = tmp_path / "out"
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "resolved_config.yaml").is_file()
    report = json.loads((out / "report.json").read_text())
    assert set(report["attacks"]) == {"direct", "prefill"} and report["attacks"]["direct"]["n"] == 2
    assert report["schema"]["version"] == 2 and report["spec"]["adapter"]["method"] == "crl"
    assert report["metrics"]["asr"] == max(report["metrics"]["asr_direct"], report["metrics"]["asr_prefill"])
    assert report["training"]["steps"] == 2
    assert report["statements"]["n"] == 150 and report["metrics"]["statement_accuracy"] == report["statements"]["accuracy"]
