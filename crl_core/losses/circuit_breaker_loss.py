"""Circuit breakers / representation rerouting (RR; Zou et al. 2024), the CB baseline of docs/method.md §6.

* **Reroute** (harmful data, target layers): ``mean ReLU(cos(h_θ, h_0))`` over valid (layer, row,
  token) positions — drive harmful states orthogonal (or opposite) to what the frozen model produced.
* **Retain** (retain data, usually all layers): ``mean ‖h_θ − h_0‖₂`` over valid positions — keep benign
  states where they were. ``relative=True`` divides by ``‖h_0‖₂`` (the scale-normalised L2 of the
  organism notes, gotcha 3).
* **Schedule** (published): with ``t`` the optimizer step and ``T = total_steps``,
  ``c_reroute = α·(1 − t/(2T))`` and ``c_retain = α·t/(2T)``: reroute starts at α and falls to α/2,
  retain rises from 0 to α/2. Loss = ``c_reroute·L_reroute + c_retain·L_retain``.

Differences from the published code, all deliberate:

* ``warmup_steps``: for ``t < warmup_steps`` the retain coefficient is 0 (reroute follows the
  schedule). From a zero-initialised LoRA the adapted and frozen states are identical, ReLU(cos) sits at
  its maximum 1 with zero gradient, and in fp32 the retain term dominates Adam's normalisation, so RR
  never moves (organism notes, gotcha 1); a few retain-free steps break the symmetry. ``warmup_steps=0``
  is the published behaviour.
* The published ``p = ceil(micro_step / GA) / (2·max_steps)`` counts optimizer steps from 1; here the
  caller passes the optimizer step ``t`` directly (0-based or 1-based, its choice) and ``t`` is clamped
  to ``[0, T]``.
* Retain: the published code averages over *all* positions, pads included (as zeros), so the pad
  fraction dilutes the term; here pads are excluded (mask-weighted mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from crl_core.config import ConfigBase, ConfigError, config_field
from crl_core.losses.distances import check_hidden, cosine_similarity, distance, masked_mean

__all__ = ["CircuitBreakerConfig", "rr_coefficients", "reroute_loss", "retain_l2_loss",
           "circuit_breaker_loss"]


@dataclass
class CircuitBreakerConfig(ConfigBase):
    """Coefficient schedule and retain distance of representation rerouting."""

    alpha: float = config_field(10.0, min=0.0, help="overall coefficient α of the RR schedule (published 10)")
    total_steps: int = config_field(150, min=1, help="T of the schedule: optimizer steps of the run "
                                                     "(published 150)")
    warmup_steps: int = config_field(10, min=0, help="steps with the retain coefficient forced to 0 "
                                                     "(symmetry breaking; 0 = published)")
    retain_relative: bool = config_field(False, help="retain distance ‖h_θ − h_0‖ / ‖h_0‖ instead of "
                                                     "the published raw L2")

    def validate(self) -> None:
        if self.warmup_steps > self.total_steps:
            raise ConfigError(f"warmup_steps ({self.warmup_steps}) exceeds total_steps ({self.total_steps})")


def rr_coefficients(step: int, cfg: CircuitBreakerConfig) -> tuple[float, float]:
    """``(c_reroute, c_retain)`` at optimizer step ``step`` (clamped to ``[0, total_steps]``)."""
    t = min(max(int(step), 0), cfg.total_steps)
    p = t / (2 * cfg.total_steps)
    c_reroute = cfg.alpha * (1.0 - p)
    c_retain = 0.0 if step < cfg.warmup_steps else cfg.alpha * p
    return c_reroute, c_retain


def reroute_loss(current: torch.Tensor, frozen: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mean ReLU(cos(current, frozen))`` over valid positions; ``[L, B, T, d]`` + ``[B, T]`` -> scalar."""
    check_hidden("reroute current", current, mask)
    check_hidden("reroute frozen", frozen, mask)
    return masked_mean(torch.relu(cosine_similarity(current, frozen.detach())), mask)


def retain_l2_loss(current: torch.Tensor, frozen: torch.Tensor, mask: torch.Tensor,
                   relative: bool = False) -> torch.Tensor:
    """``mean ‖current − frozen‖₂`` (or ``/ ‖frozen‖₂`` with ``relative``) over valid positions."""
    check_hidden("retain current", current, mask)
    check_hidden("retain frozen", frozen, mask)
    return masked_mean(distance(current, frozen.detach(), "l2_relative" if relative else "l2"), mask)


def circuit_breaker_loss(cfg: CircuitBreakerConfig, step: int,
                         harmful_cur: torch.Tensor, harmful_frozen: torch.Tensor, harmful_mask: torch.Tensor,
                         retain_cur: torch.Tensor, retain_frozen: torch.Tensor, retain_mask: torch.Tensor,
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
    """``c_reroute·reroute_loss + c_retain·retain_l2_loss`` at ``step``; returns ``(total, parts)``.

    ``parts``: ``reroute``, ``retain`` (detached unweighted terms), ``c_reroute``, ``c_retain`` (floats)
    and ``total``. The harmful and retain tensors may use different layer sets.
    """
    c_reroute, c_retain = rr_coefficients(step, cfg)
    rr = reroute_loss(harmful_cur, harmful_frozen, harmful_mask)
    ret = retain_l2_loss(retain_cur, retain_frozen, retain_mask, relative=cfg.retain_relative)
    total = c_reroute * rr + c_retain * ret
    return total, {"reroute": rr.detach(), "retain": ret.detach(), "c_reroute": c_reroute,
                   "c_retain": c_retain, "total": total.detach()}
