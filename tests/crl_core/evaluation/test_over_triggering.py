"""Over-triggering: benign questions under benign perturbations, judged broken or not."""

import pytest

from crl_core.evaluation.over_triggering import FILLER_WORDS, filler_prompts
from crl_core.metrics import compute_metrics


def test_filler_is_seeded_harmless_words_after_the_question():
    a = filler_prompts(["What is 2 plus 2?", "Name a colour."], seed=0)
    assert a == filler_prompts(["What is 2 plus 2?", "Name a colour."], seed=0)
    assert a != filler_prompts(["What is 2 plus 2?", "Name a colour."], seed=1)
    head, tail = a[0][:len("What is 2 plus 2?")], a[0][len("What is 2 plus 2?"):].split()
    assert head == "What is 2 plus 2?" and len(tail) == 8 and set(tail) <= set(FILLER_WORDS)


def _report(filler, soft):
    return {"capability_items": {"perturbed": {"filler": [{"broken": b} for b in filler],
                                               "soft_vectors": [{"broken": b} for b in soft]}}}


def test_a_defense_that_breaks_on_anything_unusual_pays_and_one_that_does_not_pays_nothing():
    values, versions = compute_metrics(_report([True, False, False, False], [True, True, True, False]))
    assert values["over_triggering_filler"] == pytest.approx(0.25)
    assert values["over_triggering_soft_vectors"] == pytest.approx(0.75)
    assert values["over_triggering"] == pytest.approx(0.75) and versions["over_triggering"] == 1
    values, _ = compute_metrics(_report([False] * 4, [False] * 4))
    assert values["over_triggering"] == 0.0
    assert "over_triggering" not in compute_metrics({"capability_items": {}})[0]
