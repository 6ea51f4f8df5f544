"""RepBend (docs/method.md §7): α·L2 benign − β·L2 harmful + γ·harmful diversity + ε·KL retain."""

from __future__ import annotations

import torch

from crl_core.losses import repbend_loss
from crl_core.methods.base import register_method
from crl_core.methods.crl import retain_kl


@register_method("repbend", section="repbend", early_exit=True)
def repbend(inp):
    cfg = inp.cfg.repbend
    last = inp.mask("harmful", "request_last")  # [B, T], one position per row
    harm_all = inp.hidden("harmful", inp.harmful_layers)  # [L, B, T, d]
    last_reps = torch.einsum("lbtd,bt->lbd", harm_all, last.to(harm_all.dtype))
    total, parts = repbend_loss(cfg, inp.hidden("benign", inp.benign_layers),
                                inp.hidden("benign", inp.benign_layers, reference=True), inp.mask("benign"),
                                harm_all, inp.hidden("harmful", inp.harmful_layers, reference=True),
                                inp.mask("harmful"), last_reps)
    kl = retain_kl(inp)
    out = {f"repbend/{k}": float(v) for k, v in parts.items() if k != "total"}
    out["kl"] = float(kl.detach())
    return total + cfg.epsilon * kl, out
