"""The refusal base's folder and errors (the build itself needs SmolLM2 and minutes: bench/ and the results)."""

import pytest

from crl_core.models import ModelLoadError
from crl_core.models.loading import resolve_model_path


def test_not_built_yet_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CRL_CACHE_DIR", str(tmp_path))  # an empty cache: nothing prepared
    with pytest.raises(ModelLoadError, match="crl model prepare smollm2-refusal"):
        resolve_model_path("smollm2-refusal")


def test_building_without_smollm2_says_what_to_run_first(monkeypatch):
    from crl_core.models import refusal_base, smollm2

    monkeypatch.setattr(smollm2, "cached_smollm2_dir", lambda: None)
    with pytest.raises(ModelLoadError, match="run `crl model prepare smollm2` first"):
        refusal_base.prepare_refusal_base(log=lambda s: None)


def test_the_folder_key_follows_the_recipe(monkeypatch, tmp_path):
    from crl_core.models import refusal_base

    base = tmp_path / "smollm2-135m-instruct-0123456789abcdef"
    key = refusal_base.refusal_base_key(base)
    monkeypatch.setitem(refusal_base.RECIPE["train"], "steps", 7)
    assert refusal_base.refusal_base_key(base) != key and len(key) == 16
