"""bench/embedding_attack_speed.py without SmolLM2: its default model needs ``crl model prepare smollm2``, but
``--model`` takes any local model folder, so the whole script runs here on a tiny random Llama (1 prompt,
2 steps, 4 new tokens): both paths, the comparison and the JSON it writes."""

import json
import math


def test_reference_and_fast_paths_on_a_tiny_model(run_bench, tmp_path, tiny_model_dir):
    out = tmp_path / "speed.json"
    proc = run_bench("embedding_attack_speed.py", "--model", str(tiny_model_dir), "--prompts", "1", "--steps", "2",
                     "--checkpoints", "1,2", "--max-new-tokens", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["prompts"] == 1 and doc["config"]["steps"] == 2 and doc["config"]["checkpoints"] == [1, 2]
    assert math.isfinite(doc["speedup"]) and doc["speedup"] > 0 and isinstance(doc["same_generations"], bool)
    for path in ("reference", "fast"):
        r = doc[path]
        assert all(math.isfinite(r[k]) and r[k] >= 0 for k in ("wall_s", "cpu_s", "s_per_prompt"))
        assert len(r["generations"]) == 1 and len(r["final_loss"]) == 1
    assert "speed-up" in proc.stdout
