"""Load prompt sets as ``datasets.DatasetDict`` with disjoint train/val/test splits and content hashes.

Rules, in order:

1. Every JSONL line is validated (JSON object, required fields, unique ids); an error names the file
   and the line.
2. Texts are normalised (NFKC, lower-case, whitespace collapsed, outer punctuation stripped) and
   deduplicated within a set (first occurrence wins). Benign sets also drop any text that appears in
   the harmful set, so a prompt never carries both labels.
3. The split of a row is a pure function of ``(seed, normalised text)``: the same text lands in the
   same split in every set, so no prompt can be trained on in one set and tested in another, and
   adding rows never moves existing ones.
4. Each split carries a sha256 content hash (:func:`split_hashes`).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crl_core.config import ConfigBase, ConfigError, config_field
from crl_core.data.catalog import FILES_DIR, HUB_SETS, PROMPT_SETS, PromptSetSpec
from crl_core.hub import datasets_offline

__all__ = ["DataError", "SplitConfig", "normalize_text", "read_jsonl", "load_prompt_splits",
           "split_hashes", "content_hash", "assign_split", "SPLITS", "describe_sets"]

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data file or split is missing, malformed or empty."""


@dataclass
class SplitConfig(ConfigBase):
    seed: int = config_field(0, help="seed of the split assignment", min=0)
    val_fraction: float = config_field(0.1, help="share of rows in the validation split", min=0.0, max=0.9)
    test_fraction: float = config_field(0.2, help="share of rows in the test split", min=0.0, max=0.9)

    def validate(self) -> None:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("split: val_fraction + test_fraction must leave rows for training")


_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _WS.sub(" ", text).strip()
    return text.strip(string.punctuation + " ")


def read_jsonl(path: str | Path, required: Iterable[str] = ("id",)) -> list[dict[str, Any]]:
    """Strictly parse a JSONL file: every line one object with the required fields, unique ids."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    required = tuple(required)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                raise DataError(f"{path}:{lineno}: blank line (one JSON object per line expected)")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for key in required:
                if key not in row:
                    raise DataError(f"{path}:{lineno}: missing field '{key}'")
                val = row[key]
                if isinstance(val, list):
                    continue
                if not isinstance(val, str) or not val.strip():
                    raise DataError(f"{path}:{lineno}: field '{key}' must be a non-empty string")
            rid = str(row.get("id", lineno))
            if rid in seen:
                raise DataError(f"{path}:{lineno}: duplicate id '{rid}' (first on line {seen[rid]})")
            seen[rid] = lineno
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def assign_split(norm_text: str, cfg: SplitConfig) -> str:
    digest = hashlib.sha256(f"{cfg.seed}\x00{norm_text}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < cfg.test_fraction:
        return "test"
    if u < cfg.test_fraction + cfg.val_fraction:
        return "val"
    return "train"


def content_hash(rows: Iterable[dict[str, Any]]) -> str:
    lines = sorted(json.dumps(r, sort_keys=True, ensure_ascii=False, default=str) for r in rows)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _load_rows(spec: PromptSetSpec, files_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in spec.files:
        rows.extend(read_jsonl(files_dir / name, spec.required))
    return rows


def _harmful_texts(files_dir: Path) -> set[str]:
    spec = PROMPT_SETS["harmful"]
    return {normalize_text(r[spec.text_field]) for r in _load_rows(spec, files_dir)}


def _resolve(name: str) -> PromptSetSpec:
    if name in PROMPT_SETS:
        return PROMPT_SETS[name]
    path = Path(name)
    if name.endswith(".jsonl") or path.suffix == ".jsonl":
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        return PromptSetSpec(path.stem, (str(path.resolve()),), ("id", "prompt"),
                             description=f"user file {path}")
    import difflib

    close = difflib.get_close_matches(name, list(PROMPT_SETS) + [f"hub:{k}" for k in HUB_SETS], n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise DataError(f"unknown prompt set '{name}'{hint}; known: {', '.join(sorted(PROMPT_SETS))}, "
                    f"hub:{{{','.join(sorted(HUB_SETS))}}}, or a path to a .jsonl file")


def _load_hub(name: str, cfg: SplitConfig):
    key = name.split(":", 1)[1]
    if key not in HUB_SETS:
        raise DataError(f"unknown hub set '{key}'; known: {', '.join(sorted(HUB_SETS))}")
    spec = HUB_SETS[key]
    if datasets_offline():
        raise DataError(f"prompt set '{name}' is the hub dataset {spec.hub_id}, and this machine is offline "
                        "(HF_HUB_OFFLINE=1); use a vendored set or a local .jsonl file")
    import datasets

    ds = datasets.load_dataset(spec.hub_id, spec.config, split=spec.split)
    ds = ds.map(lambda r: {"_norm": normalize_text(str(r.get(spec.text_field, "")))})
    ds = ds.map(lambda r: {"_split": assign_split(r["_norm"], cfg)})
    return datasets.DatasetDict({s: ds.filter(lambda r, s=s: r["_split"] == s).remove_columns(["_split"])
                                 for s in SPLITS})


def load_prompt_splits(name: str, split: SplitConfig | None = None, files_dir: str | Path | None = None):
    """Load a prompt set as a DatasetDict with ``train``, ``val`` and ``test`` splits.

    ``name`` is a vendored set (see ``crl data info``), ``hub:<set>`` on a connected machine, or a
    path to a JSONL file whose rows have ``id`` and ``prompt``. Each row gains ``norm_text``.
    """
    import datasets

    cfg = split or SplitConfig()
    if name.startswith("hub:"):
        return _load_hub(name, cfg)
    spec = _resolve(name)
    fdir = Path(files_dir) if files_dir is not None else FILES_DIR
    rows = _load_rows(spec, fdir)
    banned = _harmful_texts(fdir) if spec.role == "benign" and spec.name in PROMPT_SETS else set()
    kept: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    for row in rows:
        norm = normalize_text(row[spec.text_field])
        if not norm or norm in seen or norm in banned:
            continue
        seen.add(norm)
        out = {k: v for k, v in row.items()}
        out["norm_text"] = norm
        kept[assign_split(norm, cfg)].append(out)
    for s in SPLITS:
        if not kept[s]:
            raise DataError(f"split '{s}' of prompt set '{spec.name}' is empty ({len(seen)} rows after "
                            f"deduplication; val_fraction={cfg.val_fraction}, test_fraction={cfg.test_fraction})")
    columns = sorted({k for s in SPLITS for r in kept[s] for k in r})
    dd = datasets.DatasetDict()
    for s in SPLITS:
        normalised = [{c: r.get(c) for c in columns} for r in kept[s]]
        ds = datasets.Dataset.from_list(normalised)
        ds.info.description = f"crl-sweep prompt set '{spec.name}' split '{s}' sha256={content_hash(kept[s])}"
        dd[s] = ds
    return dd


def split_hashes(dd) -> dict[str, str]:
    """sha256 content hash of each split (order-independent)."""
    return {s: content_hash(dd[s].to_list()) for s in dd}


def describe_sets(split: SplitConfig | None = None) -> list[dict[str, Any]]:
    """One summary row per vendored set: counts per split, split hashes, files and licenses."""
    out = []
    for name, spec in PROMPT_SETS.items():
        dd = load_prompt_splits(name, split)
        hashes = split_hashes(dd)
        out.append({"name": name, "description": spec.description, "files": list(spec.files),
                    **{f"n_{s}": len(dd[s]) for s in SPLITS}, **{f"sha_{s}": hashes[s][:12] for s in SPLITS}})
    return out
