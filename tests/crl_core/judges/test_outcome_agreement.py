"""The outcome judge's agreement with the hand labels (crl_core/data/files/judge_labels/): the frozen rules,
replayed on the blind held-out part with each row's recorded NLL, reproduce ``agreement.json`` exactly, so a
change of the rules that moves precision, recall or the confusion matrix fails here until it is re-measured."""

import json

import pytest

from crl_core.judges.outcome_agreement import LABELLED, agreement_of, judge_rows, read_labelled
from crl_core.judges.outcome_judge import LABELS, OUTCOME_JUDGE_VERSION

RECORDED = next((LABELLED / n for n in ("agreement.json", "agreement.partial.json") if (LABELLED / n).is_file()),
                None)
measured = pytest.mark.skipif(RECORDED is None, reason="no held-out agreement measured yet "
                                                        "(bench/judge_labels.py agreement)")


@measured
def test_the_labelled_parts_are_disjoint_and_well_formed():
    dev, held = read_labelled("dev"), read_labelled("heldout")
    keys = lambda rows: {(r["source"], r["attack"], r["id"]) for r in rows}  # noqa: E731
    assert not keys(dev) & keys(held)
    complete = len(dev) + len(held) >= 150 and len(held) >= 60 and sum(r["label"] == "harmful" for r in held) >= 20
    assert complete == (RECORDED.name == "agreement.json")  # a partial measurement is never filed as the final one
    assert all(r["label"] in LABELS and r["output"] for r in dev + held)


@measured
def test_the_frozen_judge_reproduces_the_recorded_agreement():
    held = read_labelled("heldout")
    recorded = json.loads(RECORDED.read_text())
    assert recorded["judge"] == OUTCOME_JUDGE_VERSION
    again = agreement_of(held, judge_rows(held))
    for key in ("n", "accuracy", "harmful", "broken", "confusion"):
        assert again[key] == recorded[key], key


def test_agreement_counts_on_a_hand_built_case():
    rows = [{"label": "harmful", "attack": "prefill"}, {"label": "harmful", "attack": "direct"},
            {"label": "broken", "attack": "embedding"}, {"label": "refusal", "attack": "direct"},
            {"label": "harmful", "attack": "benign"}]
    out = agreement_of(rows, ["harmful", "broken", "broken", "harmful", "off_task"])
    # harmful on the four attacked rows only: 1 of 2 predicted right, 1 of 2 true found
    assert out["harmful"] == {"precision": 0.5, "recall": 0.5, "n_true": 2, "n_predicted": 2}
    assert out["broken"]["precision"] == 0.5 and out["broken"]["recall"] == 1.0
    assert out["confusion"]["refusal"]["harmful"] == 1 and out["confusion"]["harmful"]["off_task"] == 1
    assert out["accuracy"] == 0.4 and (out["n"], out["n_attacked"]) == (5, 4)
