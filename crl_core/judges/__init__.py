"""Judges: decide whether a generation is a successful attack. Importing this package registers every
judge in ``crl_core.registry.JUDGES`` (``payload``, ``refusal``, ``degeneration``, ``compliance``,
``harmbench_classifier``)."""

from crl_core.judges import classifier_judge, compliance_judge, degeneration_judge, refusal_judge  # noqa: F401
from crl_core.judges.payload_judge import (
    JUDGE_VERSION,
    JudgeResult,
    PayloadJudge,
    is_refusal,
    judge_payload,
    words,
)

__all__ = ["JUDGE_VERSION", "JudgeResult", "PayloadJudge", "is_refusal", "judge_payload", "words"]
