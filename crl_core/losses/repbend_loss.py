"""RepBend (Yousefpour et al. 2025, arXiv 2504.01550), the RepBend baseline of docs/method.md §7.

Representation part of the objective, as in ``code/methods/rep_bending/trainer.py``::

    α · mean ‖h_θ − h_0‖₂ (benign, all layers)            keep benign states
  − β · mean ‖h_θ − h_0‖₂ (harmful, target layers)         push harmful states away
  + γ · mean_l mean_{i≠j} (1 − cos(r_i^l, r_j^l))          pull harmful reps together (r = the harmful
                                                           rows' states at the last request token)

The remaining published terms are the caller's: ``ε·KL(T=2)`` on retain data (use
:func:`crl_core.losses.kl_retain.kl_retain_loss`; note its per-token scaling) and
``η·‖h_θ(harmful answer) − h_0(paired harmless answer)‖₂`` on the first ≤ 20 response positions
(needs paired rows; ``eta = 0`` in the published ``train.sh``). The config carries ``epsilon`` and
``eta`` so one config describes the whole run.

Deviations / additions:

* ``harmful_l2_cap`` (default ``None`` = published). The ``−β·L2`` term is unbounded below: the
  optimiser can lower the loss without limit by blowing harmful states up, which in practice turns
  them into noise and can dominate every other term. With a cap ``c`` each harmful position's distance
  is clamped to ``min(‖h_θ − h_0‖, c)`` *before* averaging, so a position stops being pushed (zero
  gradient) once it is ``c`` away, and the term is bounded below by ``−β·c``.
* ``distance='l2_relative'`` optionally uses the scale-normalised L2 (organism notes, gotcha 3) for both
  L2 terms (and then the cap is in relative units). ``'l2'`` is published.
* Masked positions are excluded (mask-weighted mean); same value as the published ``sum / mask.sum()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from crl_core.config import ConfigBase, config_field
from crl_core.losses.distances import check_hidden, distance, masked_mean, upcast

__all__ = ["RepBendConfig", "pairwise_cosine_diversity", "repbend_loss"]


@dataclass
class RepBendConfig(ConfigBase):
    """RepBend weights (defaults = ``train.sh`` of the CRL fork: α 0.5, β 0.1, γ 0.3, ε 0.3, η 0)."""

    alpha: float = config_field(0.5, min=0.0, help="weight of the benign L2 retain term")
    beta: float = config_field(0.1, min=0.0, help="weight of the (subtracted) harmful L2 term")
    gamma: float = config_field(0.3, min=0.0, help="weight of the harmful pairwise-cosine term")
    epsilon: float = config_field(0.3, min=0.0, help="weight of the KL retain term (applied by the caller)")
    eta: float = config_field(0.0, min=0.0, help="weight of the paired harmless-answer L2 term "
                                                 "(applied by the caller)")
    harmful_l2_cap: float | None = config_field(
        None, min=0.0, help="clamp each harmful position's distance at this value (None = published, "
                            "unbounded below)")
    distance: str = config_field("l2", choices=("l2", "l2_relative"),
                                 help="distance of both L2 terms ('l2' = published)")


def pairwise_cosine_diversity(reps: torch.Tensor) -> torch.Tensor:
    """``mean over layers of mean_{i≠j} (1 − cos(r_i, r_j))`` for ``reps [L, B, d]`` (float32 scalar).

    Off-diagonal pairs only, as published (the diagonal is trivially 0). Fewer than 2 rows: 0 with a
    grad path. Minimising it pulls the rows' representations toward a common direction.
    """
    if reps.dim() != 3:
        raise ValueError(f"reps must be [L, B, d], got shape {tuple(reps.shape)}")
    n_layers, batch, _ = reps.shape
    if batch < 2:
        return upcast(reps).sum() * 0.0
    unit = F.normalize(upcast(reps), dim=-1, eps=1e-8)
    sim = unit @ unit.transpose(1, 2)                                     # [L, B, B]
    off = ~torch.eye(batch, dtype=torch.bool, device=reps.device)
    return (1.0 - sim[:, off]).mean()


def repbend_loss(cfg: RepBendConfig,
                 benign_cur: torch.Tensor, benign_frozen: torch.Tensor, benign_mask: torch.Tensor,
                 harmful_cur: torch.Tensor, harmful_frozen: torch.Tensor, harmful_mask: torch.Tensor,
                 harmful_last_request: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``α·L2_benign − β·L2_harmful + γ·diversity``; returns ``(total, parts)``.

    Args:
        benign_cur, benign_frozen: ``[L_s, B_s, T_s, d]``; benign_mask ``[B_s, T_s]``.
        harmful_cur, harmful_frozen: ``[L_u, B_u, T_u, d]``; harmful_mask ``[B_u, T_u]``.
        harmful_last_request: ``[L, B_u, d]`` current-model harmful states at the last request token
            (published: the harmful target layers).

    ``parts`` (detached float32 scalars): ``benign_l2``, ``harmful_l2`` (after the cap, if any),
    ``diversity``, ``total``. KL (ε) and paired (η) terms are not included — see the module docstring.
    """
    check_hidden("benign current", benign_cur, benign_mask)
    check_hidden("benign frozen", benign_frozen, benign_mask)
    check_hidden("harmful current", harmful_cur, harmful_mask)
    check_hidden("harmful frozen", harmful_frozen, harmful_mask)
    benign = masked_mean(distance(benign_cur, benign_frozen.detach(), cfg.distance), benign_mask)
    d_harm = distance(harmful_cur, harmful_frozen.detach(), cfg.distance)
    if cfg.harmful_l2_cap is not None:
        d_harm = d_harm.clamp(max=cfg.harmful_l2_cap)
    harmful = masked_mean(d_harm, harmful_mask)
    diversity = pairwise_cosine_diversity(harmful_last_request)
    total = cfg.alpha * benign - cfg.beta * harmful + cfg.gamma * diversity
    return total, {"benign_l2": benign.detach(), "harmful_l2": harmful.detach(),
                   "diversity": diversity.detach(), "total": total.detach()}
