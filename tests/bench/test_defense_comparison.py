"""bench/defense_comparison.py at its cheapest: the undefended organism and CRL trained for 2 steps
(``--steps``), the direct request only, 2 prompts per set. The strong suite (``--suite strong``: minutes per
adapter) is checked for its argument errors only."""

import json
import math


def test_two_methods_two_steps_direct_request_only(run_bench, tmp_path):
    proc = run_bench("defense_comparison.py", "--methods", "undefended", "crl", "--attacks", "direct", "--limit", "2",
                     "--steps", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"undefended", "crl"}
    for per_seed in results.values():
        report = per_seed["0"]
        assert set(report["attacks"]) == {"direct"} and report["attacks"]["direct"]["n"] == 2
        for v in (report["attacks"]["direct"]["asr"], report["benign_accuracy"], report["over_refusal"]):
            assert math.isfinite(v) and 0 <= v <= 1
    assert results["undefended"]["0"]["training"] is None
    md = (tmp_path / "results.md").read_text()
    assert "| metric | undefended | crl |" in md and "| direct ASR |" in md and md in proc.stdout


def test_strong_suite_refuses_an_unknown_method_before_training(run_bench, tmp_path):
    proc = run_bench("defense_comparison.py", "--suite", "strong", "--methods", "crl", "nope", "--out", str(tmp_path))
    assert proc.returncode == 1 and "unknown method(s) ['nope']" in proc.stderr
    assert not (tmp_path / "strong").exists()
    proc = run_bench("defense_comparison.py", "--steps", "-1", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--steps" in proc.stderr
