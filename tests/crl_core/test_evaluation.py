"""The evaluation harness end to end on a tiny random model (smollm2 preset: refusal/degeneration judged)."""

import json

import pytest

from crl_core.config import ConfigError
from crl_core.evaluation import evaluation_config_for, format_markdown, run_evaluation
from crl_core.models import ModelLoadError
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tok = build_tiny_tokenizer("chatml")
    tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _cfg(tiny_dir, **kw):
    base = {"model": str(tiny_dir), "limit": 3, "max_new_tokens": 6, "embedding_steps": 2,
            "latent": {"block": 0, "steps": 2, "checkpoints": [1, 2]}}
    base.update(kw)
    return evaluation_config_for("smollm2", base)


def test_report_schema(tiny_dir):
    cfg = _cfg(tiny_dir, attacks=["direct", "prefill", "embedding", "latent"])
    report = run_evaluation(cfg, log=lambda m: None)
    for name in ("direct", "prefill", "embedding", "latent"):
        a = report["attacks"][name]
        assert a["n"] == 3 and 0 <= a["successes"] <= 3 and a["asr"] == a["successes"] / 3
        assert len(a["ci95"]) == 2 and len(report["items"][name]) == 3
    assert report["attacks"]["embedding"]["asr_at"].keys() == {"2"}
    for key in ("benign_accuracy", "over_refusal"):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["degenerate_rate"]) == {"harmful", "benign"}
    spec = report["spec"]
    assert spec["prompt_sets"]["harmful"]["n"] == 3 and len(spec["prompt_sets"]["harmful"]["split_sha256"]) == 64
    assert spec["generation"] == {"decoding": "greedy", "max_new_tokens": 6}
    assert spec["attacks"]["embedding"]["config"]["steps"] == 2
    assert spec["judges"]["asr"].startswith("compliance-v1")
    assert report["schema"] == {"name": "crl-eval-report", "version": 2} and spec["config"]["version"] == 2
    m = report["metrics"]  # the registered metrics, from the per-item results, agree with the summaries
    assert m["benign_accuracy"] == report["benign_accuracy"] and m["over_refusal"] == report["over_refusal"]
    assert m["asr"] == max(a["asr"] for a in report["attacks"].values())
    assert m["degenerate_rate_harmful"] == report["degenerate_rate"]["harmful"]
    assert set(report["metric_versions"]) >= {"asr", "benign_accuracy", "over_refusal", "degenerate_rate"}
    assert len(report["capability_items"]["benign"]) == 3
    json.dumps(report)  # serialisable
    assert "| direct |" in format_markdown(report)


@pytest.mark.parametrize("overrides,message", [
    ({"attacks": ["embeding"]}, "did you mean 'embedding'"),
    ({"attacks": ["prefill:strong"]}, "only embedding attacks take a preset"),
    ({"attacks": ["embedding:huge"]}, "unknown embedding preset"),
    ({"latent": {"steps": 0}}, "latent.steps"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"attacks": ["embedding_forcing_control"]}, "forcing control needs"),
])
def test_bad_evaluation_configs(tiny_dir, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tiny_dir, **overrides)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown evaluation preset 'gpt4'.*known: organism, organism-strong, organism-sweep"):
        evaluation_config_for("gpt4")


def test_proxy_preset_scores_log_probabilities_without_attacks(tiny_dir):
    cfg = evaluation_config_for("proxy", {"model": str(tiny_dir), "limit": 3, "max_length": 48})
    report = run_evaluation(cfg, log=lambda m: None)
    assert set(report["metrics"]) == {"asr", "asr_proxy", "knowledge_asr", "benign_accuracy", "over_refusal", "harmful_refusal_margin"}
    margins = [r["margin"] for r in report["items"]["proxy"]]
    assert report["metrics"]["harmful_refusal_margin"] == pytest.approx(-sum(margins) / 3)
    assert report["metrics"]["asr"] == sum(m > 0 for m in margins) / 3
    with pytest.raises(ConfigError, match="runs no attacks"):
        evaluation_config_for("proxy", {"attacks": ["direct"]})


def test_adapter_made_for_another_base_model_is_refused(tiny_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    from crl_core.models.adapters import save_adapter

    tok = build_tiny_tokenizer("chatml")
    other = get_peft_model(tiny_llama(len(tok), hidden_size=48, num_layers=2, seed=1),
                           LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    save_adapter(other, tmp_path / "other", "other-tiny")
    with pytest.raises(ModelLoadError, match="another base model"):
        run_evaluation(_cfg(tiny_dir, adapter=str(tmp_path / "other"), attacks=["direct"]), log=lambda m: None)
    # same check without our metadata file: peft's shape error becomes the same clear message
    (tmp_path / "other" / "crl_adapter.json").unlink()
    with pytest.raises(ModelLoadError, match="does not fit this base model"):
        run_evaluation(_cfg(tiny_dir, adapter=str(tmp_path / "other"), attacks=["direct"]), log=lambda m: None)
    with pytest.raises(ModelLoadError, match="adapter folder not found"):
        run_evaluation(_cfg(tiny_dir, adapter=str(tmp_path / "missing"), attacks=["direct"]), log=lambda m: None)


def test_over_triggering_answers_perturbed_benign_questions(tiny_dir):
    report = run_evaluation(_cfg(tiny_dir, attacks=["direct"], over_triggering=True, statements=False),
                            log=lambda m: None)
    perturbed = report["capability_items"]["perturbed"]
    assert set(perturbed) == {"filler", "soft_vectors"}
    rates = []
    for rows in perturbed.values():
        assert len(rows) == 3 and all(isinstance(r["broken"], bool) and "generation" in r for r in rows)
        rates.append(sum(r["broken"] for r in rows) / 3)
    assert report["metrics"]["over_triggering"] == pytest.approx(max(rates))
    assert "perturbed" not in run_evaluation(_cfg(tiny_dir, attacks=["direct"], statements=False),
                                             log=lambda m: None)["capability_items"]
