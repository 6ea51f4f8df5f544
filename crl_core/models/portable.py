"""Portable base-model references for adapters: a repo id and a revision any checkout can resolve offline.

peft writes ``base_model_name_or_path`` into ``adapter_config.json``, and ``AutoPeftModelForCausalLM``
loads the base from it. A local folder there (the committed organism, the converted SmolLM2 cache, a test
model) is an absolute path of the training machine. Instead, a local base gets a project repo id,
``crl-sweep/<name>``, and a revision, the first 40 hex digits of a hash over its files' contents, and its
files are placed in the Hugging Face hub cache under that id and revision (hard links where the file
system allows, copies otherwise). A 40-hex revision is a commit hash to ``huggingface_hub``: cached files
are used without any network call, so ``AutoPeftModelForCausalLM.from_pretrained(adapter_dir)`` works
offline on any machine where the project registered the same base (``crl model register organism``,
``crl model prepare smollm2``, or any ``crl train`` / sweep that saves an adapter on it). Hub ids stay
as they are.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from crl_core.models.loading import resolve_model_path
from crl_core.registry import MODELS

__all__ = ["PortableBase", "portable_base", "register_base", "make_adapter_portable", "PROJECT_NAMESPACE"]

PROJECT_NAMESPACE = "crl-sweep"
_MODEL_FILES = (".json", ".safetensors", ".jinja", ".txt", ".model")


class PortableBase(NamedTuple):
    """A base model's portable name; ``revision`` is None for a hub id."""

    repo_id: str
    revision: str | None


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in _MODEL_FILES)


def _content_revision(folder: Path) -> str:
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in _files(folder))
    return _hash_files(str(folder), stamp)


@functools.lru_cache(maxsize=16)
def _hash_files(folder: str, stamp: tuple) -> str:  # once per process and file state (SmolLM2 is 540 MB)
    h = hashlib.sha256()
    for f in _files(Path(folder)):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:40]


def _repo_name(name: str, folder: Path) -> str:
    spell = getattr(MODELS.get(name), "repo_name", None) if name in MODELS else None  # a named model's own
    if spell is not None:
        return f"{PROJECT_NAMESPACE}/{spell(folder)}"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in folder.name).strip("-.") or "model"
    return f"{PROJECT_NAMESPACE}/{safe[:60]}"


def portable_base(name: str) -> PortableBase:
    """The repo id and revision that stand for model ``name`` (``organism``, ``smollm2``, a folder, a hub id)."""
    path = resolve_model_path(name)
    folder = Path(path)
    if not folder.is_dir():
        return PortableBase(name, None)  # a hub id: portable already
    return PortableBase(_repo_name(name, folder), _content_revision(folder))


def register_base(name: str) -> PortableBase:
    """Place the base model's files in the hub cache under its portable id; idempotent, cheap when done."""
    base = portable_base(name)
    if base.revision is None:
        return base
    folder = Path(resolve_model_path(name))
    repo = _hub_cache() / f"models--{base.repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / base.revision
    done = snapshot / ".crl-complete"
    if not done.is_file():
        tmp = repo / "snapshots" / f".{base.revision}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in _files(folder):
            try:
                os.link(f, tmp / f.name)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(f, tmp / f.name)
        (tmp / ".crl-complete").write_text(json.dumps({"source": name}))
        shutil.rmtree(snapshot, ignore_errors=True)
        tmp.rename(snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(base.revision)
    return base


def make_adapter_portable(adapter_dir: str | Path, base_name: str) -> PortableBase:
    """Point ``adapter_config.json`` at the base's portable id and revision (and register the base here)."""
    try:
        base = register_base(base_name)
    except OSError as exc:  # an unwritable hub cache: the adapter still names no local path
        import warnings

        base = portable_base(base_name)
        warnings.warn(f"could not register the base model in the Hugging Face cache ({exc}); "
                      f"AutoPeftModelForCausalLM needs `crl model register {base_name}` first", stacklevel=2)
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base.repo_id
    config["revision"] = base.revision
    path.write_text(json.dumps(config, indent=2, sort_keys=True))
    return base
