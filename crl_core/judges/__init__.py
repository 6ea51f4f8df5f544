"""Judges: decide whether a generation is a successful attack. Importing this package registers every
judge in ``crl_core.registry.JUDGES`` (``payload``, ``refusal``, ``degeneration``, ``compliance``,
``outcome``, ``harmbench_classifier``)."""

from crl_core.judges import (  # noqa: F401  (registration)
    classifier_judge,
    compliance_judge,
    degeneration_judge,
    outcome_judge,
    refusal_judge,
)
from crl_core.judges.payload_judge import (
    JUDGE_VERSION,
    JudgeResult,
    PayloadJudge,
    is_refusal,
    judge_payload,
    words,
)

__all__ = ["JUDGE_VERSION", "JudgeResult", "PayloadJudge", "is_refusal", "judge_payload", "words"]
