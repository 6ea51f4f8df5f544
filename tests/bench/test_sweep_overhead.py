"""bench/sweep_overhead.py at its cheapest: ``--tiny`` (a tiny random Llama with the tests' tiny sweep) on the
``bare`` path only (``sweeps.engine.run_point``, no Ray), one point. The Ray paths (``tune``, ``train``) start a
local Ray and take minutes on 2 cores: they are the slow test below."""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMED = ("wall_s", "init_s", "train_s", "eval_s", "other_s")


def _check_trials(res: dict, n: int) -> None:
    trials = res["trials"]
    assert len(trials) == n and not any(t.get("missing") or t.get("error") for t in trials), trials
    for t in trials:
        assert t["steps"] == 4 and t["evals"] == 2  # the tiny sweep: 4 steps, evaluated every 2
        assert all(math.isfinite(t[k]) and t[k] >= 0 for k in TIMED if k != "other_s"), t
        assert math.isfinite(t["other_s"]) and t["train_s"] + t["eval_s"] + t["init_s"] <= t["wall_s"] + 1e-6
        assert math.isfinite(t["score"])
    assert sorted(t["point"] for t in trials) == list(range(n))  # every fixed point ran, once


def test_bare_path_on_the_tiny_sweep(run_bench, tmp_path):
    proc = run_bench("sweep_overhead.py", "--tiny", "--paths", "bare", "--num-trials", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    meta = doc["meta"]
    assert meta["tiny"] and meta["num_trials"] == 1 and meta["steps"] == 4 and len(meta["points"]) == 1
    assert set(doc["results"]) == {"bare"}
    bare = doc["results"]["bare"]
    assert not bare.get("failed") and math.isfinite(bare["imports_s"]) and bare["tree_cpu_s"] > 0
    _check_trials(bare, 1)
    assert "sweep_overhead — mode: TINY" in proc.stdout and "\nbare " in proc.stdout


def test_fixed_points_are_typed_values_of_the_active_dimensions(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.sweep_overhead import load_cfg, sample_points

    cfg = load_cfg(str(ROOT / "sweeps" / "configs" / "organism.yaml"), False, [])
    space, base = cfg.space(), cfg.base_train_dict()
    points = sample_points(cfg, 6, 0)
    assert points == sample_points(cfg, 6, 0)  # a fixed seed: the same points on every path
    for p in points:
        assert list(p) == [k for k in space.params if k in p]  # in sampling order
        for key, spec in space.params.items():
            assert (key in p) == space.active(key, p, base)  # mining knobs only where mining is on
            if key in p and spec.type == "choice":
                assert p[key] in spec.values
            elif key in p:
                assert spec.low * (1 - 1e-9) <= p[key] <= spec.high * (1 + 1e-9)


def test_bad_arguments_are_refused(run_bench):
    for args in (["--paths", "bare,nope"], ["--tiny", "--quick"]):
        proc = run_bench("sweep_overhead.py", *args)
        assert proc.returncode == 2 and "sweep_overhead:" in proc.stderr, (args, proc.stderr[-500:])


@pytest.mark.slow
def test_ray_paths_run_the_engine_tuner_on_the_fixed_points(run_bench, tmp_path):
    """The engine's own segment Tuner (new_tuner with points= and early_stop=False) in-trial and Train-backed."""
    proc = run_bench("sweep_overhead.py", "--tiny", "--paths", "tune,train", "--num-trials", "2", "--out",
                     str(tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    for path in ("tune", "train"):
        res = doc["results"][path]
        assert not res.get("failed") and res["errors"] == [] and res["fit_wall_s"] > 0
        _check_trials(res, 2)
        assert all(t["sched_s"] >= 0 and t["end_s"] >= 0 for t in res["trials"])
