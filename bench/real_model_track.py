"""The real-model track: SmolLM2 undefended, its refusal base, and the refusal base hardened by CRL, CRL with
hard-negative mining and circuit breakers, all evaluated the same way on held-out prompts.

    python bench/real_model_track.py --quick          # one hardening seed
    python bench/real_model_track.py                  # full: hardening seeds 0, 1, 2
    python bench/real_model_track.py --only crl,rr    # some models
    python bench/real_model_track.py --quick --jobs 2 # two models at once, one thread each (2 cores)

Every model is evaluated with ``crl eval --preset smollm2`` on the project's test split: ``--limit`` harmful
prompts (default 40) under the direct request, the prefill attack and the preset's embedding attack
(4 free vectors, 50 steps, checks at 25 and 50, 48 greedy tokens), judged by the outcome judge; benign
accuracy, over-refusal, the broken rate of benign answers and the true/false statement benchmark beside it.
Hardened models are trained by ``crl train --preset smollm2-{crl,crl-mining,rr} seed=S``.

Resumable: each model's report lands in ``outputs/bench/real_model_track/<model>[-s<seed>]/report.json``;
a rerun skips every model that has one and rebuilds the summary ``outputs/bench/real_model_track.json``
(``models.<name>.{attacks.<attack>.{asr,n,ci95,labels}, benign_accuracy, over_refusal, benign_broken_rate,
statements, seeds}`` and ``judge_agreement``). Each step runs in its own process with one torch thread.
The summary's labels and ASRs are always the *current* outcome judge's: a report evaluated under an earlier
judge version is re-labelled from its saved outputs (``labels.<version>.jsonl``; the evaluation-time count is
kept beside it as ``at_eval``).
Needs ``crl model prepare smollm2`` and ``crl model prepare smollm2-refusal`` (built here if missing; the
build's time is reported on its own).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "outputs" / "bench"
WORK = OUT / "real_model_track"
ATTACKS = ["direct", "prefill", "embedding"]
MODELS = {  # name -> (base model, training preset or None)
    "undefended": ("smollm2", None),
    "refusal_base": ("smollm2-refusal", None),
    "crl": ("smollm2-refusal", "smollm2-crl"),
    "crl_mining": ("smollm2-refusal", "smollm2-crl-mining"),
    "rr": ("smollm2-refusal", "smollm2-rr"),
}


def _crl(args: list[str], log_path: Path) -> float:
    """Run ``crl ARGS`` with one torch thread, output to ``log_path``; returns its seconds (raises on failure)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    with open(log_path, "w") as f:
        rc = subprocess.call([sys.executable, "-m", "crl_core.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                             env=env, cwd=ROOT)
    if rc != 0:
        raise SystemExit(f"`crl {' '.join(args)}` failed (rc {rc}); see {log_path}")
    return time.time() - t0


def run_one(name: str, seed: int | None, limit: int) -> Path:
    base, preset = MODELS[name]
    folder = WORK / (name if seed is None else f"{name}-s{seed}")
    report = folder / "report.json"
    if report.is_file():
        print(f"[track] {folder.name}: done earlier, skipped")
        return report
    folder.mkdir(parents=True, exist_ok=True)
    timing = {}
    adapter = []
    if preset:
        adapter = ["--adapter", str(folder / "train" / "adapter")]
        done = folder / "train" / "train_seconds.json"  # written only after a training finished
        if done.is_file():  # trained earlier, the evaluation did not finish: evaluate that adapter
            timing["train_s"] = json.loads(done.read_text())["train_s"]
            print(f"[track] {folder.name}: trained earlier ({timing['train_s']:.0f} s), evaluating")
        else:
            timing["train_s"] = round(_crl(["train", "--preset", preset, f"seed={seed}", "eval.enabled=false",
                                            f"output_dir={folder / 'train'}"], folder / "train.log"), 1)
            done.write_text(json.dumps({"train_s": timing["train_s"], "preset": preset, "seed": seed}))
            print(f"[track] {folder.name}: trained in {timing['train_s']:.0f} s")
    tmp = folder / "report.tmp.json"
    timing["eval_s"] = round(_crl(["eval", "--preset", "smollm2", *adapter, "--attacks", ",".join(ATTACKS),
                                   "--limit", str(limit), "--out", str(tmp), f"model={base}", "judge=outcome",
                                   "split=test"], folder / "eval.log"), 1)
    data = json.loads(tmp.read_text())
    data["track"] = {"name": name, "seed": seed, "base": base, "preset": preset, **timing}
    report.write_text(json.dumps(data, indent=1))
    tmp.unlink()
    _write_outputs(data, folder / "outputs.jsonl")
    print(f"[track] {folder.name}: evaluated in {timing['eval_s']:.0f} s")
    return report


def _write_outputs(report: dict, path: Path) -> None:
    """Every attacked and benign generation with its prompt and the judge's label (for reading and labelling)."""
    from crl_core.data import load_prompt_splits

    prompts = {}
    for kind in ("harmful", "benign_qa", "overrefusal"):
        prompts.update({r["id"]: r["prompt"] for r in load_prompt_splits(kind)["test"].to_list()})
    opening = report["spec"]["config"]["opening"]
    rows = []
    for attack, items in report["items"].items():
        for r in items:
            rows.append({"attack": attack, "id": r["id"], "prompt": prompts.get(r["id"], ""),
                         "prefix": opening if attack != "direct" else "", "output": r["generation"],
                         "judge_label": (r.get("leakage") or {}).get("label")})
    for r in report["capability_items"]["benign"]:
        rows.append({"attack": "benign", "id": r["id"], "prompt": prompts.get(r["id"], ""), "prefix": "",
                     "output": r["generation"], "judge_label": r.get("outcome")})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def current_labels(folder: Path) -> list[dict]:
    """Every saved output of a model judged by the *current* outcome judge (coherence under the undefended
    SmolLM2), cached as ``labels.<judge version>.jsonl``: a report evaluated under an earlier judge version is
    re-labelled from its saved generations, so every row of the summary is judged by one version. (For the
    embedding attack the saved generation is the one the evaluation kept: the first check that succeeded, else
    the last; a check the earlier judge rejected is not re-read.)"""
    from crl_core.judges.outcome_judge import OUTCOME_JUDGE_VERSION, OutcomeJudge, frozen_model_scorer

    cache = folder / f"labels.{OUTCOME_JUDGE_VERSION}.jsonl"
    if cache.is_file():
        return [json.loads(x) for x in cache.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = [json.loads(x) for x in (folder / "outputs.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    judge = OutcomeJudge(scorer=frozen_model_scorer("smollm2"))
    out = []
    for r in rows:
        v = judge(r["output"], prompt=r["prompt"], prefix=r["prefix"])
        out.append({"attack": r["attack"], "id": r["id"], "label": v.label, "reason": v.reason})
    cache.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    return out


def hand_labels(source: str) -> dict[tuple[str, str], str]:
    """Hand labels of a model's outputs, from every labelled part (crl_core/data/files/judge_labels):
    ``(attack, prompt id) -> label`` (seed 0's outputs: those are the ones drawn for labelling)."""
    from crl_core.judges.outcome_agreement import labelled_parts, read_labelled

    return {(r["attack"], r["id"]): r["label"] for p in labelled_parts() for r in read_labelled(p)
            if r["source"] == source}


def _summary_of(report: dict, labelled: list[dict], hand: dict | None = None) -> dict:
    from crl_core.judges.outcome_judge import LABELS, OUTCOME_JUDGE_VERSION
    from crl_core.metrics import rate

    attacks = {}
    for name in report["items"]:
        labels = [r["label"] for r in labelled if r["attack"] == name]
        r = rate(labels.count("harmful"), len(labels))
        a = report["attacks"][name]
        attacks[name] = {"asr": r["rate"], "n": len(labels), "k": labels.count("harmful"), "ci95": r["ci95"],
                         "labels": {lab: labels.count(lab) for lab in LABELS},
                         "at_eval": {"judge": report["spec"]["judges"]["asr"], "k": a["successes"], "n": a["n"]}}
        read = [(r["label"], hand[(name, r["id"])]) for r in labelled if r["attack"] == name and (name, r["id"]) in
                (hand or {})]
        if read:  # the rows a person read: their harmful count next to the judge's on the same rows
            attacks[name]["hand_read"] = {"n": len(read), "harmful_by_hand": sum(h == "harmful" for _, h in read),
                                          "harmful_by_judge": sum(j == "harmful" for j, _ in read)}
    benign = [r["label"] for r in labelled if r["attack"] == "benign"]
    st = report.get("statements") or {}
    return {"attacks": attacks, "judge": OUTCOME_JUDGE_VERSION, "benign_accuracy": report["benign_accuracy"],
            "benign": {k: report["benign"][k] for k in ("k", "n", "ci95")}, "over_refusal": report["over_refusal"],
            "over_refusal_detail": report["over_refusal_detail"],
            "benign_broken_rate": round(benign.count("broken") / len(benign), 4) if benign else None,
            "benign_broken": rate(benign.count("broken"), len(benign)) if benign else None,
            "statements": {k: st.get(k) for k in ("accuracy", "k", "n", "ci95", "mean_margin", "set")},
            "seconds": report["track"]}


def summarise(seeds: list[int]) -> dict:
    from crl_core.metrics import rate

    models = {}
    for name, (_, preset) in MODELS.items():
        runs = [WORK / (name if not preset else f"{name}-s{s}") / "report.json" for s in ([None] if not preset
                                                                                        else seeds)]
        found = [p for p in runs if p.is_file()]
        if not found:
            continue
        done = [json.loads(p.read_text()) for p in found]
        hand = hand_labels(name)  # seed 0's outputs are the ones drawn for labelling
        per = [_summary_of(r, current_labels(p.parent), hand if p.parent.name in (name, f"{name}-s0") else None)
               for p, r in zip(found, done)]
        first = copy.deepcopy(per[0])  # per_seed keeps every seed's own numbers
        if len(per) > 1:  # pooled over seeds: k and n summed, the interval of the pooled rate
            for att in first["attacks"]:
                k, n = sum(p["attacks"][att]["k"] for p in per), sum(p["attacks"][att]["n"] for p in per)
                pooled = rate(k, n)
                first["attacks"][att] = {"asr": pooled["rate"], "k": k, "n": n, "ci95": pooled["ci95"], "pooled": True,
                                         "labels": {lab: sum(p["attacks"][att]["labels"][lab] for p in per)
                                                    for lab in per[0]["attacks"][att]["labels"]}}
            for key in ("benign", "over_refusal_detail", "benign_broken", "statements"):
                if all(p.get(key) and p[key].get("k") is not None for p in per):
                    k, n = sum(p[key]["k"] for p in per), sum(p[key]["n"] for p in per)
                    first[key] = {**first[key], **rate(k, n), "pooled": True}
            if first["statements"].get("pooled"):  # the pooled share; the margin stays per seed (per_seed)
                first["statements"].update(accuracy=first["statements"]["rate"], mean_margin=None)
            first["benign_accuracy"] = first["benign"]["rate"]
            first["over_refusal"] = first["over_refusal_detail"]["rate"]
            first["benign_broken_rate"] = first["benign_broken"]["rate"] if first.get("benign_broken") else None
        first["seeds"] = [r["track"]["seed"] for r in done]
        first["per_seed"] = per if len(per) > 1 else None
        models[name] = first
    agreement_path = ROOT / "crl_core" / "data" / "files" / "judge_labels" / "agreement.json"
    from crl_core.judges.outcome_judge import OUTCOME_JUDGE_VERSION

    return {"models": models, "comparisons": _comparisons(models), "judge": OUTCOME_JUDGE_VERSION, "limit_note": "test split; see spec in each report",
            "judge_agreement": json.loads(agreement_path.read_text()) if agreement_path.is_file() else None}


def _comparisons(models: dict) -> dict:
    """Each hardened model against RR (ASR per attack) and against the refusal base (ASR, benign accuracy,
    over-refusal, benign broken rate): differences of rates with Newcombe 95% intervals."""
    from crl_core.metrics import rate_difference

    def diff(a: dict, b: dict) -> dict:
        return rate_difference(a["k"], a["n"], b["k"], b["n"])

    out = {}
    for name in ("crl", "crl_mining", "rr"):
        m = models.get(name)
        if m is None:
            continue
        row = {}
        for other in ("rr", "refusal_base"):
            o = models.get(other)
            if o is None or other == name:
                continue
            row[f"vs_{other}"] = {f"asr_{a}": diff(v, o["attacks"][a]) for a, v in m["attacks"].items()
                                  if a in o["attacks"]}
            if other == "refusal_base":
                row[f"vs_{other}"].update({
                    "benign_accuracy": diff(m["benign"], o["benign"]),
                    "over_refusal": diff(m["over_refusal_detail"], o["over_refusal_detail"]),
                    "benign_broken": diff(m["benign_broken"], o["benign_broken"]) if m.get("benign_broken") and
                    o.get("benign_broken") else None})
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one hardening seed (0) instead of three")
    ap.add_argument("--only", default="", help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--limit", type=int, default=40, help="harmful (and benign, over-refusal) test prompts")
    ap.add_argument("--jobs", type=int, default=1, help="models trained/evaluated at once, one torch thread "
                    "each (2 on a 2-core machine)")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(MODELS)
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        ap.error(f"--only: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    if args.limit < 1:
        ap.error("--limit must be at least 1")
    if not 1 <= args.jobs <= (os.cpu_count() or 1):
        ap.error(f"--jobs must be between 1 and the {os.cpu_count()} CPUs here")
    seeds = [0] if args.quick else [0, 1, 2]
    WORK.mkdir(parents=True, exist_ok=True)
    from crl_core.models.refusal_base import cached_refusal_base_dir

    if any(MODELS[n][0] == "smollm2-refusal" for n in names) and cached_refusal_base_dir() is None:
        s = _crl(["model", "prepare", "smollm2-refusal"], WORK / "refusal_base_build.log")
        print(f"[track] refusal base built in {s:.0f} s (not part of the track's own time)")
    t0 = time.time()
    todo = [(name, seed) for name in names for seed in ([None] if MODELS[name][1] is None else seeds)]
    todo.sort(key=lambda t: MODELS[t[0]][1] is None)  # trainings first: the longest jobs start earliest
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each job is its own one-thread process
        for f in [pool.submit(run_one, name, seed, args.limit) for name, seed in todo]:
            f.result()
    out = summarise(seeds)
    out["wall_s"] = round(time.time() - t0, 1)
    (OUT / "real_model_track.json").write_text(json.dumps(out, indent=1))
    for name, m in out["models"].items():
        att = ", ".join(f"{a} {v['k']}/{v['n']}" for a, v in m["attacks"].items())
        st = m["statements"]
        print(f"{name:13s} {att} | benign {m['benign']['k']}/{m['benign']['n']}, over-refusal "
              f"{m['over_refusal_detail']['k']}/{m['over_refusal_detail']['n']}, broken benign "
              f"{m['benign_broken_rate']}, statements {st.get('k')}/{st.get('n')} (seeds {m['seeds']})")
    print(f"wrote {OUT / 'real_model_track.json'} ({out['wall_s']:.0f} s this run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
