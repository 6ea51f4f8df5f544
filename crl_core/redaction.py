"""Secrets kept out of everything the project logs or prints: MLflow params, tags, artifacts, error messages.

A value is a secret when its key names a credential (``token``, ``password``, ``api_key``, ...), when it has a
known token format (Hugging Face, OpenAI, GitHub, Slack, AWS key ids, private keys), or when it is a
high-entropy string: one whitespace-free word of >= 20 characters from a token alphabet, mixing lower case,
upper case and digits, with a piece longer than 12 characters that is not CamelCase words (so model ids such as
``HuggingFaceTB/SmolLM2-135M-Instruct`` stay) and >= 3.5 bits of entropy per character. Allowed as they are: hex
strings and UUIDs (the project's config hashes, sha256s, run and trial ids) and paths starting with ``/``.
A URI's password (``scheme://user:password@host``) is replaced by ``***``; the rest of the URI is kept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

__all__ = ["is_secret", "looks_like_secret", "redact_uri", "redact_text", "loggable_params", "redact_secrets",
           "REDACTED"]

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"(^|[._-])(token|secret|password|passwd|api[_-]?key|access[_-]?key|credentials?|auth)$",
                         re.IGNORECASE)
_KNOWN_FORMATS = re.compile(r"\b(hf_[A-Za-z0-9]{8,}|sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{8,}|github_pat_\w+|"
                            r"(AKIA|ASIA)[0-9A-Z]{12,}|xox[abprs]-[\w-]+)|-----BEGIN [A-Z ]*PRIVATE KEY")
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>(?!\*\*\*@)[^@\s/]+)@")
_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9+/=_-]+")
_CAMEL_WORDS = re.compile(r"([A-Z][a-z]+)+[A-Z]{0,3}")  # HuggingFaceTB, LlamaForCausalLM
_HEX_OR_UUID = re.compile(r"[0-9a-fA-F]+|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _entropy(word: str) -> float:
    counts = Counter(word)
    return -sum(c / len(word) * math.log2(c / len(word)) for c in counts.values())


def _high_entropy(word: str) -> bool:
    if len(word) < 20 or word.startswith("/") or not _TOKEN_ALPHABET.fullmatch(word) or _HEX_OR_UUID.fullmatch(word):
        return False
    if sum(bool(re.search(p, word)) for p in ("[a-z]", "[A-Z]", "[0-9]")) < 3:
        return False
    if all(len(piece) <= 12 or _CAMEL_WORDS.fullmatch(piece) for piece in re.split(r"[/_.-]", word)):
        return False
    return _entropy(word) >= 3.5


def looks_like_secret(value: Any) -> bool:
    """True for a string with a known token format, a URI password, or a high-entropy word in it."""
    if not isinstance(value, str):
        return False
    if _KNOWN_FORMATS.search(value) or _URI_PASSWORD.search(value):
        return True
    return any(_high_entropy(w.strip("'\"()[]{},;")) for w in value.split())


def is_secret(key: str, value: Any) -> bool:
    return bool(_SECRET_KEY.search(key)) or looks_like_secret(value)


def redact_uri(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host`` anywhere in ``text``."""
    return _URI_PASSWORD.sub(lambda m: f"{m['head']}***@", text)


def redact_text(text: str) -> str:
    """A message safe to print: URI passwords masked, token-like words replaced by ``<redacted>``."""
    text = _KNOWN_FORMATS.sub(REDACTED, redact_uri(text))
    return " ".join(REDACTED if _high_entropy(w.strip("'\"()[]{},;")) else w for w in text.split(" "))


def loggable_params(flat: dict[str, Any]) -> dict[str, str]:
    """Flattened params safe to log: credential keys and secret-looking values are dropped; a URI keeps
    everything but its password."""
    out = {}
    for key, value in flat.items():
        if isinstance(value, str) and _URI_PASSWORD.search(value) and not _SECRET_KEY.search(key):
            value = redact_uri(value)
        if not is_secret(key, value):
            out[key] = str(value)[:6000]
    return out


def redact_secrets(data: Any, key: str = "") -> Any:
    """A copy of a nested config with credential-looking entries replaced by ``<redacted>`` (URIs masked)."""
    if isinstance(data, dict):
        return {k: redact_secrets(v, f"{key}.{k}" if key else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_secrets(v, key) for v in data]
    if isinstance(data, str) and _URI_PASSWORD.search(data) and not _SECRET_KEY.search(key):
        data = redact_uri(data)
    return REDACTED if is_secret(key, data) else data
