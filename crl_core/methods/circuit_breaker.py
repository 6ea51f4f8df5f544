"""Circuit breakers / representation rerouting (Zou et al., 2024): ReLU(cos) rerouting of harmful
states plus an L2 retain term on the retain rows, with the published coefficient schedule."""

from __future__ import annotations

import dataclasses

from crl_core.losses import circuit_breaker_loss
from crl_core.methods.base import register_method


@register_method("circuit_breaker", section="circuit_breaker", early_exit=True, retain_reads="harmful_layers")
def circuit_breaker(inp):
    cfg = dataclasses.replace(inp.cfg.circuit_breaker, total_steps=inp.cfg.steps,
                              warmup_steps=min(inp.cfg.circuit_breaker.warmup_steps, inp.cfg.steps))
    layers = inp.harmful_layers
    total, parts = circuit_breaker_loss(
        cfg, inp.step, inp.hidden("harmful", layers), inp.hidden("harmful", layers, reference=True),
        inp.mask("harmful"), inp.hidden("retain", layers), inp.hidden("retain", layers, reference=True),
        inp.mask("retain", "all"))
    return total, {f"rr/{k}": float(v) for k, v in parts.items() if k != "total"}
