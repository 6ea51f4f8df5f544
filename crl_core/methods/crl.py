"""CRL (docs/method.md §3): α·benign triplet + β·harmful triplet + ε·KL retain.

The benign term runs on ``benign_layers`` with the harmful centroid of those layers (computed from the
current -- possibly mined -- harmful states); the harmful term runs on ``harmful_layers``.
"""

from __future__ import annotations

import torch

from crl_core.losses import RunningCentroid, kl_retain_loss, resolve_centroid, triplet_loss
from crl_core.methods.base import register_method


def retain_kl(inp) -> torch.Tensor:
    sl = inp.rows["retain"]
    return kl_retain_loss(inp.cur_logits, inp.ref_logits, inp.batch["attention_mask"][sl].float(),
                          temperature=inp.cfg.retain.kl_temperature)


@register_method("crl", section="triplet", mining=True, early_exit=True)
def crl_loss(inp):
    cfg = inp.cfg.triplet
    h_mask, b_mask = inp.mask("harmful"), inp.mask("benign")
    running = None
    if cfg.centroid == "running":
        running = inp.state.setdefault("running_centroid", RunningCentroid(cfg.centroid_momentum))
    benign_centroid = resolve_centroid(cfg, inp.hidden("harmful", inp.benign_layers), h_mask, running=running)
    pos = {layer: i for i, layer in enumerate(inp.benign_layers)}
    if all(layer in pos for layer in inp.harmful_layers):
        centroid = benign_centroid[[pos[layer] for layer in inp.harmful_layers]]
    else:
        centroid = resolve_centroid(cfg, inp.hidden("harmful", inp.harmful_layers), h_mask)
    rep, parts = triplet_loss(cfg, inp.hidden("benign", inp.benign_layers),
                              inp.hidden("benign", inp.benign_layers, reference=True), b_mask,
                              inp.hidden("harmful", inp.harmful_layers),
                              inp.hidden("harmful", inp.harmful_layers, reference=True), h_mask,
                              centroid, benign_centroid=benign_centroid)
    kl = retain_kl(inp)
    total = rep + inp.cfg.retain.kl_weight * kl
    out = {f"triplet/{k}": float(v) for k, v in parts.items() if k != "total"}
    out["kl"] = float(kl.detach())
    return total, out
