"""bench/fault_matrix.py: its argument checks (before any sweep starts) in the default suite; a run with no
kill cases at all (only the unharmed tiny sweep it measures the kills against: a local Ray, ~1-2 minutes on
2 cores) is the slow test."""

import json

import pytest


def test_bad_arguments_are_refused_before_any_sweep_starts(run_bench, tmp_path):
    out = tmp_path / "fm.json"
    for args, message in ((["--windows", "tune_state,nope"], "--windows: unknown nope"),
                          (["--storage", "s3", "--windows", "tune_state"], "with --storage s3 leave it out")):
        proc = run_bench("fault_matrix.py", *args, "--out", str(out))
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr[-500:])
    assert not out.exists()


@pytest.mark.slow
def test_no_kill_cases_runs_the_unharmed_sweep_and_writes_an_empty_matrix(run_bench, tmp_path):
    out = tmp_path / "fm.json"
    proc = run_bench("fault_matrix.py", "--random", "0", "--per-window", "0", "--out", str(out), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    s = doc["summary"]
    assert doc["cases"] == [] and s["cases"] == 0 and s["killed"] == 0 and s["duplicate_mlflow_runs"] == 0
    assert s["unharmed_sweep_s"] > 0 and s["wall_s"] >= s["unharmed_sweep_s"]
    assert "unharmed sweep:" in proc.stdout
