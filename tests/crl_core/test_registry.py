import subprocess
import sys

import pytest

from crl_core.config import ConfigError
from crl_core.registry import Registry


def test_registry_registers_and_suggests():
    reg = Registry("attack")

    @reg.register("prefill")
    def prefill():
        return 1

    assert reg.get("prefill") is prefill and "prefill" in reg and reg.names() == ["prefill"]
    with pytest.raises(ConfigError, match="did you mean 'prefill'"):
        reg.get("prefil")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("prefill")(lambda: 2)


def test_every_registry_fills_itself_on_first_use_and_loads_no_ray():
    # a fresh process: nothing imported but the registry module; each registry imports its own package
    code = ("import sys; from crl_core.registry import ATTACKS, EVAL_PRESETS, JUDGES, METHODS, METRICS, MODELS; "
            "print([len(r.names()) for r in (ATTACKS, EVAL_PRESETS, JUDGES, METHODS, METRICS, MODELS)]); "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    counts = [int(x) for x in out[0].strip("[]").split(",")]
    assert all(n >= 2 for n in counts) and out[1] == "False"


def test_methods_are_the_registered_names_and_their_sections_exist():
    import dataclasses

    from crl_core.registry import METHODS
    from crl_core.training import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, fn in METHODS.items():
        assert fn.method_name == name
        assert fn.section is None or fn.section in fields, (name, fn.section)
        TrainConfig(method=name, eval={"enabled": False}, mining={"enabled": fn.supports_mining})
    with pytest.raises(ConfigError, match=r"unknown method 'crll' \(did you mean 'crl'\?\); known: circuit_breaker"):
        TrainConfig(method="crll")
    with pytest.raises(ConfigError, match="mining is part of the crl method"):
        TrainConfig(method="repbend", mining={"enabled": True}, eval={"enabled": False})


def test_a_new_attack_judge_and_metric_are_usable_by_name_once_registered(monkeypatch, tmp_path):
    """One registration each, nothing else edited: the evaluation accepts them by name and reports the metric."""
    from crl_core.attacks.common import Attack, AttackResult
    from crl_core.evaluation import evaluation_config_for, run_evaluation
    from crl_core.metrics import Metric
    from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama
    from crl_core.registry import ATTACKS, JUDGES, METRICS

    class Shout:
        version, needs_payloads = "shout-v1", False

        @classmethod
        def for_items(cls, rows, payloads=None, **context):
            return [lambda g: g.isupper()] * len(rows)

    def echo(model, tokenizer, items, config=None):
        return [AttackResult(id=it.id, success=it.judge("LOUD" if i % 2 else "quiet"), generation="x")
                for i, it in enumerate(items)]

    ATTACKS.names()  # fill the built-ins first
    monkeypatch.setitem(ATTACKS._items, "echo", Attack("echo", echo, dict, lambda ecfg, v: {}))
    monkeypatch.setitem(JUDGES._items, "shout", Shout)
    monkeypatch.setitem(METRICS._items, "echo_rate", Metric("echo_rate", 1, lambda r: 0.5 if "echo" in r["items"]
                                                                 else None))
    tok = build_tiny_tokenizer("chatml")
    model = tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0)
    cfg = evaluation_config_for("smollm2", {"model": "unused", "attacks": ["echo"], "judge": "shout", "limit": 4,
                                            "max_new_tokens": 2})
    report = run_evaluation(cfg, model=model, tokenizer=tok, log=lambda s: None)
    assert report["attacks"]["echo"]["successes"] == 2 and report["metrics"]["asr_echo"] == 0.5
    assert report["metrics"]["echo_rate"] == 0.5 and report["metric_versions"]["echo_rate"] == 1
    assert report["spec"]["judges"]["asr"] == "shout-v1"
    with pytest.raises(ConfigError, match="unknown judge 'shuot'"):
        evaluation_config_for("smollm2", {"judge": "shuot"})
    with pytest.raises(ConfigError, match="needs the organism's payloads"):
        evaluation_config_for("smollm2", {"judge": "payload"})
    with pytest.raises(ConfigError, match="cannot judge attack success on its own"):
        evaluation_config_for("smollm2", {"judge": "degeneration"})
