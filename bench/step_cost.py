"""Step cost of CRL vs CRL+mining vs plain LoRA-SFT on the same model and batches.

    python bench/step_cost.py [--model organism|smollm2|tiny] [--repeats 15] [--threads 1]

Each variant runs in its own subprocess (so peak RSS is its own) with the same seeds, hence the same
sequence of batches. Per variant: median and mean wall time of a training step after 2 warm-up steps,
tokens per step, peak RSS (ru_maxrss) and its growth over the loaded model. Prints the ratios measured
in this one run; targets (issue): CRL/SFT time per token <= 1.5, peak-memory ratio <= 1.15.
The SFT step is one forward + backward; a CRL step adds the frozen reference forward (adapter
disabled, no grad) and the representation losses; mining adds attacker steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "sft": {"method": "sft"},
    "crl": {"method": "crl"},
    "crl+mining": {"method": "crl", "mining": {"enabled": True, "reinit_every": 10, "init_steps": 20,
                                               "probability": 0.5, "gate_loss": 100.0}},
}


def child(variant: str, model_name: str, repeats: int, threads: int) -> dict:
    import torch

    from crl_core.config import from_dict
    from crl_core.training import DefenseTrainer, TrainConfig

    torch.set_num_threads(threads)
    if model_name == "tiny":
        from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama

        tok = build_tiny_tokenizer("chatml")
        model = tiny_llama(len(tok), hidden_size=128, num_layers=4, seed=0)
        layers, blocks, batch, max_len = [2, 3], [0, 1, 2, 3], 16, 64
    elif model_name == "organism":
        from crl_core.models import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer("organism")
        layers, blocks, batch, max_len = [2, 3], [0, 1, 2, 3], 16, 64
    else:
        from crl_core.models import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer("smollm2")
        layers, blocks, batch, max_len = [12, 13, 14, 15, 16, 17, 18, 19], list(range(19)), 4, 64
    mining = dict(VARIANTS[variant].get("mining", {}))
    if mining:
        mining.update({"block_min": 0, "block_max": 2})
    data = {"method": VARIANTS[variant]["method"], "steps": repeats + 2, "num_threads": threads,
            "model": {"name": model_name}, "harmful_layers": {"indices": layers}, "benign_layers": "target",
            "lora": {"rank": 16, "alpha": 16, "blocks": blocks},
            "data": {"preset": "smollm2", "batch_benign": batch, "batch_harmful": batch, "batch_retain": batch,
                     "max_length": max_len},
            "eval": {"enabled": False}, "output_dir": "/tmp/crl-bench-unused"}
    if mining:
        data["mining"] = mining
    tr = DefenseTrainer(from_dict(TrainConfig, data), model=model, tokenizer=tok, log=lambda m: None)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times: list[float] = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        tr.train_step()
        dt = time.perf_counter() - t0
        if i >= 2:
            times.append(dt)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "median_s": statistics.median(times), "mean_s": statistics.fmean(times),
            "min_s": min(times), "batch_rows": 3 * batch, "rss_loaded_mb": rss_loaded, "rss_peak_mb": rss_peak,
            "cpu_threads": threads}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="organism", choices=("organism", "smollm2", "tiny"))
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.repeats, args.threads)))
        return 0
    rows = {}
    for v in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--child", v, "--model", args.model,
                              "--repeats", str(args.repeats), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        rows[v] = json.loads(out.stdout.strip().splitlines()[-1])
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"model={args.model} repeats={args.repeats} threads={args.threads} loadavg={' '.join(load)}")
    print(f"{'variant':<12}{'median s':>10}{'mean s':>9}{'peak RSS MB':>13}{'RSS growth MB':>15}")
    for v, r in rows.items():
        print(f"{v:<12}{r['median_s']:>10.4f}{r['mean_s']:>9.4f}{r['rss_peak_mb']:>13.0f}"
              f"{r['rss_peak_mb'] - r['rss_loaded_mb']:>15.0f}")
    sft = rows["sft"]
    for v in ("crl", "crl+mining"):
        r = rows[v]
        print(f"{v}/sft: time per token (same batches) {r['median_s'] / sft['median_s']:.2f} (target <= 1.5), "
              f"peak memory {r['rss_peak_mb'] / sft['rss_peak_mb']:.2f} (target <= 1.15)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
