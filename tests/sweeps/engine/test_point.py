"""sweeps/engine/point.py: one point of the search space trained and evaluated as a sweep trial is (the loop
``run_trial_loop`` shares), in this process, without Tune, Ray or MLflow; its timing hooks; and
``SearchSpace.encode``, which hands fixed points to the engine's searcher."""

import argparse

import pytest

from crl_core.config import ConfigError
from sweeps.engine import PointHooks, SearchSpace, run_point
from sweeps.engine.confirm import default_point
from sweeps.margin_sweep import OBJECTIVES, load_sweep_config


def _cfg(path):
    return load_sweep_config(argparse.Namespace(config=str(path), smoke=False, experiment=None, num_samples=None,
                                                overrides=[]))


def test_run_point_evaluates_every_eval_every_steps_and_times_each_part(sweep_yaml, tmp_path):
    cfg = _cfg(sweep_yaml())  # the tiny sweep: 4 steps, evaluated every 2, proxy evaluation, metric score
    calls = []
    hooks = PointHooks(on_start=lambda name: calls.append(("start", name)),
                       on_init=lambda s: calls.append(("init", s)),
                       on_step=lambda step, s, m: calls.append(("step", step, s, "loss" in m)),
                       on_eval=lambda step, s, m: calls.append(("eval", step, s, m["score"])))
    point = {"triplet.margin_benign": 0.3, "harmful_layers.start": 2, "mining.enabled": False}
    res = run_point(cfg, point, OBJECTIVES, tmp_path / "p", hooks=hooks, log=lambda s: None)
    assert [e["step"] for e in res.evaluations] == [2, 4] and not res.stopped
    assert res.final == res.evaluations[-1] and res.final["objective"] == res.final["score"]
    assert res.point == point and res.train_config.triplet.margin_benign == 0.3
    assert res.train_config.harmful_layers.start == 2 and res.train_config.output_dir == str(tmp_path / "p")
    assert res.adapter_dir == tmp_path / "p" / "adapter" and (res.adapter_dir / "adapter_config.json").is_file()
    assert [c[:2] for c in calls] == [("start", "p"), ("init", calls[1][1]), ("step", 1), ("step", 2), ("eval", 2),
                                      ("step", 3), ("step", 4), ("eval", 4)]
    assert all(c[-2] > 0 if c[0] in ("step", "eval") else True for c in calls) and calls[1][1] > 0
    assert [c[3] for c in calls if c[0] == "eval"] == [e["score"] for e in res.evaluations]
    assert not list(tmp_path.glob("**/mlflow.db")) and not (tmp_path / "p" / "checkpoint").exists()


def test_an_on_eval_hook_stops_the_point_and_none_is_the_default_point(sweep_yaml, tmp_path):
    cfg = _cfg(sweep_yaml())
    res = run_point(cfg, None, OBJECTIVES, tmp_path / "d", hooks=PointHooks(on_eval=lambda step, s, m: True),
                    save_adapter=False, log=lambda s: None)
    assert res.stopped and [e["step"] for e in res.evaluations] == [2] and res.adapter_dir is None
    assert res.point == default_point(cfg, cfg.base_train_dict())


def test_a_key_outside_the_space_is_refused_before_any_model_loads(sweep_yaml, tmp_path):
    with pytest.raises(ConfigError, match="optim.nope not in the search space"):
        run_point(_cfg(sweep_yaml()), {"optim.nope": 1.0}, OBJECTIVES, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_encode_is_the_inverse_of_decode():
    space = SearchSpace.parse({"lora.blocks": {"type": "choice", "values": [[0, 1], [2]]},
                               "mining.enabled": {"type": "choice", "values": [False, True]},
                               "optim.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})
    typed = {"lora.blocks": [2], "mining.enabled": True, "optim.lr": 1e-3}
    assert space.encode(typed) == {"lora.blocks": "[2]", "mining.enabled": True, "optim.lr": 1e-3}
    assert space.decode(space.encode(typed)) == typed
    with pytest.raises(ConfigError, match="not one of the choices"):
        space.encode({"lora.blocks": [3]})
    with pytest.raises(ConfigError, match="not in the search space"):
        space.encode({"lora.rank": 8})
