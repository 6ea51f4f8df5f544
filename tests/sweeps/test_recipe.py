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


def test_the_organism_smoke_sweep_runs_its_confirmation_stage(ray_local, tmp_path, capsys):
    """`python sweeps/margin_sweep.py --smoke` end to end: two trials, then both confirmed with the default
    on the strong suite's attacks (test split) at three evaluation seeds."""
    import json

    from mlflow.tracking import MlflowClient

    from sweeps import margin_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert margin_sweep.main(["--smoke", f"storage_dir={tmp_path / 's'}", f"tracking.uri={uri}",
                              f"tracking.artifact_root={tmp_path / 'mlruns'}"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "s" / "crl-organism" / "confirm"
    result = json.loads((folder / "confirm.json").read_text())
    assert len(result["rows"]) == 3 and result["rows"][-1]["name"] == "default"
    assert all(r["n_seeds"] == 3 for r in result["rows"]) and len(list(folder.glob("*/seed*.json"))) == 9
    assert "embedding:strong" in result["evaluation"] and "test split" in result["evaluation"]
    parent = MlflowClient(uri).get_run(json.loads((folder.parent / "sweep.json").read_text())["parent_run_id"])
    assert parent.info.status == "FINISHED"
    for row in result["rows"]:
        assert parent.data.metrics[f"confirm/{row['name']}/knowledge_retention"] == pytest.approx(
            row["mean"]["knowledge_retention"])
        assert f"confirm/{row['name']}/leak_margin_sd" in parent.data.metrics
    assert "sweep pick" in out and "vs default on robust_score" in out  # the default sweep's objective


def test_an_empty_sweep_yaml_says_so(tmp_path, capsys):
    from sweeps import margin_sweep

    empty = tmp_path / "empty.yaml"
    empty.write_text("\n# nothing here\n")
    assert margin_sweep.main(["--config", str(empty)]) == 2
    assert f"{empty}: the file is empty" in capsys.readouterr().err
