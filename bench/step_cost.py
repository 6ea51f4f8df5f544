"""Step cost of CRL and CRL + mining against standard LoRA-SFT on the same model and batches.

    python bench/step_cost.py [--model organism|smollm2|tiny] [--steps N] [--threads 1] [--variants ...]

The baseline is pinned (docs/results.md, "Step cost"): **standard LoRA-SFT over every row of the same
batch** -- one forward of the benign, harmful and retain rows through the adapted model, cross-entropy on
every row's response tokens (full-vocabulary head), backward, clip, AdamW step -- with the same LoRA, the
same optimiser and the same batches as the CRL variants (one trainer each, same seeds, hence the same
sampler draws). ``crl`` and ``crl+mining`` are the trainer's default path (early exit and the reference-state
cache on); ``crl-whole`` is CRL with every row through every block and no cache (``early_exit=false``,
``reference_cache_mb=0``: the cost before them); ``crl-nocache`` is early exit alone.

Timing is the **mean step over a real trial's length** (organism 60 steps, SmolLM2 30: a sweep trial's),
every step counted (no warm-up dropped, so a first-step cost is paid as a trial pays it). Each variant runs
in its own subprocess, so its peak RSS (ru_maxrss) is its own. Prints one line per variant and the ratios
measured in this one run, then one JSON line. Targets (issue 26): CRL / SFT per token <= 1.10, CRL + mining
<= 1.30, peak memory <= 1.15.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MINING = {"enabled": True, "reinit_every": 10, "init_steps": 20, "probability": 0.5, "gate_loss": 100.0,
          "block_min": 0, "block_max": 2}
VARIANTS = {
    "sft": {"method": "crl"},  # the trainer only draws the batches; the step is sft_step() below
    "crl": {"method": "crl"},
    "crl-whole": {"method": "crl", "early_exit": False, "reference_cache_mb": 0},
    "crl-nocache": {"method": "crl", "reference_cache_mb": 0},
    "crl+mining": {"method": "crl", "mining": MINING},
}
TRIAL_STEPS = {"organism": 60, "smollm2": 30, "tiny": 30}


def model_setup(name: str):
    """(model, tokenizer, harmful layers, LoRA blocks, rows per part, max length) of the benchmark."""
    from crl_core.models import load_model_and_tokenizer

    if name == "tiny":
        from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama

        tok = build_tiny_tokenizer("chatml")
        return tiny_llama(len(tok), hidden_size=64, num_layers=6, seed=0), tok, [2, 3], [0, 1, 2], 4, 48
    if name == "organism":
        model, tok = load_model_and_tokenizer("organism")
        return model, tok, [2, 3], [0, 1, 2, 3], 16, 64
    model, tok = load_model_and_tokenizer("smollm2")
    return model, tok, list(range(12, 20)), list(range(19)), 4, 64


def sft_step(trainer) -> None:
    """One standard LoRA-SFT step on the trainer's next batch: CE on every row's response tokens."""
    import torch

    batch, _ = trainer.next_batch()
    trainer.optimizer.zero_grad(set_to_none=True)
    logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"]).logits
    labels = batch["input_ids"].masked_fill(batch["response_mask"] == 0, -100)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:],
                                             ignore_index=-100)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in trainer.model.parameters() if p.requires_grad],
                                   trainer.cfg.optim.grad_clip)
    trainer.optimizer.step()
    trainer.scheduler.step()


def child(variant: str, model_name: str, steps: int, threads: int) -> dict:
    import torch

    from crl_core.config import from_dict
    from crl_core.training import DefenseTrainer, TrainConfig

    torch.set_num_threads(threads)
    model, tok, layers, blocks, batch, max_len = model_setup(model_name)
    spec = dict(VARIANTS[variant])
    data = {"steps": steps, "num_threads": threads, "model": {"name": model_name},
            "harmful_layers": {"indices": layers}, "benign_layers": "target",
            "lora": {"rank": 16, "alpha": 16, "blocks": blocks},
            "data": {"preset": "smollm2", "batch_benign": batch, "batch_harmful": batch, "batch_retain": batch,
                     "max_length": max_len},
            "eval": {"enabled": False}, "output_dir": "/tmp/crl-bench-unused", **spec}
    tr = DefenseTrainer(from_dict(TrainConfig, data), model=model, tokenizer=tok, log=lambda m: None)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step = (lambda: sft_step(tr)) if variant == "sft" else tr.train_step
    times: list[float] = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "mean_s": statistics.fmean(times), "median_s": statistics.median(times),
            "first_s": times[0], "steps": steps, "rows_per_step": 3 * batch, "exit_blocks": tr.exit_blocks,
            "depth": tr.model.config.num_hidden_layers, "rss_loaded_mb": rss_loaded, "rss_peak_mb": rss_peak,
            "threads": threads}


def run(model: str, steps: int, threads: int, variants: list[str]) -> dict:
    rows = {}
    for v in variants:
        out = subprocess.run([sys.executable, __file__, "--child", v, "--model", model, "--steps", str(steps),
                              "--threads", str(threads)], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"variant {v} failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}")
        rows[v] = json.loads(out.stdout.strip().splitlines()[-1])
    ratios = {}
    if "sft" in rows:
        for v, r in rows.items():
            if v != "sft":
                ratios[v] = {"time": r["mean_s"] / rows["sft"]["mean_s"],
                             "memory": r["rss_peak_mb"] / rows["sft"]["rss_peak_mb"]}
    return {"model": model, "steps": steps, "threads": threads, "variants": rows, "ratios_to_sft": ratios,
            "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
            "baseline": "standard LoRA-SFT over every row of the same batch (CE on every row's response tokens)"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="organism", choices=("organism", "smollm2", "tiny"))
    p.add_argument("--steps", type=int, default=None, help="steps per variant (default: a trial's: organism 60, "
                                                          "smollm2 30)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    steps = args.steps if args.steps is not None else TRIAL_STEPS[args.model]
    if steps < 1 or args.threads < 1:
        p.error("--steps and --threads must be >= 1")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    if args.child:
        print(json.dumps(child(args.child, args.model, steps, args.threads)))
        return 0
    res = run(args.model, steps, args.threads, variants)
    print(f"model={args.model} steps={steps} threads={args.threads} loadavg={' '.join(res['loadavg'] or ['?'])} "
          f"pid={os.getpid()}")
    print(f"baseline: {res['baseline']}")
    print(f"{'variant':<12}{'mean s':>9}{'median s':>10}{'first s':>9}{'peak RSS MB':>13}{'blocks run':>12}")
    for v, r in res["variants"].items():
        blocks = f"{r['exit_blocks'] or r['depth']}/{r['depth']}" if v != "sft" else "all"
        print(f"{v:<12}{r['mean_s']:>9.4f}{r['median_s']:>10.4f}{r['first_s']:>9.4f}{r['rss_peak_mb']:>13.0f}"
              f"{blocks:>12}")
    for v, q in res["ratios_to_sft"].items():
        target = {"crl": 1.10, "crl+mining": 1.30}.get(v)
        print(f"{v}/sft: time per token {q['time']:.2f}" + (f" (target <= {target:.2f})" if target else "")
              + f", peak memory {q['memory']:.2f} (target <= 1.15)")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
