"""The HarmBench classifier judge is chosen by name; what it needs (a CUDA GPU, a loadable classifier model)
is checked before any model loads, in `crl eval` and before a sweep launches. No GPU here: only the refusals."""

import subprocess
import sys

import pytest

from crl_core.config import ConfigError
from crl_core.evaluation import evaluation_config_for, run_evaluation
from crl_core.judges.classifier_judge import HarmBenchClassifierJudge


def test_the_classifier_model_is_a_folder_with_a_config_or_a_hub_id_cached_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache and the hub is offline"):
        HarmBenchClassifierJudge.check_model("")  # the default cais/HarmBench-Llama-2-13b-cls is not cached here
    with pytest.raises(ConfigError, match="no config.json"):
        HarmBenchClassifierJudge.check_model(str(tmp_path))
    with pytest.raises(ConfigError, match="neither a model folder nor a hub id"):
        HarmBenchClassifierJudge.check_model("not-an-id")
    (tmp_path / "config.json").write_text("{}")
    assert HarmBenchClassifierJudge.check_model(str(tmp_path)) == str(tmp_path)


def test_judge_model_is_validated_with_the_evaluation_config(tmp_path):
    with pytest.raises(ConfigError, match="judge_model: only a classifier judge loads a model"):
        evaluation_config_for("smollm2", {"judge": "compliance", "judge_model": str(tmp_path)})
    with pytest.raises(ConfigError, match="judge_model: .* not a model folder"):
        evaluation_config_for("smollm2", {"judge": "harmbench_classifier", "judge_model": str(tmp_path)})


def test_evaluating_with_the_classifier_on_a_cpu_fails_before_any_model_loads(monkeypatch):
    import torch

    from crl_core.evaluation import runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runner, "_load", lambda cfg: pytest.fail("the target model was loaded first"))
    cfg = evaluation_config_for("smollm2", {"judge": "harmbench_classifier", "attacks": ["direct"]})
    with pytest.raises(ConfigError, match="needs a CUDA GPU; this machine has none"):
        run_evaluation(cfg)


def test_crl_eval_with_the_classifier_on_a_cpu_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "crl_core.cli", "eval", "--preset", "smollm2", "--limit", "2",
                           "judge=harmbench_classifier", "attacks=[direct]"], capture_output=True, text=True,
                          timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "needs a CUDA GPU" in err[0]


def test_a_sweep_judged_by_the_classifier_is_refused_before_launch_without_gpus_or_its_model(tmp_path, monkeypatch):
    import yaml

    from crl_core.config import load_config
    from sweeps.engine import SweepConfig, validate_before_launch
    from sweeps.margin_sweep import OBJECTIVES
    from sweeps.tiny import make_tiny_model, tiny_sweep

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # a cluster to join later: its GPUs are checked on joining
    model = make_tiny_model(tmp_path / "model")
    data = tiny_sweep(model, tmp_path, evaluation={"preset": "smollm2", "judge": "harmbench_classifier",
                                                   "attacks": ["direct"]})
    cfg = load_config(SweepConfig, None, [], base=yaml.safe_load(yaml.safe_dump(data)))
    with pytest.raises(ConfigError, match=r"evaluation\.judge: harmbench_classifier needs a GPU in every trial"):
        validate_before_launch(cfg, OBJECTIVES)
    gpu = load_config(SweepConfig, None, ["resources.gpus_per_worker=1"], base=data)
    with pytest.raises(ConfigError, match=r"evaluation\.judge_model: .*not in the local Hugging Face cache"):
        validate_before_launch(gpu, OBJECTIVES)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "config.json").write_text("{}")
    ok = load_config(SweepConfig, None, ["resources.gpus_per_worker=1", f"evaluation.judge_model={tmp_path / 'cls'}"],
                     base=data)
    validate_before_launch(ok, OBJECTIVES)  # passes here; the cluster's GPUs are checked on joining it
    from sweeps.engine import check_resources

    with pytest.raises(ConfigError, match="needs 1 GPU .* but the Ray cluster has 0"):  # a CPU-only cluster
        check_resources(ok.resources, {"CPU": 64.0, "GPU": 0.0}, "the Ray cluster")
