"""The refusal-base build's errors (the build itself needs SmolLM2 and minutes: bench/ and the results)."""

import pytest

from crl_core.models import ModelLoadError


def test_building_without_smollm2_says_what_to_run_first(monkeypatch):
    from crl_core.models import smollm2
    from crl_core.training import refusal_base

    monkeypatch.setattr(smollm2, "cached_smollm2_dir", lambda: None)
    with pytest.raises(ModelLoadError, match="run `crl model prepare smollm2` first"):
        refusal_base.prepare_refusal_base(log=lambda s: None)
