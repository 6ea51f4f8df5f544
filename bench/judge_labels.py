"""Draw outputs for hand labelling, and measure the outcome judge against the hand labels.

    python bench/judge_labels.py draw --part dev --per-cell 5 [--models crl,rr]
    python bench/judge_labels.py draw --part heldout --per-cell 5   # the current judge's blind part
    python bench/judge_labels.py agreement        # the frozen judge on its blind part -> agreement.json
    python bench/judge_labels.py draw --part dev --track DIR --out DIR   # other folders (tests)

``draw`` takes rows of ``outputs/bench/real_model_track/<model>/outputs.jsonl`` (bench/real_model_track.py)
and writes ``outputs/bench/judge_labels/<part>.unlabelled.jsonl`` without the judge's label, so the reader
never sees it. Every row goes to one bucket for good, by a hash of (model, attack, prompt id): ``dev`` (the
judge's rules may change while it is read) or ``heldout`` (read blind, after the rules are frozen). A judge
version ``outcome-vN`` is measured on its own blind part ``heldout-vN.jsonl``, drawn from the held-out bucket
after its rules were frozen; ``--part heldout`` draws for the current version. Rows already labelled in any
part are not drawn again. ``--per-cell`` rows per (model, attack) cell, in hash order.

``agreement`` runs the current outcome judge on its blind part with coherence scored by the frozen,
undefended SmolLM2, stores each row's NLL in the file (so the test can re-run the rules without the model)
and writes ``agreement.json`` (``agreement.partial.json`` while the blind part is smaller than 60 rows with
20 harmful, or the parts hold fewer than 150): precision and recall of ``harmful`` and ``broken``, the
confusion matrix, n and the commit of the judge. ``agreement-v2.json`` is the record of outcome-v2 on
``heldout-v2.jsonl`` (its rules are gone; that part is development data for v3).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRACK = ROOT / "outputs" / "bench" / "real_model_track"
DRAWN = ROOT / "outputs" / "bench" / "judge_labels"

from crl_core.judges.outcome_agreement import LABELLED, blind_part, labelled_parts  # noqa: E402  (after sys.path)


def part_of(source: str, attack: str, pid: str) -> str:
    h = int(hashlib.sha256(f"{source}|{attack}|{pid}".encode()).hexdigest()[:8], 16)
    return "dev" if h % 100 < 45 else "heldout"


def _order(source: str, attack: str, pid: str) -> str:
    return hashlib.sha256(f"order|{source}|{attack}|{pid}".encode()).hexdigest()


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] if path.is_file() else []


def draw(bucket: str, per_cell: int, models: list[str], track: Path = TRACK, drawn: Path = DRAWN) -> Path:
    """Write ``<drawn>/<part>.unlabelled.jsonl`` from the model folders under ``track``; returns its path."""
    part = "dev" if bucket == "dev" else blind_part()
    if not track.is_dir():
        raise SystemExit(f"judge_labels: error: no model outputs in {track} (bench/real_model_track.py writes them)")
    have = {(r["source"], r["attack"], r["id"]) for p in labelled_parts() for r in _read(LABELLED / f"{p}.jsonl")}
    out_rows = []
    for folder in sorted(track.iterdir()):
        source = folder.name.split("-s")[0]
        if models and source not in models or not (folder / "outputs.jsonl").is_file():
            continue
        cells: dict[str, list[dict]] = {}
        for r in _read(folder / "outputs.jsonl"):
            key = (source, r["attack"], r["id"])
            if part_of(*key) == bucket and key not in have:
                cells.setdefault(r["attack"], []).append(r)
        for attack, rows in sorted(cells.items()):
            rows.sort(key=lambda r: _order(source, attack, r["id"]))
            for r in rows[:per_cell]:
                out_rows.append({"source": source, "attack": attack, "id": r["id"], "prompt": r["prompt"],
                                 "prefix": r["prefix"], "output": r["output"]})
    drawn.mkdir(parents=True, exist_ok=True)
    path = drawn / f"{part}.unlabelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out_rows), encoding="utf-8")
    print(f"{len(out_rows)} rows to label in {path}")
    return path


def agreement() -> dict:
    from crl_core.evaluation.report import git_commit
    from crl_core.judges.outcome_agreement import agreement_of, judge_rows
    from crl_core.judges.outcome_judge import OUTCOME_JUDGE_VERSION, continuation, frozen_model_scorer

    part = blind_part()
    path = LABELLED / f"{part}.jsonl"
    rows = _read(path)
    score = frozen_model_scorer("smollm2")
    for r in rows:  # the NLL of each continuation under the undefended model, kept with the row
        r["nll"] = round(float(score(r["prompt"], r["prefix"], continuation(r["output"], r["prefix"]))), 4)
    out = {"judge": OUTCOME_JUDGE_VERSION, "judge_commit": git_commit(), "part": part,
           **agreement_of(rows, judge_rows(rows))}
    harmful = sum(r["label"] == "harmful" for r in rows if r["attack"] != "benign")
    in_all = sum(len(_read(LABELLED / f"{p}.jsonl")) for p in labelled_parts())
    complete = len(rows) >= 60 and harmful >= 20 and in_all >= 150
    out["complete"] = complete  # the size: >= 60 blind rows, >= 20 harmful, >= 150 labelled in all
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    name = "agreement.json" if complete else "agreement.partial.json"
    (LABELLED / name).write_text(json.dumps(out, indent=1) + "\n")
    if complete and (LABELLED / "agreement.partial.json").is_file():
        (LABELLED / "agreement.partial.json").unlink()
    print(f"wrote {LABELLED / name}")
    print(json.dumps({k: out[k] for k in ("n", "accuracy", "harmful", "broken")}, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw")
    d.add_argument("--part", choices=("dev", "heldout"), required=True)
    d.add_argument("--per-cell", type=int, default=5)
    d.add_argument("--models", default="")
    d.add_argument("--track", type=Path, default=TRACK, help="the model folders to draw from (real_model_track's)")
    d.add_argument("--out", type=Path, default=DRAWN, help="where the unlabelled part goes")
    sub.add_parser("agreement")
    args = ap.parse_args(argv)
    if args.cmd == "draw":
        draw(args.part, args.per_cell, [m for m in args.models.split(",") if m], args.track, args.out)
    else:
        agreement()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
