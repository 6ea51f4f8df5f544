"""bench/objective_validity.py at its cheapest: ``--quick`` (the smoke budget and a cut strong suite), one
sampled adapter, no preset adapters, no noise seeds, 2 prompts per set; run from a scratch folder (the
pre-flight check opens the default ``./mlflow.db``)."""

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_one_sampled_adapter_quick(run_bench, tmp_path):
    out = tmp_path / "out"
    proc = run_bench("objective_validity.py", "--quick", "--sampled", "1", "--presets", "", "--noise-seeds", "",
                     "--limit", "2", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "objective_validity.json").read_text())
    assert doc["quick"] and doc["objective"] == "robust_score" and doc["n_total"] == 1
    assert {"spearman", "ci95", "n_adapters", "eligible", "in_sweep_noise", "diagnostics", "rows"} <= set(doc)
    (row,) = doc["rows"]
    assert row["name"] == "sampled-00" and row["kind"] == "sampled" and row["steps"] == 6  # smoke.yaml's steps
    for part in ("in_sweep", "strong"):
        metrics = row[part]["metrics"]
        assert math.isfinite(metrics["robust_score"]) and math.isfinite(metrics["score"])
    assert doc["strong_evaluation"]["embedding_steps"] == 2 and "Spearman rho" in proc.stdout


def test_noise_without_eligible_adapters_is_none():
    sys.path.insert(0, str(ROOT))
    from bench.objective_validity import noise

    assert noise([], "robust_score") is None  # was an IndexError at the very end of a run
