"""Seconds per prompt of the embedding attack on SmolLM2, the reference path against the fast one, in one run.

    python bench/embedding_attack_speed.py [--prompts 8] [--steps 50] [--checkpoints 25,50] [--model smollm2]

Both paths attack the same prompts (harmful test split) with the same config (the smollm2 evaluation
preset's: 4 free vectors, lr 0.05, target = the affirmative opening, greedy checks of ``max_new_tokens``):

- reference (``embedding_attack(..., reference=True)``): full-vocabulary logits at every position in every
  optimisation step, and generation at each check that re-runs the whole sequence for every new token;
- fast (the default): logits only at the target positions (``logits_to_keep``), KV-cache generation with
  last-position logits.

Prints per-phase seconds, seconds per prompt and the ratio, and whether both paths produced the same
generations; writes ``outputs/bench/embedding_attack_speed.json``. One torch thread (the project's rule on
2-core machines). Needs ``crl model prepare smollm2`` (or ``--model`` a local folder).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--checkpoints", default="25,50")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "embedding_attack_speed.json"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from crl_core.attacks import embedding_attack
    from crl_core.attacks.common import AttackItem
    from crl_core.data import load_prompt_splits
    from crl_core.evaluation import evaluation_config_for
    from crl_core.judges.compliance_judge import ComplianceJudge
    from crl_core.models import load_model_and_tokenizer
    from crl_core.registry import ATTACKS

    model, tok = load_model_and_tokenizer(args.model)
    ecfg = evaluation_config_for("smollm2", {"model": args.model, "embedding_steps": args.steps,
                                             "max_new_tokens": args.max_new_tokens, "batch_size": args.prompts})
    cfg = ATTACKS.get("embedding").build_config(ecfg, "")
    cfg = cfg.replace(checkpoints=[int(c) for c in args.checkpoints.split(",")])
    rows = load_prompt_splits("harmful")["test"].to_list()[: args.prompts]
    judge = ComplianceJudge()
    items = [AttackItem(r["id"], r["prompt"], ecfg.opening, judge) for r in rows]
    print(f"embedding attack on {args.model}: {len(items)} prompts in one batch, {cfg.steps} steps, "
          f"{cfg.num_vectors} vectors, checks at {sorted(set(cfg.checkpoints) | {cfg.steps})}, "
          f"{cfg.max_new_tokens} new tokens per check, 1 thread, load {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for name, reference in (("reference", True), ("fast", False)):
        t0, c0 = time.time(), time.process_time()
        out = embedding_attack(model, tok, items, cfg, reference=reference)
        wall, cpu = time.time() - t0, time.process_time() - c0
        results[name] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "s_per_prompt": round(wall / len(items), 2),
                         "generations": [r.generation for r in out], "final_loss": [r.final_loss for r in out]}
        print(f"{name:>9}: {wall:7.1f} s wall ({cpu:.1f} s CPU), {wall / len(items):6.2f} s per prompt", flush=True)
    ratio = results["reference"]["wall_s"] / results["fast"]["wall_s"]
    same = results["reference"]["generations"] == results["fast"]["generations"]
    print(f"speed-up {ratio:.2f}x (target >= 4x); same generations: {same}; load {os.getloadavg()[0]:.2f}")
    doc = {"model": args.model, "prompts": len(items), "config": cfg.__dict__, "speedup": round(ratio, 2),
           "same_generations": same, **results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
