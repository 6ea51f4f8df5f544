"""The refusal base as a named model: its folder key and the not-built error (the build: tests/crl_core/training)."""

import pytest

from crl_core.models import ModelLoadError
from crl_core.models.loading import resolve_model_path


def test_not_built_yet_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CRL_CACHE_DIR", str(tmp_path))  # an empty cache: nothing prepared
    with pytest.raises(ModelLoadError, match="crl model prepare smollm2-refusal"):
        resolve_model_path("smollm2-refusal")


def test_the_folder_key_follows_the_recipe(monkeypatch, tmp_path):
    from crl_core.models import refusal_base

    base = tmp_path / "smollm2-135m-instruct-0123456789abcdef"
    key = refusal_base.refusal_base_key(base)
    monkeypatch.setitem(refusal_base.RECIPE["train"], "steps", 7)
    assert refusal_base.refusal_base_key(base) != key and len(key) == 16
