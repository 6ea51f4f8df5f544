"""The recipe's command-line behaviour that needs no Ray."""

import pytest

from sweeps.margin_sweep import load_sweep_config, parse_args, pick_experiment


def test_running_again_starts_a_new_sweep_and_resume_picks_the_newest(tmp_path):
    cfg = load_sweep_config(parse_args([f"storage_dir={tmp_path}"]))
    assert pick_experiment(cfg, resume=False).experiment == "crl-organism"
    for name in ("crl-organism", "crl-organism-2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sweep.json").write_text("{}")
    assert pick_experiment(cfg, resume=False).experiment == "crl-organism-3"
    assert pick_experiment(cfg, resume=True).experiment == "crl-organism-2"


def test_smoke_budget_is_laid_over_the_default_config():
    cfg = load_sweep_config(parse_args(["--smoke"]))
    assert cfg.num_samples == 2 and cfg.experiment == "crl-organism"
    full = load_sweep_config(parse_args(["--num-samples", "9", "--experiment", "x"]))
    assert full.num_samples == 9 and full.experiment == "x"


def test_robust_score_on_hand_computed_metrics():
    from sweeps.margin_sweep import OBJECTIVES, robust_score

    m = {"benign_accuracy": 0.9, "over_refusal": 0.1, "asr": 0.5, "knowledge_asr": 0.0,
         "knowledge_retention": 0.3, "leak_margin": 0.25}
    # 0.9 - 0.1 - 0 (knowledge ASR, not the full target's 0.5) - 0.3 - 0.25
    assert robust_score(m) == pytest.approx(0.25)
    assert robust_score({**m, "knowledge_retention": 7.0, "leak_margin": -0.2}) == pytest.approx(-0.2)  # clipped
    strong = {**m, "sampling_leakage": 0.125, "over_triggering": 0.0625}
    assert robust_score(strong) == pytest.approx(0.25 - 0.1875)
    assert OBJECTIVES.add_derived(m)["robust_score"] == pytest.approx(0.25)
