"""The recipe's command-line behaviour that needs no Ray."""

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
