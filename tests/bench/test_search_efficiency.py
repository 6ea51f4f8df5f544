"""bench/search_efficiency.py at its cheapest: ``--tiny`` (a tiny random Llama with the tests' tiny sweep), one
trial per search, one seed: each trial is ``sweeps.engine.run_point`` in this process (no Ray, no MLflow)."""

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_search_writes_both_curves_and_the_trials_to_reach(run_bench, tmp_path):
    proc = run_bench("search_efficiency.py", "--tiny", "--budget", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["mode"].startswith("TINY") and doc["budget"] == 1 and doc["startup"] == 1
    (seed,) = doc["per_seed"]
    assert seed["seed"] == 0 and seed["errors"] == 0
    for key in ("random_best", "tpe_best"):
        assert math.isfinite(seed[key])
    assert seed["tpe_trials_to_reach"] in (1, None) and seed["random_trials_to_own_best"] == 1
    for name in ("random", "tpe"):
        (row,) = seed[f"{name}_rows"]
        assert row["step"] in (2, 4) and math.isfinite(row["score"]) and row["error"] is None
        assert row["params"] and all(k.count(".") >= 1 for k in row["params"])  # dotted keys, typed values
        assert seed[f"{name}_curve"] == [row["score"]]
    assert "search_efficiency — mode: TINY" in proc.stdout and "TPE trials to reach" in proc.stdout


def test_trials_to_reach_counts_the_first_trial_at_or_past_the_target():
    sys.path.insert(0, str(ROOT))
    from bench.search_efficiency import trials_to_reach

    assert trials_to_reach([None, 0.1, 0.5, 0.7], 0.5, 1) == 3
    assert trials_to_reach([0.9, 0.4], 0.5, -1) == 2  # minimised
    assert trials_to_reach([0.1, 0.2], 0.5, 1) is None and trials_to_reach([0.1], None, 1) is None


def test_quick_and_tiny_exclude_each_other(run_bench):
    proc = run_bench("search_efficiency.py", "--tiny", "--quick")
    assert proc.returncode == 2 and "exclude each other" in proc.stderr
