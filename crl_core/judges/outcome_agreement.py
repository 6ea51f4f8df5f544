"""Agreement of the outcome judge with hand labels (crl_core/data/files/judge_labels/README.md).

:func:`judge_rows` replays the judge on labelled rows with each row's stored ``nll`` (the coherence score of
its continuation under the frozen, undefended SmolLM2, recorded by ``bench/judge_labels.py agreement``), so
the agreement is recomputed without the model; :func:`agreement_of` gives precision and recall per label and
the confusion matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

from crl_core.judges.outcome_judge import LABELS, OUTCOME_JUDGE_VERSION, OutcomeJudge

__all__ = ["LABELLED", "read_labelled", "labelled_parts", "blind_part", "judge_rows", "agreement_of"]

LABELLED = Path(__file__).resolve().parents[1] / "data" / "files" / "judge_labels"


def blind_part(version: str | None = None) -> str:
    """The held-out part a judge version is measured on (``outcome-v3`` -> ``heldout-v3``): drawn and read
    only after that version's rules were frozen. An earlier version's blind part is development data for the
    next one."""
    return "heldout-" + (version or OUTCOME_JUDGE_VERSION).split("-")[-1]


def labelled_parts() -> list[str]:
    """Every labelled part on disk (``dev``, ``heldout-v2``, ...)."""
    return sorted(p.stem for p in LABELLED.glob("*.jsonl"))


def read_labelled(part: str) -> list[dict]:
    path = LABELLED / f"{part}.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _confusion(rows: list[dict], predicted: list[str]) -> dict[str, dict[str, int]]:
    confusion = {t: {p: 0 for p in LABELS} for t in LABELS}
    for r, p in zip(rows, predicted):
        confusion[r["label"]][p] += 1
    return confusion


def _pr(confusion: dict[str, dict[str, int]], label: str) -> dict:
    tp = confusion[label][label]
    pred = sum(row[label] for row in confusion.values())
    true = sum(confusion[label].values())
    return {"precision": round(tp / pred, 4) if pred else None, "recall": round(tp / true, 4) if true else None,
            "n_true": true, "n_predicted": pred}


def agreement_of(rows: list[dict], predicted: list[str]) -> dict:
    """Accuracy, per-label precision/recall and the confusion matrix (``confusion[hand][judge]``). ``harmful``
    is measured on the attacked (harmful-prompt) rows only, since ASR is the only use of that label; the
    other labels on every row, benign answers included (a benign answer's ``harmful`` means "an answer")."""
    confusion = _confusion(rows, predicted)
    attacked = [(r, p) for r, p in zip(rows, predicted) if r["attack"] != "benign"]
    harmful = _pr(_confusion([r for r, _ in attacked], [p for _, p in attacked]), "harmful")
    return {"n": len(rows), "n_attacked": len(attacked),
            "accuracy": round(sum(r["label"] == p for r, p in zip(rows, predicted)) / len(rows), 4),
            "harmful": harmful, "broken": _pr(confusion, "broken"), "refusal": _pr(confusion, "refusal"),
            "off_task": _pr(confusion, "off_task"), "confusion": confusion,
            "confusion_axes": "confusion[hand label][judge label], every row"}


def judge_rows(rows: list[dict]) -> list[str]:
    """The outcome judge's label of each row, with coherence replayed from the row's stored ``nll``."""
    labels = []
    for r in rows:
        judge = OutcomeJudge(scorer=lambda prompt, prefix, cont, nll=r["nll"]: nll)
        labels.append(judge(r["output"], prompt=r["prompt"], prefix=r["prefix"]).label)
    return labels
