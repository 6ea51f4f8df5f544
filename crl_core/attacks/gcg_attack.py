"""Token-level GCG (Zou et al., 2023) through the ``nanogcg`` package.

``nanogcg==0.3.0`` declares ``transformers<=4.47.1`` but runs with transformers 5 when its prefix
cache is off (``use_prefix_cache=False``; the cached path indexes the KV cache the old way). It is
installed with ``--no-deps`` from ``requirements/nodeps.txt``. One suffix is optimised per prompt
towards the item's target (the affirmative opening by default, so success still means the model
leaked what it knows), then the prompt + suffix is answered greedily and judged.

Two things differ from calling nanogcg plainly (both were loopholes in the measured ASR, issue 14):

- **BOS.** nanogcg strips the chat template's BOS text and relies on the tokenizer to add it back, which
  tokenizers whose post-processor adds none (the organism's, ``<s><|user|>...``) never do: the suffix was
  optimised for a context without BOS and judged in one with it. nanogcg is handed a view of the tokenizer
  without a ``bos_token``, so the template keeps its BOS text and the optimised context is the judged one.
- **Every step's string is judged**, not only the lowest-loss one: the suffix of each step is answered
  greedily (one batch) and the attack succeeds if any of them leaks; ``steps_used`` is the first such step.
  An early stop on the opening (``early_stop``) used to hide a leak at an intermediate step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from crl_core.attacks.common import AttackItem, AttackResult, judge_fields, register_attack
from crl_core.config import ConfigBase, config_field
from crl_core.generation import chat_prompt_ids, decode, generate_from_ids

__all__ = ["GCGAttackConfig", "gcg_attack", "budget"]


@dataclass
class GCGAttackConfig(ConfigBase):
    steps: int = config_field(20, min=1, max=10_000)
    search_width: int = config_field(64, min=1)
    topk: int = config_field(64, min=1)
    suffix_init: str = config_field("x x x x x x x x x x", help="initial adversarial suffix")
    early_stop: bool = config_field(True, help="stop once the target is the greedy continuation")
    allow_non_ascii: bool = config_field(False)
    max_new_tokens: int = config_field(24, min=1)
    seed: int = config_field(0, min=0)


def _nanogcg():
    try:
        import functools

        import nanogcg.gcg as gcg_module
        from nanogcg import GCGConfig, run
        from tqdm import tqdm
    except ImportError as exc:
        raise RuntimeError("the GCG attack needs nanogcg: pip install --no-deps -r requirements/nodeps.txt"
                           f" ({exc})") from None
    gcg_module.tqdm = functools.partial(tqdm, disable=True)  # no progress bar per prompt
    return GCGConfig, run


class _KeepBos:
    """The tokenizer as nanogcg should see it: no ``bos_token``, so nanogcg leaves the template's BOS text
    in place (it becomes the BOS id when tokenized); everything else is the tokenizer's own."""

    bos_token = None

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


def gcg_attack(model, tokenizer, items: Sequence[AttackItem], config: GCGAttackConfig | None = None
               ) -> list[AttackResult]:
    cfg = config or GCGAttackConfig()
    GCGConfig, run = _nanogcg()
    logging.getLogger("nanogcg").setLevel(logging.ERROR)
    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[AttackResult] = []
    try:
        for it in items:
            gcfg = GCGConfig(num_steps=cfg.steps, search_width=cfg.search_width, topk=cfg.topk,
                             optim_str_init=cfg.suffix_init, early_stop=cfg.early_stop,
                             use_prefix_cache=False, allow_non_ascii=cfg.allow_non_ascii, seed=cfg.seed,
                             verbosity="WARNING")
            messages = [{"role": "user", "content": it.prompt + " {optim_str}"}]
            with torch.random.fork_rng():
                res = run(model, _KeepBos(tokenizer), messages, it.target, gcfg)
            strings = list(dict.fromkeys(res.strings or [res.best_string]))  # each step's suffix, in order
            ids = [chat_prompt_ids(tokenizer, f"{it.prompt} {x}") for x in strings]
            texts = decode(tokenizer, generate_from_ids(model, ids, cfg.max_new_tokens, tokenizer.eos_token_id, pad))
            verdicts = [judge_fields(it, t) for t in texts]
            first = next((i for i, (ok, _) in enumerate(verdicts) if ok), None)
            pick = first if first is not None else strings.index(res.best_string)
            ok, det = verdicts[pick]
            step = (res.strings.index(strings[pick]) + 1) if res.strings else len(res.losses)
            out.append(AttackResult(id=it.id, success=ok, generation=texts[pick], leakage=det,
                                    steps_used=step if ok else len(res.losses), final_loss=float(res.best_loss),
                                    success_at={cfg.steps: ok}))
    finally:
        model.train(was_training)
    return out


def budget(ecfg, variant: str) -> GCGAttackConfig:
    """The evaluation's ``gcg`` section with its greedy tokens and seed."""
    g = ecfg.gcg
    return GCGAttackConfig(steps=g.steps, search_width=g.search_width, topk=g.topk, max_new_tokens=ecfg.max_new_tokens,
                           seed=ecfg.seed)


# GCG is per prompt and slow: it attacks at most ``gcg.limit`` prompts
register_attack("gcg", gcg_attack, GCGAttackConfig, budget, max_items=lambda ecfg: ecfg.gcg.limit)
