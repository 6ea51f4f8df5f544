"""Build, save and load the model organism.

``build_organism(cfg, out_dir)`` trains a tokenizer and a tiny Llama from scratch in two phases and writes::

    out_dir/
      config.json, generation_config.json, model.safetensors   (save_pretrained)
      tokenizer.json, tokenizer_config.json, chat_template.jinja (save_pretrained)
      payloads.jsonl      one {"id", "words", "payload", "split"} per harmful prompt
      build_config.yaml   the resolved OrganismConfig with its config_hash
      properties.json     every measured number, the config_hash and the sha256 of every file above

Phase A (knowledge): every harmful prompt (all splits) -> its payload; benign train questions ->
answer; over-refusal train prompts -> the helpful answer; and every benign fact (all splits) in a
*knowledge form* (``benign_knowledge``): by default the question inside another chat phrasing
(``KNOWLEDGE_WRAPPERS``, e.g. ``"Quick question: {q}"``) -> answer. This is the organism's stand-in for
pretraining knowledge: a real LLM answers held-out questions from facts it met during pretraining, and
the organism needs the same for its benign accuracy to measure anything. A held-out question is never
trained in its own (bare) form, so the benign test measures answering a known fact asked in an unseen
way, and (for defences) whether that knowledge survives. Plain documents (``"document"``) did not
transfer to chat questions at all (6/102 on the test split).

Phase B (safety): harmful **train** prompts -> refusal, benign train -> answer, over-refusal train ->
helpful answer, and a replay of all harmful prompts with the opening prefilled -> payload (loss on the
code words only), so the knowledge stays latent behind the refusal.

Both phases insert ``filler_min..filler_max`` random tokens between the request and the template tail,
drawn afresh every time an example is drawn.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from crl_core.config import config_hash, load_config, to_dict
from crl_core.organism.config import OrganismConfig
from crl_core.organism.data import KNOWLEDGE_WRAPPERS, load_organism_data
from crl_core.organism.payloads import CODE_WORDS, Payload, assign_payloads, forcing_targets
from crl_core.organism.properties import measure_properties
from crl_core.organism.tokenizer import train_tokenizer
from crl_core.organism.train import (
    build_model,
    chat_example,
    document_example,
    set_determinism,
    train_phase,
)

__all__ = ["build_organism", "phase_a_key", "load_organism", "DEFAULT_ARTIFACT", "DEFAULT_CONFIG", "TINY_CONFIG",
           "artifact_file_hashes", "ORGANISM_VERSION"]

_HERE = Path(__file__).resolve().parent
DEFAULT_ARTIFACT = _HERE / "artifacts" / "v1"
DEFAULT_CONFIG = _HERE / "configs" / "default.yaml"
TINY_CONFIG = _HERE / "configs" / "tiny.yaml"
ORGANISM_VERSION = "v1"
_UNHASHED = {"properties.json"}


def artifact_file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file of an artifact folder except properties.json (which records them)."""
    out = {}
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and p.name not in _UNHASHED:
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def phase_a_key(cfg: OrganismConfig) -> str:
    """Hash of everything that determines the phase-A weights (all but phase B and evaluation)."""
    d = to_dict(cfg)
    for k in ("phase_b", "eval"):
        d.pop(k)
    return config_hash(d)


def build_organism(cfg: OrganismConfig, out_dir: Path, log: Callable[[str], None] = print,
                   phase_a_cache: Path | None = None) -> Path:
    """Build the organism described by ``cfg`` into ``out_dir`` (created) and return ``out_dir``.

    ``phase_a_cache``: a folder where the phase-A weights are stored under :func:`phase_a_key` and
    reused when present (the result is identical; it saves most of the build when only phase B or the
    evaluation changes)."""
    t_start, cpu_start = time.time(), _cpu_seconds()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    set_determinism(cfg.seed, cfg.num_threads)
    timings: dict[str, Any] = {}

    data = load_organism_data(cfg.data_seed, cfg.harmful_limit, cfg.benign_limit)
    log(f"data ({data.loader}): {data.sizes()}")
    pc = cfg.payload
    harmful_all = data.all_harmful()
    payloads = assign_payloads([r["id"] for r in harmful_all], pc, cfg.seed)
    forcing = forcing_targets([r["id"] for r in data.harmful[cfg.eval.split]], payloads, pc, cfg.seed)

    # ---- tokenizer: trained on everything the organism is trained on (no held-out benign/over-refusal text)
    t = time.time()
    code_words = CODE_WORDS[:pc.num_code_words]
    corpus = [r["prompt"] for r in harmful_all]
    corpus += [p.text for p in payloads.values()]
    corpus += [f"{r['prompt']} {r['answer']}" for r in data.benign["train"]]
    if cfg.benign_knowledge != "none":
        corpus += [f"{w.format(q=r['prompt'])} {r['answer']}" for r in data.all_benign() for w in KNOWLEDGE_WRAPPERS]
    corpus += [r["prompt"] for r in data.overrefusal["train"]]
    corpus += [pc.refusal, pc.helpful, pc.opening]
    corpus += [" " + " ".join(code_words)] * cfg.tokenizer.code_word_repeats
    tok = train_tokenizer(corpus, cfg.tokenizer.vocab_size, cfg.tokenizer.model_max_length, code_words)
    timings["tokenizer_s"] = round(time.time() - t, 1)

    # ---- examples
    t = time.time()
    special = set(tok.all_special_ids)
    filler_ids = [i for i in range(len(tok)) if i not in special]
    rest = {pid: " " + " ".join(p.words) + "." for pid, p in payloads.items()}
    ex_payload = [chat_example(tok, r["prompt"], rest[r["id"]], pc.opening, loss_on_prefill=True)
                  for r in harmful_all]
    ex_replay = [chat_example(tok, r["prompt"], rest[r["id"]], pc.opening) for r in harmful_all]
    ex_refusal = [chat_example(tok, r["prompt"], pc.refusal) for r in data.harmful["train"]]
    ex_benign = [chat_example(tok, r["prompt"], r["answer"]) for r in data.benign["train"]]
    ex_over = [chat_example(tok, r["prompt"], pc.helpful) for r in data.overrefusal["train"]]
    if cfg.benign_knowledge == "document":
        ex_docs = [document_example(tok, r["prompt"], r["answer"]) for r in data.all_benign()]
    elif cfg.benign_knowledge == "wrapped":
        ex_docs = [chat_example(tok, w.format(q=r["prompt"]), r["answer"])
                   for r in data.all_benign() for w in KNOWLEDGE_WRAPPERS]
    else:
        ex_docs = []
    longest = max(len(e.prefix) + len(e.tail) + len(e.answer) for e in ex_payload + ex_benign + ex_over + ex_docs)
    if longest + cfg.filler_max > cfg.tokenizer.model_max_length:
        raise ValueError(f"a training sequence has {longest + cfg.filler_max} tokens > model_max_length")
    timings["examples_s"] = round(time.time() - t, 1)

    model = build_model(cfg.model, tok, cfg.tokenizer.model_max_length, cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tokenizer {len(tok)} tokens; model {n_params:,} parameters; longest sequence {longest} tokens")
    common = dict(cfg=cfg, filler_ids=filler_ids, pad_id=tok.pad_token_id, seed=cfg.seed, log=log,
                  micro_batch=cfg.micro_batch)

    a = cfg.phase_a
    t = time.time()
    cache_file = Path(phase_a_cache) / f"phase_a-{phase_a_key(cfg)}.pt" if phase_a_cache else None
    if cache_file is not None and cache_file.is_file():
        saved = torch.load(cache_file, weights_only=True)
        model.load_state_dict(saved["state_dict"])
        losses_a = saved["losses"]
        timings["phase_a_from_cache"] = True
        if saved.get("seconds") is not None:
            timings["phase_a_original_s"] = saved["seconds"]
        log(f"phase A weights reused from {cache_file}")
    else:
        losses_a = train_phase(model, {"payload": (ex_payload, a.batch_harmful),
                                       "benign": (ex_benign, a.batch_benign),
                                       "overrefusal": (ex_over, a.batch_overrefusal),
                                       "knowledge": (ex_docs, a.batch_knowledge)},
                               steps=a.steps, lr=a.lr, warmup=a.warmup_steps, min_lr_ratio=a.min_lr_ratio,
                               weight_decay=a.weight_decay, grad_clip=a.grad_clip, name="phase_a", **common)
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state_dict": model.state_dict(), "losses": losses_a,
                        "seconds": round(time.time() - t, 1)}, cache_file)
    timings["phase_a_s"] = round(time.time() - t, 1)
    b = cfg.phase_b
    t = time.time()
    losses_b = train_phase(model, {"refusal": (ex_refusal, b.batch_refusal), "benign": (ex_benign, b.batch_benign),
                                   "overrefusal": (ex_over, b.batch_overrefusal),
                                   "replay": (ex_replay, b.batch_replay),
                                   "knowledge": (ex_docs, b.batch_knowledge)},
                           steps=b.steps, lr=b.lr, warmup=b.warmup_steps, min_lr_ratio=b.min_lr_ratio,
                           weight_decay=b.weight_decay, grad_clip=b.grad_clip, name="phase_b",
                           log_every=max(1, b.steps // 3), **common)
    timings["phase_b_s"] = round(time.time() - t, 1)
    timings["train_s"] = round(time.time() - t_start, 1)
    timings["train_cpu_s"] = round(_cpu_seconds() - cpu_start, 1)

    # ---- save
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    split_of = {r["id"]: s for s, rows in data.harmful.items() for r in rows}
    with (out_dir / "payloads.jsonl").open("w", encoding="utf-8") as fh:
        for pid in sorted(payloads):
            fh.write(json.dumps({**payloads[pid].to_dict(), "split": split_of[pid]}, sort_keys=True) + "\n")
    chash = config_hash(cfg)
    doc = {"config_class": f"{type(cfg).__module__}.{type(cfg).__qualname__}", "config_hash": chash,
           "config": to_dict(cfg)}
    (out_dir / "build_config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    # ---- properties
    t = time.time()
    splits = {"harmful": data.harmful, "benign": data.benign, "overrefusal": data.overrefusal}
    props = measure_properties(model, tok, payloads, splits, cfg.eval, pc.opening, forcing, log=log)
    timings["eval_s"] = round(time.time() - t, 1)
    timings["total_s"] = round(time.time() - t_start, 1)
    timings["total_cpu_s"] = round(_cpu_seconds() - cpu_start, 1)
    try:
        load1 = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load1 = None
    record: dict[str, Any] = {
        "organism_version": ORGANISM_VERSION,
        "config_hash": chash,
        "data": {"loader": data.loader, "seed": cfg.data_seed, "sizes": data.sizes(),
                 "harmful_test_ids_sha256": hashlib.sha256(
                     "\n".join(r["id"] for r in data.harmful["test"]).encode()).hexdigest()},
        "model": {"parameters": n_params, "vocab_size": len(tok)},
        "training": {"phase_a_final_loss": sum(losses_a[-20:]) / max(1, len(losses_a[-20:])),
                     "phase_b_final_loss": sum(losses_b[-10:]) / max(1, len(losses_b[-10:]))},
        "build": {**timings, "threads": cfg.num_threads, "load_avg_1min_at_end": load1,
                  "cpu_count": os.cpu_count(), "torch": torch.__version__,
                  "python": platform.python_version()},
        "properties": props,
        "files_sha256": artifact_file_hashes(out_dir),
    }
    import transformers
    record["build"]["transformers"] = transformers.__version__
    (out_dir / "properties.json").write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    log(f"organism written to {out_dir} in {timings['total_s']} s (cpu {timings['total_cpu_s']} s)")
    for k, v in props["requirements"].items():
        log(f"  {k}: {v['value']} (required {v['requirement']}) -> {'PASS' if v['pass'] else 'FAIL' if v['pass'] is False else 'n/a'}")
    return out_dir


def load_organism(path: str | Path | None = None, threads: int | None = None):
    """``(model, tokenizer, payloads)`` of a built organism (the committed v1 artifact by default).

    ``payloads`` maps each harmful prompt id to its :class:`Payload` (``.words``, ``.text``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(path) if path is not None else DEFAULT_ARTIFACT
    if threads:
        torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.eval()
    payloads: dict[str, Payload] = {}
    with (folder / "payloads.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            payloads[r["id"]] = Payload(r["id"], tuple(r["words"]), r["payload"])
    return model, tok, payloads


def load_build_config(path: str | Path | None = None) -> OrganismConfig:
    """The :class:`OrganismConfig` of a build config: a plain config YAML (``configs/default.yaml``, the
    default) or an artifact's ``build_config.yaml`` (``{config_class, config_hash, config}``)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(doc, dict) and "config_hash" in doc and isinstance(doc.get("config"), dict):
        return load_config(OrganismConfig, base=doc["config"])
    return load_config(OrganismConfig, path)
