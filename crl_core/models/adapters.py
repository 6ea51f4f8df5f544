"""Save and load LoRA adapters (peft, safetensors) with a record of the base model they belong to.

``save_adapter`` writes the peft folder plus ``crl_adapter.json`` holding the base model's name and
fingerprint (architecture numbers and a hash of the first rows of its embedding table), and points
``adapter_config.json`` at the base's portable id (``crl_core.models.portable``), so
``AutoPeftModelForCausalLM.from_pretrained(folder)`` works offline on any checkout that registered it. ``load_adapter``
refuses an adapter whose recorded fingerprint differs from the model it is loaded onto, and turns
peft's shape-mismatch errors into one clear message. A plain ``peft.PeftModel.from_pretrained`` can
load every adapter written here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from crl_core.models.loading import ModelLoadError
from crl_core.models.portable import make_adapter_portable

__all__ = ["base_fingerprint", "save_adapter", "load_adapter", "ADAPTER_META"]

ADAPTER_META = "crl_adapter.json"


def base_fingerprint(model) -> str:
    """Identity of a base model: architecture numbers + a hash of its first embedding rows."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    keys = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
            "num_key_value_heads", "vocab_size")
    arch = {k: getattr(cfg, k, None) for k in keys}
    emb = base.get_input_embeddings().weight
    with torch.no_grad():
        rows = emb[: min(8, emb.shape[0])].detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(json.dumps(arch, sort_keys=True).encode())
    h.update(rows.numpy().tobytes())
    return h.hexdigest()[:16]


def save_adapter(peft_model, folder: str | Path, base_name: str, extra: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(folder, safe_serialization=True)

    base = make_adapter_portable(folder, base_name)  # no absolute path of this machine in adapter_config.json
    meta = {"base_model": base_name if not Path(base_name).is_absolute() else base.repo_id,
            "base_repo_id": base.repo_id, "base_revision": base.revision,
            "base_fingerprint": base_fingerprint(peft_model), **(extra or {})}
    (folder / ADAPTER_META).write_text(json.dumps(meta, indent=2))
    return folder


def load_adapter(model, folder: str | Path, is_trainable: bool = False):
    """Wrap ``model`` with the peft adapter in ``folder`` after checking it was made for this base."""
    from peft import PeftModel

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"adapter folder not found: {folder}")
    if not (folder / "adapter_config.json").is_file():
        raise ModelLoadError(f"{folder} is not a peft adapter folder (no adapter_config.json)")
    meta_path = folder / ADAPTER_META
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        want, have = meta.get("base_fingerprint"), base_fingerprint(model)
        if want and want != have:
            raise ModelLoadError(f"adapter {folder} was made for another base model ('{meta.get('base_model')}', "
                                 f"fingerprint {want}); this model's fingerprint is {have}")
    try:
        return PeftModel.from_pretrained(model, str(folder), is_trainable=is_trainable)
    except (RuntimeError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0][:300]
        raise ModelLoadError(f"adapter {folder} does not fit this base model (made for another one?): {msg}") from None
