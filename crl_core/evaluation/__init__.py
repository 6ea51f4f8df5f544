"""Evaluate a model (optionally with a LoRA adapter) under attacks, with a spec saved beside every number.

One config (:class:`EvaluationConfig`, ``config.py``), registered presets (``presets.py``: ``organism``,
``organism-sweep``, ``smollm2``, ``proxy``), one runner (``runner.py``), the prompt sets and payloads an
evaluation uses (``prompts.py``), the proxy evaluation (``proxy.py``) and the versioned report
(``report.py``, metrics from ``crl_core.metrics``). Attacks and judges are chosen by their registered
names (``crl_core/attacks``, ``crl_core/judges``); ``embedding`` attacks may name a preset after a colon
(``embedding:strong``).
"""

from crl_core.evaluation.config import (
           EVALUATION_VERSION,
           EvaluationConfig,
           GCGBudget,
           LatentBudget,
           evaluation_config_for,
)
from crl_core.evaluation.report import REPORT_SCHEMA, REPORT_SCHEMA_VERSION, format_markdown, git_commit
from crl_core.evaluation.runner import run_evaluation

__all__ = ["EVALUATION_VERSION", "EvaluationConfig", "GCGBudget", "LatentBudget", "evaluation_config_for",
           "REPORT_SCHEMA", "REPORT_SCHEMA_VERSION", "format_markdown", "git_commit", "run_evaluation"]
