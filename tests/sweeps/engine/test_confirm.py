"""The confirmation stage (sweeps/engine/confirm.py): its statistics on hand-computed values, its config
checked before Ray starts, and a real sweep that confirms its top trial and the default on the test split."""

import json
import math

import pytest
from mlflow.tracking import MlflowClient

from crl_core.config import load_config, load_yaml
from sweeps import margin_sweep
from sweeps.engine import SweepConfig, validate_before_launch
from sweeps.engine.confirm import compare, default_point, summarise_seeds
from sweeps.margin_sweep import OBJECTIVES


def _config(path, *overrides) -> SweepConfig:
    return load_config(SweepConfig, None, list(overrides), base=load_yaml(path))


def test_seed_summary_is_the_mean_and_sample_sd_of_metrics_measured_at_every_seed():
    mean, sd = summarise_seeds({0: {"a": 0.5, "b": 1.0, "only0": 3.0}, 1: {"a": 0.7, "b": 1.0}, 2: {"a": 0.9, "b": 1.0}})
    assert set(mean) == {"a", "b"}  # a metric missing at one seed is not averaged over the others
    assert mean["a"] == pytest.approx(0.7) and sd["a"] == pytest.approx(0.2)  # sqrt((0.04 + 0 + 0.04) / 2)
    assert mean["b"] == 1.0 and sd["b"] == 0.0
    assert summarise_seeds({4: {"a": 0.25}}) == ({"a": 0.25}, {"a": 0.0})


def test_pick_vs_default_counts_only_differences_beyond_two_standard_errors():
    pick = {"name": "t1", "mean": {"score": 0.80}, "sd": {"score": 0.06}, "n_seeds": 3}
    default = {"name": "default", "mean": {"score": 0.70}, "sd": {"score": 0.06}, "n_seeds": 3}
    c = compare(pick, default, "score", "max")
    assert c["diff"] == pytest.approx(0.10) and c["se"] == pytest.approx(math.sqrt(2 * 0.0036 / 3))  # 0.049
    assert c["verdict"] == "better than the default beyond evaluation-seed noise"  # 0.10 > 2 * 0.049
    noisy = {**pick, "sd": {"score": 0.12}}  # se = sqrt((0.0144 + 0.0036) / 3) = 0.077: 0.10 < 0.155
    assert compare(noisy, default, "score", "max")["verdict"] == "within evaluation-seed noise"
    assert compare(pick, default, "score", "min")["verdict"] == "worse than the default beyond evaluation-seed noise"
    assert compare(pick, default, "asr", "min") is None  # not measured on both


def test_the_default_point_is_the_base_config_with_confirm_default_point_on_top(sweep_yaml):
    cfg = _config(sweep_yaml(confirm={"default_point": {"triplet.margin_benign": 0.25}}))
    base = validate_before_launch(cfg, OBJECTIVES)
    point = default_point(cfg, base)
    assert set(point) == set(cfg.space().params)
    assert point["triplet.margin_benign"] == 0.25
    # the rest is the smollm2-crl preset with the tiny overrides (start 1), mining off there
    assert point["harmful_layers.start"] == 1 and point["mining.enabled"] is False
    assert point["triplet.margin_harmful"] == load_yaml(cfg.train.preset_path())["triplet"]["margin_harmful"]


def test_the_confirmation_evaluation_is_the_sweeps_on_the_test_split_unless_it_names_a_preset(sweep_yaml):
    cfg = _config(sweep_yaml())
    base_cfg = load_config(SweepConfig, None, [], base=load_yaml(sweep_yaml()))
    from sweeps.engine.space import train_config_for

    tcfg = train_config_for(validate_before_launch(base_cfg, OBJECTIVES), {}, "probe")
    e = cfg.confirm_evaluation_config(tcfg, seed=2, adapter="somewhere")
    assert (e.preset, e.split, e.limit, e.seed, e.adapter) == ("proxy", "test", 4, 2, "somewhere")
    own = _config(sweep_yaml(confirm={"evaluation": {"preset": "organism-strong", "limit": 3}}))
    e = own.confirm_evaluation_config(tcfg, seed=0)
    assert (e.preset, e.split, e.limit) == ("organism-strong", "test", 3) and "embedding:strong" in e.attacks


@pytest.mark.parametrize("confirm, message", [
    ({"evaluation": {"attacks": ["direct"]}}, r"confirm\.evaluation\.attacks: the 'proxy' preset .* runs no attacks"),
    ({"evaluation": {"preset": "smollm2", "attacks": ["nosuch"]}}, r"confirm\.evaluation\.attacks.*nosuch"),
    ({"evaluation": {"preset": "organism-strong"}}, r"confirm\.evaluation\.preset: 'organism-strong' judges the "
                                                    r"organism's payloads"),
    ({"default_point": {"triplet.margin_benig": 0.1}}, r"confirm\.default_point: triplet\.margin_benig not in the "
                                                       r"search space"),
    ({"default_point": {"harmful_layers.start": 7}}, r"confirm\.default_point: .*past the model's depth"),
    ({"seeds": []}, r"confirm\.seeds: empty"),
    ({"seeds": [1, 1]}, r"confirm\.seeds: .*distinct"),
    ({"evaluation": {"adapter": "x"}}, r"confirm\.evaluation\.adapter: set by the confirmation"),
])
def test_a_bad_confirmation_config_fails_before_ray_starts(sweep_yaml, tmp_path, capsys, confirm, message):
    import ray

    path = sweep_yaml(confirm={"top_k": 1, "default": True, **confirm})
    assert margin_sweep.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and __import__("re").search(message, err), err
    assert not (tmp_path / "sweeps" / "tiny").exists() and not ray.is_initialized()


def test_a_sweep_confirms_its_top_trial_and_the_default_and_a_resume_redoes_only_what_is_missing(
        ray_local, sweep_yaml, tmp_path, capsys):
    path = sweep_yaml(confirm={"top_k": 1, "default": True, "seeds": [0, 1, 2]})
    assert margin_sweep.main(["--config", str(path)]) == 0
    out = capsys.readouterr().out
    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    best = parent.data.tags["crl.best_trial_id"]
    m = parent.data.metrics
    for row in (best, "default"):
        assert f"confirm/{row}/score" in m and f"confirm/{row}/score_sd" in m
        assert f"confirm/{row}/benign_accuracy" in m
    folder = tmp_path / "sweeps" / "tiny" / "confirm"
    result = json.loads((folder / "confirm.json").read_text())
    by_name = {r["name"]: r for r in result["rows"]}
    # the logged means are the means of the three seeds' own evaluations (files written by the tasks)
    for row in (best, "default"):
        seeds = [json.loads((folder / row / f"seed{s}.json").read_text()) for s in (0, 1, 2)]
        scores = [OBJECTIVES.add_derived(s["metrics"])["score"] for s in seeds]
        assert m[f"confirm/{row}/score"] == pytest.approx(sum(scores) / 3)
        assert by_name[row]["n_seeds"] == 3
    assert by_name[best]["in_sweep"] == client.get_run(
        next(r for r in client.search_runs([state["experiment_id"]], filter_string=f"tags.`crl.trial_id` = '{best}'"))
        .info.run_id).data.metrics["eval/score"]
    # the default was trained here, with the base config (4 steps), and its adapter is on the parent run
    assert json.loads((folder / "default" / "train_done.json").read_text())["steps"] == 4
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "confirm")}
    assert {"confirm/confirm.json", "confirm/confirm.txt", "confirm/default"} <= arts
    assert "adapter_config.json" in {a.path.rsplit("/", 1)[-1]
                                     for a in client.list_artifacts(parent.info.run_id, "confirm/default/adapter")}
    assert f"sweep pick {best} vs default on score" in out and "test split" in out and "val split" in out
    assert parent.data.tags["crl.confirm_verdict"] == result["comparison"]["verdict"]
    # every child run logs the sweep's objective as eval/objective
    for run in client.search_runs([state["experiment_id"]], filter_string="tags.`crl.role` = 'trial'"):
        assert run.data.metrics["eval/objective"] == run.data.metrics["eval/score"]

    # a confirmation killed half-way: the resume reruns only the missing evaluation
    (folder / best / "seed1.json").unlink()
    kept = (folder / "default" / "seed0.json").stat().st_mtime_ns
    assert margin_sweep.main(["--config", str(path), "--resume"]) == 0
    assert (folder / best / "seed1.json").is_file()
    assert (folder / "default" / "seed0.json").stat().st_mtime_ns == kept
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"


def test_a_failed_confirmation_fails_the_sweep_but_keeps_its_trials(ray_local, sweep_yaml, tmp_path, capsys,
                                                                     monkeypatch):
    path = sweep_yaml(confirm={"top_k": 1, "default": False, "seeds": [0]})
    # the trial's adapter vanishes before it is confirmed (its local copy and the MLflow artifact alike)
    from sweeps.engine import confirm as confirm_mod

    with monkeypatch.context() as patch:
        patch.setattr(confirm_mod, "_trial_adapter", lambda row, folder, uri: str(tmp_path / "no-such-adapter"))
        assert margin_sweep.main(["--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "confirmation failed" in err and "--resume" in err
    state = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FAILED" and "confirmation failed" in parent.data.tags["crl.failure"]
    trials = client.search_runs([state["experiment_id"]], filter_string="tags.`crl.role` = 'trial'")
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    # fixed (the adapter is back): --resume confirms, and the sweep ends FINISHED
    assert margin_sweep.main(["--config", str(path), "--resume"]) == 0
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"
