"""The CRL triplet loss (Simko et al. 2025, docs/method.md §3): benign and harmful hinge terms around a
harmful centroid.

Notation (docs/method.md §3): ``h_θ`` = hidden states of the model being trained (LoRA on), ``h_0`` = the
frozen reference (adapter off), ``μ`` = centroid of the current model's harmful representations, one
vector per layer. Hidden states arrive stacked as ``[L, B, T, d]`` with a token mask ``[B, T]``.

* **Benign term** (weight α): anchor a = h_θ(benign), positive p = h_0(benign), negative n = μ:
  ``ℓ_B = max(0, d_p(a, p) − d_n(a, μ) + m_p)`` — stay where the frozen model was, away from μ.
* **Harmful term** (weight β): anchor a = h_θ(harmful), positive p = μ, negative n = h_0(harmful):
  ``ℓ_H = max(0, d_p(a, μ) − d_n(a, h_0) + m_n)`` — collapse toward μ, away from the frozen state.

Each is a mask-weighted mean over valid (layer, row, token) positions, each term with its own
denominator; total = α·L_B + β·L_H (the KL retain term is added by the caller, see
:mod:`crl_core.losses.kl_retain`).

Differences from the published code (``code/methods/triplet``), all deliberate:

* Default benign positive distance is ``l2_relative`` (scale-normalised L2), not raw ``norm``: raw
  hidden norms swamp the cosine terms (organism notes, gotcha 3). ``l2`` reproduces the published run.
* Default margins are ``m_p = 1.0`` and ``m_n = 1.0`` instead of 2 and 3. With the published values
  both hinges can never switch off (docs/method.md §3.2), so the "triplet" degenerates into a linear
  objective and the margin only adds a constant. With cosine/cosine, ``m_n = 1`` means "done once the
  anchor is 1 unit of cosine distance closer to μ than to h_0", e.g. aligned with μ and orthogonal to
  h_0 — the circuit-breaker target. A margin that keeps its hinge always on is still allowed (to
  reproduce the paper) but :class:`TripletLossConfig` warns with :class:`HingeAlwaysActiveWarning`.
* The centroid mode is a knob (``batch`` = published: not detached, gradients flow through μ in both
  terms; ``detached``; ``running`` = EMA of detached batch centroids, see :class:`RunningCentroid`).
* Masked positions are excluded by selection, not by zeroing the hidden states first; the value at
  valid positions and the denominators are the same as published.

Layer sets. The published benign term uses all hidden-state indices (0…32) while the harmful term uses
20…30, and μ is built per layer from the harmful forward. Since these functions only see stacked
tensors, :func:`triplet_loss` needs a centroid for each benign layer: either pass ``benign_centroid``
explicitly (compute it with :func:`resolve_centroid` from the harmful states *on the benign layers*),
or leave it ``None``, in which case the harmful-layer centroid is reused — only correct when both terms
use the same layer list, and refused (ValueError) when the layer counts differ.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from crl_core.config import ConfigBase, ConfigError, config_field
from crl_core.losses.distances import (
    DISTANCE_KINDS,
    DISTANCE_RANGES,
    check_hidden,
    distance,
    masked_mean,
    upcast,
)

__all__ = [
    "CENTROID_MODES",
    "HingeAlwaysActiveWarning",
    "hinge_always_active",
    "TripletLossConfig",
    "harmful_centroid",
    "RunningCentroid",
    "resolve_centroid",
    "benign_triplet_loss",
    "harmful_triplet_loss",
    "triplet_loss",
]

CENTROID_MODES: tuple[str, ...] = ("batch", "detached", "running")


class HingeAlwaysActiveWarning(UserWarning):
    """A triplet margin is so large that its hinge can never switch off (docs/method.md §3.2)."""


def hinge_always_active(margin: float, pos_kind: str, neg_kind: str) -> bool:
    """True when ``max(0, d_p − d_n + margin)`` can never be switched off by training.

    The hinge argument is at least ``min(d_p) − max(d_n) + margin``, so the hinge is always active when
    ``margin ≥ max(d_n) − min(d_p)`` (from :data:`DISTANCE_RANGES`). At exact equality it can reach 0
    only in one degenerate corner (``d_p`` at its minimum *and* ``d_n`` at its maximum at once, e.g. the
    anchor equal to its frozen self and pointing exactly opposite the centroid), so it is active almost
    everywhere and counts as always active. Only the *minimum* of ``d_p`` and the *maximum* of ``d_n``
    matter: an unbounded positive distance (``l2``, ``l2_relative``, ``mix``) still has minimum 0, so
    e.g. the published benign term (``l2``/``cosine``, m_p = 2) is always active; an unbounded negative
    distance never is (the anchor can always get far enough from the negative).
    """
    for kind in (pos_kind, neg_kind):
        if kind not in DISTANCE_RANGES:
            raise ValueError(f"unknown distance kind {kind!r}; expected one of {list(DISTANCE_KINDS)}")
    pos_min = DISTANCE_RANGES[pos_kind][0]
    neg_max = DISTANCE_RANGES[neg_kind][1]
    if math.isinf(neg_max):
        return False
    return margin >= neg_max - pos_min


@dataclass
class TripletLossConfig(ConfigBase):
    """Weights, margins, distances and centroid handling of the CRL triplet loss."""

    alpha: float = config_field(0.5, min=0.0, help="weight α of the benign triplet term (published 0.5)")
    beta: float = config_field(0.6, min=0.0, help="weight β of the harmful triplet term (published 0.6)")
    margin_benign: float = config_field(
        1.0, min=0.0, help="benign margin m_p (published 2: hinge always on with l2/cosine)")
    margin_harmful: float = config_field(
        1.0, min=0.0, help="harmful margin m_n (published 3: hinge always on; < 2 for cosine/cosine)")
    benign_positive_distance: str = config_field(
        "l2_relative", choices=DISTANCE_KINDS,
        help="d_p(h_θ, h_0) on benign tokens (published 'l2', i.e. raw norm)")
    benign_negative_distance: str = config_field(
        "cosine", choices=DISTANCE_KINDS, help="d_n(h_θ, μ) on benign tokens")
    harmful_positive_distance: str = config_field(
        "cosine", choices=DISTANCE_KINDS, help="d_p(h_θ, μ) on harmful tokens")
    harmful_negative_distance: str = config_field(
        "cosine", choices=DISTANCE_KINDS, help="d_n(h_θ, h_0) on harmful tokens")
    centroid: str = config_field(
        "batch", choices=CENTROID_MODES,
        help="harmful centroid μ: 'batch' (published, gradients flow through μ), 'detached', or "
             "'running' (EMA of detached batch centroids)")
    centroid_momentum: float = config_field(
        0.9, min=0.0, max=1.0, help="EMA momentum of the running centroid (new = m·old + (1−m)·batch)")

    def validate(self) -> None:
        if self.centroid == "running" and self.centroid_momentum >= 1.0:
            raise ConfigError("centroid_momentum must be < 1 with centroid='running' (1 never updates)")
        for name, margin, pos, neg in (
                ("margin_benign", self.margin_benign, self.benign_positive_distance,
                 self.benign_negative_distance),
                ("margin_harmful", self.margin_harmful, self.harmful_positive_distance,
                 self.harmful_negative_distance)):
            if hinge_always_active(margin, pos, neg):
                bound = DISTANCE_RANGES[neg][1] - DISTANCE_RANGES[pos][0]
                warnings.warn(
                    f"{name}={margin} with d_p={pos}, d_n={neg}: the hinge is always active (margin ≥ "
                    f"max d_n − min d_p = {bound:g}; it can reach 0 at most in a degenerate corner), so "
                    f"the triplet term is effectively linear and the margin only adds a constant "
                    f"(docs/method.md §3.2); use a margin < {bound:g} for a hinge that can switch off",
                    HingeAlwaysActiveWarning, stacklevel=4)


# ---------------------------------------------------------------------------------------- centroid


def harmful_centroid(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask-weighted mean of ``hidden [L, B, T, d]`` over rows and tokens -> ``[L, d]`` (float32).

    Not detached: gradients flow back to ``hidden``. With no valid position the centroid is all zeros
    (with a grad path), never NaN. Masked positions must hold finite values (they are weighted by 0).
    """
    check_hidden("harmful_centroid", hidden, mask)
    hidden = upcast(hidden)
    w = mask.to(device=hidden.device, dtype=hidden.dtype)
    total = torch.einsum("lbtd,bt->ld", hidden, w)
    denom = w.sum()
    return total / torch.where(denom != 0, denom, denom.new_ones(()))


class RunningCentroid:
    """Exponential moving average of detached batch centroids: ``v ← m·v + (1 − m)·c``.

    The first update copies the batch centroid (no zero-initialisation bias). Updates with no valid
    harmful position (``n_valid == 0``) are skipped. ``state_dict()`` / ``load_state_dict()`` let the
    trainer checkpoint and resume it.
    """

    def __init__(self, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.value: torch.Tensor | None = None
        self.num_updates = 0

    def update(self, batch_centroid: torch.Tensor, n_valid: int | float | torch.Tensor | None = None
               ) -> torch.Tensor:
        """Fold in one batch centroid ``[L, d]``; return the (detached, float32) running value."""
        c = upcast(batch_centroid.detach())
        if n_valid is not None and float(n_valid) == 0:
            return self.value if self.value is not None else c
        if self.value is None:
            self.value = c.clone()
        else:
            if self.value.shape != c.shape:
                raise ValueError(f"running centroid has shape {tuple(self.value.shape)}, batch centroid "
                                 f"{tuple(c.shape)}: one RunningCentroid per layer set")
            self.value = self.momentum * self.value.to(c.device) + (1.0 - self.momentum) * c
        self.num_updates += 1
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "num_updates": self.num_updates,
                "value": None if self.value is None else self.value.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.momentum = float(state["momentum"])
        self.num_updates = int(state["num_updates"])
        value = state["value"]
        self.value = None if value is None else upcast(value.detach()).clone()


def resolve_centroid(cfg: TripletLossConfig, harmful_hidden: torch.Tensor, harmful_mask: torch.Tensor,
                     running: RunningCentroid | None = None) -> torch.Tensor:
    """The centroid ``[L, d]`` the config asks for, from the current harmful states ``[L, B, T, d]``.

    ``batch``: :func:`harmful_centroid` (differentiable); ``detached``: the same, detached; ``running``:
    updates ``running`` with the detached batch centroid and returns its value (``running`` required).
    """
    c = harmful_centroid(harmful_hidden, harmful_mask)
    if cfg.centroid == "batch":
        return c
    if cfg.centroid == "detached":
        return c.detach()
    if running is None:
        raise ValueError("centroid='running' needs a RunningCentroid (pass running=...)")
    return running.update(c, n_valid=harmful_mask.sum())


# ------------------------------------------------------------------------------------------- terms


def _hinge_terms(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 mask: torch.Tensor, margin: float, pos_kind: str, neg_kind: str) -> dict[str, torch.Tensor]:
    d_pos = distance(anchor, positive, pos_kind)
    d_neg = distance(anchor, negative, neg_kind)
    hinge = torch.relu(d_pos - d_neg + margin)
    return {
        "loss": masked_mean(hinge, mask),
        "d_pos": masked_mean(d_pos.detach(), mask),
        "d_neg": masked_mean(d_neg.detach(), mask),
        "active": masked_mean((hinge.detach() > 0).float(), mask),
    }


def _as_layer_centroid(centroid: torch.Tensor, current: torch.Tensor, name: str) -> torch.Tensor:
    if centroid.dim() != 2 or centroid.shape[0] != current.shape[0] or centroid.shape[1] != current.shape[-1]:
        raise ValueError(f"{name}: centroid must be [L, d] = [{current.shape[0]}, {current.shape[-1]}], "
                         f"got {tuple(centroid.shape)}")
    return centroid[:, None, None, :]


def benign_triplet_loss(current: torch.Tensor, frozen: torch.Tensor, centroid: torch.Tensor,
                        mask: torch.Tensor, margin: float, pos_kind: str = "l2_relative",
                        neg_kind: str = "cosine", *, return_parts: bool = False):
    """Benign hinge: a = ``current``, p = ``frozen`` (detached), n = ``centroid``.

    ``current``/``frozen``: ``[L, B, T, d]``; ``centroid``: ``[L, d]``; ``mask``: ``[B, T]``. Returns
    the mean of ``max(0, d_p(a, p) − d_n(a, n) + margin)`` over valid positions (float32 scalar), or
    with ``return_parts`` a dict with ``loss`` and the detached diagnostics ``d_pos``, ``d_neg``
    (mean distances) and ``active`` (fraction of valid positions where the hinge is > 0).
    """
    check_hidden("benign current", current, mask)
    check_hidden("benign frozen", frozen, mask)
    parts = _hinge_terms(current, frozen.detach(), _as_layer_centroid(centroid, current, "benign"), mask,
                         margin, pos_kind, neg_kind)
    return parts if return_parts else parts["loss"]


def harmful_triplet_loss(current: torch.Tensor, frozen: torch.Tensor, centroid: torch.Tensor,
                         mask: torch.Tensor, margin: float, pos_kind: str = "cosine",
                         neg_kind: str = "cosine", *, return_parts: bool = False):
    """Harmful hinge: a = ``current``, p = ``centroid``, n = ``frozen`` (detached).

    Same shapes and return convention as :func:`benign_triplet_loss`; minimising it pulls harmful
    states toward the centroid and pushes them away from what the frozen model produced.
    """
    check_hidden("harmful current", current, mask)
    check_hidden("harmful frozen", frozen, mask)
    parts = _hinge_terms(current, _as_layer_centroid(centroid, current, "harmful"), frozen.detach(), mask,
                         margin, pos_kind, neg_kind)
    return parts if return_parts else parts["loss"]


def triplet_loss(cfg: TripletLossConfig,
                 benign_cur: torch.Tensor, benign_frozen: torch.Tensor, benign_mask: torch.Tensor,
                 harmful_cur: torch.Tensor, harmful_frozen: torch.Tensor, harmful_mask: torch.Tensor,
                 centroid: torch.Tensor | None = None, *, benign_centroid: torch.Tensor | None = None,
                 running: RunningCentroid | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total CRL representation loss ``α·L_B + β·L_H`` and its parts.

    Args:
        benign_cur, benign_frozen: ``[L_s, B_s, T_s, d]`` benign states (LoRA on / off); mask ``[B_s, T_s]``.
        harmful_cur, harmful_frozen: ``[L_u, B_u, T_u, d]`` harmful states; mask ``[B_u, T_u]``.
        centroid: ``[L_u, d]`` harmful centroid for the harmful term; ``None`` = computed from
            ``harmful_cur`` by :func:`resolve_centroid` per ``cfg.centroid`` (``running`` needed for
            ``'running'``).
        benign_centroid: ``[L_s, d]`` centroid on the benign layers; ``None`` = reuse ``centroid``, which
            requires ``L_s == L_u`` (same layer list — the caller's responsibility).
        running: the :class:`RunningCentroid` for ``cfg.centroid == 'running'``.

    Returns ``(total, parts)``; ``parts`` holds detached float32 scalars: ``benign``, ``harmful`` (the
    unweighted terms), ``benign_d_pos``, ``benign_d_neg``, ``benign_active``, ``harmful_d_pos``,
    ``harmful_d_neg``, ``harmful_active`` and ``total``. A term whose weight is 0 is not computed.
    """
    check_hidden("harmful current", harmful_cur, harmful_mask)
    check_hidden("benign current", benign_cur, benign_mask)
    if centroid is None:
        centroid = resolve_centroid(cfg, harmful_cur, harmful_mask, running)
    if benign_centroid is None:
        if benign_cur.shape[0] != centroid.shape[0]:
            raise ValueError(
                f"the benign term has {benign_cur.shape[0]} layers and the harmful centroid "
                f"{centroid.shape[0]}: pass benign_centroid= computed from the harmful states on the benign "
                f"layers (resolve_centroid)")
        benign_centroid = centroid

    # a zero that keeps a (cheap) grad path, so total.backward() works even with α = β = 0
    total = (harmful_cur[0, 0, 0, 0] if harmful_cur.numel() else harmful_cur.sum())
    total = upcast(total) * 0.0
    zero = total.detach()
    parts: dict[str, torch.Tensor] = {}
    for name, weight, fn, args in (
            ("benign", cfg.alpha, benign_triplet_loss,
             (benign_cur, benign_frozen, benign_centroid, benign_mask, cfg.margin_benign,
              cfg.benign_positive_distance, cfg.benign_negative_distance)),
            ("harmful", cfg.beta, harmful_triplet_loss,
             (harmful_cur, harmful_frozen, centroid, harmful_mask, cfg.margin_harmful,
              cfg.harmful_positive_distance, cfg.harmful_negative_distance))):
        if weight == 0:
            term = {"loss": zero, "d_pos": zero, "d_neg": zero, "active": zero}
        else:
            term = fn(*args, return_parts=True)
            total = total + weight * term["loss"]
        parts[name] = term["loss"].detach()
        for key in ("d_pos", "d_neg", "active"):
            parts[f"{name}_{key}"] = term[key]
    parts["total"] = total.detach()
    return total, parts
