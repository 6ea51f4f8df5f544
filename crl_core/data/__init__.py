"""Prompt sets: vendored JSONL (harmful, benign QA, over-refusal, pairs, anchors) and hub datasets."""

from crl_core.data.catalog import FILES_DIR, HUB_SETS, PROMPT_SETS
from crl_core.data.loading import (
    SPLITS,
    DataError,
    SplitConfig,
    content_hash,
    describe_sets,
    load_prompt_splits,
    normalize_text,
    read_jsonl,
    split_hashes,
)
from crl_core.data.responses import SMOLLM2_OPENING, SMOLLM2_REFUSAL

__all__ = ["FILES_DIR", "HUB_SETS", "PROMPT_SETS", "SPLITS", "DataError", "SplitConfig", "content_hash",
           "describe_sets", "load_prompt_splits", "normalize_text", "read_jsonl", "split_hashes",
           "SMOLLM2_OPENING", "SMOLLM2_REFUSAL"]
