"""One short check for a GPU machine: CRL's step cost against LoRA-SFT at ~1B parameters, and the
``device: cuda`` training path end to end. Prints one JSON line.

    python bench/gpu_check.py [--size 1b|tiny] [--repeats 10] [--warmup 2] [--dtype bfloat16] [--device auto]

Needs only torch, transformers and peft (and PyYAML, which they bring): no Ray, MLflow or ``datasets``, no
model hub, no SmolLM2 cache. The tokenizer is the committed organism's (``crl_core/organism/artifacts/v1``);
the training rows are read from the vendored JSONL files without ``datasets`` (harmful AdvBench prompts with
the organism's payload completions, benign questions with their answers, retain = benign + harmful ->
refusal: the organism preset's rows). The model is a randomly initialised Llama built from a config
(``1b``: TinyLlama-1.1B's shape, 22 blocks, d = 2048, vocab 32000; ``tiny``: a CPU-test size).

For each variant (``sft``, ``crl``, ``crl+mining``) the same ``DefenseTrainer`` the sweeps use trains on the
same batches (same seed): after ``--warmup`` steps, ``--repeats`` steps are timed (CUDA synchronised).
Reported per variant: median step time, tokens per step (non-padding tokens of every row) and tokens/s,
peak GPU memory (``torch.cuda.max_memory_allocated``, reset per variant; null on CPU, where one process's
peak RSS cannot be reset), model FLOPs per step and MFU against the GPU's dense bf16 spec peak (named in
the output; null when the GPU is not in the table). Exit status 1 when the path check fails, 2 for bad
arguments (before any model is built). FLOPs: 2 N per token for each forward (N = parameters
outside the embedding; attention's T^2 term ignored) and 2 N per token for the backward (LoRA: no weight
gradients for the frozen weights); SFT = 1 forward + 1 backward, CRL = + 1 frozen reference forward;
mining's attacker steps are extra forwards/backwards not counted (so its MFU is a lower bound). Ratios:
CRL / SFT time per token (target <= 1.5; mining <= 1.6) and peak memory (target <= 1.15). The path check
asserts the adapter's parameters live on the device, every loss is finite, and the LoRA weights moved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ORGANISM = ROOT / "crl_core" / "organism" / "artifacts" / "v1"
FILES = ROOT / "crl_core" / "data" / "files"
SIZES = {  # LlamaConfig keys
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
           "num_key_value_heads": 4, "vocab_size": 32000},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 2048},
}
# dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s; matched on the device name
BF16_PEAK_TFLOPS = (("H200", 989.4), ("H100 SXM", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0),
                    ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1), ("L4", 121.0), ("A10G", 70.0))
VARIANTS = {
    "sft": {"method": "sft"},
    "crl": {"method": "crl"},  # the default path: early exit where it applies, the reference-state cache
    "crl-whole": {"method": "crl", "early_exit": False, "reference_cache_mb": 0},  # the path before them
    "crl+mining": {"method": "crl", "mining": {"enabled": True, "reinit_every": 10, "init_steps": 4,
                                               "probability": 0.5, "gate_loss": 100.0}},
}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_rows(tokenizer, max_length: int):
    """The organism preset's training rows, from the vendored files (no ``datasets``)."""
    import yaml

    from crl_core.chat import encode_chat
    from crl_core.training.data import DefenseData

    payload = yaml.safe_load((ORGANISM / "build_config.yaml").read_text())["config"]["payload"]
    payloads = {r["id"]: r["payload"] for r in _jsonl(ORGANISM / "payloads.jsonl")}
    harmful = [(r["prompt"], payloads[r["id"]]) for r in _jsonl(FILES / "advbench_harmful.jsonl") if r["id"] in payloads]
    benign = [(r["prompt"], r["answer"]) for r in _jsonl(FILES / "benign_qa.jsonl")]
    benign += [(r["prompt"], payload["helpful"]) for r in _jsonl(FILES / "overrefusal_prompts.jsonl")]
    retain = benign + [(p, payload["refusal"]) for p, _ in harmful]

    def enc(rows):
        return [encode_chat(tokenizer, p, a, max_length=max_length) for p, a in rows]

    return DefenseData(benign=enc(benign), harmful=enc(harmful), retain=enc(retain),
                       harmful_rows=[{"prompt": p, "completion": c} for p, c in harmful],
                       description={"source": "vendored JSONL, organism payloads", "n_benign": len(benign),
                                    "n_harmful": len(harmful), "n_retain": len(retain)})


def build_model(size: str, dtype, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(max_position_embeddings=2048, tie_word_embeddings=False, **SIZES[size])
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).to(dtype)


def gpu_peak(name: str) -> tuple[str | None, float | None]:
    for key, tflops in BF16_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return key, tflops
    return None, None


def run_variant(variant: str, args, tokenizer, data, device) -> dict:
    import torch

    from crl_core.config import from_dict
    from crl_core.training import DefenseTrainer, TrainConfig

    dtype = getattr(torch, args.dtype)
    model = build_model(args.size, dtype)
    depth = model.config.num_hidden_layers
    layers = [depth // 2, depth // 2 + 1]
    mining = dict(VARIANTS[variant].get("mining", {}))
    if mining:
        mining.update({"block_min": 0, "block_max": max(0, depth // 2 - 1)})
    b = args.batch
    cfg = from_dict(TrainConfig, {
        "method": VARIANTS[variant]["method"], "model": {"name": "organism", "dtype": args.dtype},
        "device": str(device), "steps": args.warmup + args.repeats, "seed": 0, "num_threads": args.threads,
        "harmful_layers": {"indices": layers}, "benign_layers": "all", "lora": {"rank": 16, "alpha": 16},
        "data": {"preset": "organism", "batch_benign": b, "batch_harmful": b, "batch_retain": b,
                 "max_length": args.max_length},
        "mining": {"enabled": False, **mining}, "log_every": 1000, "output_dir": "unused",
        **{k: v for k, v in VARIANTS[variant].items() if k in ("early_exit", "reference_cache_mb")}})
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer = DefenseTrainer(cfg, model=model, tokenizer=tokenizer, log=lambda s: None, data=data)
    lora = {n: p.detach().float().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    on_device = all(p.device.type == device.type for p in trainer.model.parameters() if p.requires_grad)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times, tokens, losses = [], [], []
    for i in range(args.warmup + args.repeats):
        # the tokens of the rows this step will draw (the samplers are seeded alike in every variant)
        n_tok = sum(len(getattr(data, k)[j].input_ids)
                    for k in ("benign", "harmful", "retain") for j in _peek(trainer.samplers[k]))
        sync()
        t0 = time.perf_counter()
        metrics = trainer.train_step()
        sync()
        dt = time.perf_counter() - t0
        losses.append(float(metrics.get("loss", float("nan"))))
        if i >= args.warmup:
            times.append(dt)
            tokens.append(n_tok)
    moved = max(float((p.detach().float() - lora[n]).abs().max()) for n, p in trainer.model.named_parameters()
                if n in lora)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    forwards = 1 if variant == "sft" else 2
    tok = statistics.fmean(tokens)
    med = statistics.median(times)
    flops = (2 * forwards + 2) * n_params * tok
    out = {"step_s_median": med, "step_s_mean": statistics.fmean(times), "tokens_per_step": tok,
           "tokens_per_s": tok / med, "model_flops_per_step": flops,
           "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
           "losses_finite": all(x == x and abs(x) != float("inf") for x in losses),
           "lora_moved_max_abs": moved, "adapter_on_device": on_device, "first_loss": losses[0], "last_loss": losses[-1]}
    del trainer, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def _peek(sampler) -> list[int]:
    """The indices ``sampler.next()`` will return, without drawing them."""
    import copy

    return copy.deepcopy(sampler).next()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="1b")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="rows per part (benign, harmful, retain) per step")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args(argv)
    for name, low in (("repeats", 1), ("warmup", 0), ("batch", 1), ("max_length", 8), ("threads", 1)):
        if getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} must be >= {low}")
    unknown = [v for v in args.variants.split(",") if v and v not in VARIANTS]
    if unknown or not any(args.variants.split(",")):
        p.error(f"--variants: unknown {unknown}; known: {','.join(VARIANTS)}")
    import torch
    from transformers import AutoTokenizer

    if args.device not in ("auto", "cpu", "cuda") and not (args.device.startswith("cuda:") and args.device[5:].isdigit()):
        p.error(f"--device: '{args.device}' is not one of auto, cpu, cuda, cuda:N")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: this machine has no CUDA GPU")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    tokenizer = AutoTokenizer.from_pretrained(str(ORGANISM))
    data = build_rows(tokenizer, args.max_length)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_key, peak = gpu_peak(name) if device.type == "cuda" else (None, None)
    t0 = time.time()
    variants = {v: run_variant(v, args, tokenizer, data, device) for v in args.variants.split(",") if v}
    for v in variants.values():
        v["mfu"] = v["model_flops_per_step"] / v["step_s_median"] / (peak * 1e12) if peak else None
    result = {"device": name, "peak_bf16_tflops": peak, "peak_source": peak_key and f"{peak_key} data sheet, dense bf16",
              "size": args.size, "dtype": args.dtype, "batch_per_part": args.batch, "max_length": args.max_length,
              "repeats": args.repeats, "torch": torch.__version__, "variants": variants, "wall_s": round(time.time() - t0, 1)}
    sft = variants.get("sft")
    if sft:
        per_tok = {k: v["step_s_median"] / v["tokens_per_step"] for k, v in variants.items()}
        result["ratios"] = {f"{k}/sft_time_per_token": per_tok[k] / per_tok["sft"] for k in variants if k != "sft"}
        if sft["peak_memory_gib"]:
            result["ratios"].update({f"{k}/sft_peak_memory": v["peak_memory_gib"] / sft["peak_memory_gib"]
                                     for k, v in variants.items() if k != "sft"})
    result["path_ok"] = all(v["losses_finite"] and v["adapter_on_device"] and v["lora_moved_max_abs"] > 0
                            for v in variants.values())
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    raise SystemExit(0 if main()["path_ok"] else 1)  # a failed device-path check never exits 0
