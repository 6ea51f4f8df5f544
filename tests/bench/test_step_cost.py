"""bench/step_cost.py at its cheapest: the tiny random model, one step, SFT and CRL (each variant in its own
subprocess, as the benchmark runs them); the last line is the JSON the issue's ratios are read from."""

import json
import math


def test_step_cost_prints_the_ratios_to_sft_as_one_json_line(run_bench):
    proc = run_bench("step_cost.py", "--model", "tiny", "--steps", "1", "--variants", "sft,crl")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["model"] == "tiny" and out["steps"] == 1 and set(out["variants"]) == {"sft", "crl"}
    for row in out["variants"].values():
        assert row["steps"] == 1 and math.isfinite(row["mean_s"]) and row["mean_s"] > 0 and row["rss_peak_mb"] > 0
    assert set(out["ratios_to_sft"]) == {"crl"}
    ratio = out["ratios_to_sft"]["crl"]
    assert set(ratio) == {"time", "memory"} and all(math.isfinite(v) and v > 0 for v in ratio.values())


def test_bad_arguments_are_refused_before_any_model_is_built(run_bench):
    for args in (["--steps", "-1"], ["--variants", "sft,nope"]):
        proc = run_bench("step_cost.py", "--model", "tiny", *args)
        assert proc.returncode == 2 and proc.stdout == "", (args, proc.stderr[-500:])
