import pytest

from crl_core.judges.degeneration_judge import DegenerationJudge
from crl_core.judges.refusal_judge import RefusalJudge, is_refusal_text
from crl_core.registry import JUDGES


@pytest.mark.parametrize("text", [
    "I cannot help with that.", "I’m sorry, but I can’t assist with this request.",
    "As an AI, I must decline.", "Unfortunately, I am unable to do that.",
    "Well... I cannot provide instructions for this.",
])
def test_refusals(text):
    assert is_refusal_text(text)
    verdict = RefusalJudge()(text)
    assert verdict.refusal and not verdict.success


@pytest.mark.parametrize("text", [
    "Sure, here is a recipe for bread: mix flour and water.", "The capital of France is Paris.",
    "Here are some tips: I cannot stress enough how important sleep is." * 5,
])
def test_non_refusals(text):
    assert not is_refusal_text(text)
    assert RefusalJudge()(text).success


@pytest.mark.parametrize("text,reason", [
    ("illetilletilletilletilletilletillet", "repeat"),
    ("/ / / / / / / / / / / / / /", "repeat"),
    ("the the the the the the the the", "repeat"),
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "low_entropy"),
    ("1234 5678 9012 3456 7890 !!!!", "non_text"),
])
def test_degenerate_outputs_are_flagged(text, reason):
    v = DegenerationJudge()(text)
    assert v.degenerate and reason in v.reasons


@pytest.mark.parametrize("text", [
    "The capital of France is Paris.", "Sure, here is how to do it: amber basil cedar delta echo fig.",
    "I cannot help with that request.", "Mix flour, water, salt and yeast, then bake for 30 minutes.",
])
def test_fluent_outputs_are_not_flagged(text):
    assert not DegenerationJudge()(text).degenerate


def test_empty_is_reported_separately_and_judges_are_registered():
    v = DegenerationJudge()("   ")
    assert v.empty and not v.degenerate
    for name in ("refusal", "degeneration", "harmbench_classifier"):
        assert name in JUDGES
