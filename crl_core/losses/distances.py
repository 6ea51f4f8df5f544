"""Distances between hidden-state vectors, and the masked mean every representation loss uses.

All functions here are pure functions of tensors (no model code). Every distance is computed over the
last dimension (the hidden size ``d``), broadcasts its two arguments against each other, and works in
at least float32 whatever the input dtype (bf16 hidden states lose too much precision in norms and
cosines; float64 stays float64, which the golden-trajectory tests use to pin the maths exactly).

Distance kinds (``x`` is the point being moved, ``y`` the reference it is compared with):

=======================  ======================================  =============  ============================
kind                     definition                              range          published name
=======================  ======================================  =============  ============================
``l2``                   ‖x − y‖₂                                [0, ∞)         ``norm``
``l2_relative``          ‖x − y‖₂ / (‖y‖₂ + eps)                 [0, ∞)         (new; see below)
``cosine``               1 − cos(x, y)                           [0, 2]         ``cosine``
``l2squarednormalized``  0.3·‖x̂ − ŷ‖₂²  (= 0.6·cosine)           [0, 1.2]       ``l2squarednormalized``
``mix``                  ‖x − y‖₂ + 10·(1 − ReLU(cos(x, y)))     [0, ∞)         ``mix``
=======================  ======================================  =============  ============================

``l2_relative`` is the scale-normalised L2 the organism prototype needed: raw residual-stream norms grow
with depth (20–85 on the organism, hundreds on 8B models), so a raw L2 term swamps every cosine term it
is combined with. Dividing by the norm of ``y`` (the reference: the frozen state, or the centroid) makes
it a relative error, comparable across layers and models. Gradients flow through ``y`` as well (it is
usually a frozen, no-grad tensor, so this only matters when ``y`` is a non-detached centroid).

Zero vectors: every kind is finite at ``x = 0`` and/or ``y = 0`` (norms are clamped at ``eps`` before
dividing, so ``cos(0, y)`` is taken as 0, i.e. cosine distance 1). Gradients there are finite, though the
normalisation's gradient at an exactly-zero vector is large (~1/eps); masked positions never see it
because :func:`masked_mean` selects rather than multiplies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "DISTANCE_KINDS",
    "DISTANCE_RANGES",
    "EPS",
    "distance",
    "cosine_similarity",
    "masked_mean",
    "check_hidden",
]

EPS = 1e-8

DISTANCE_KINDS: tuple[str, ...] = ("l2", "l2_relative", "cosine", "l2squarednormalized", "mix")

#: (min, max) of each distance over all inputs; ``math.inf`` where unbounded.
DISTANCE_RANGES: dict[str, tuple[float, float]] = {
    "l2": (0.0, math.inf),
    "l2_relative": (0.0, math.inf),
    "cosine": (0.0, 2.0),
    "l2squarednormalized": (0.0, 1.2),
    "mix": (0.0, math.inf),
}


def upcast(t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least float32: half precision and integers go to float32, float32/float64 stay."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


_f32 = upcast  # the name the functions below use


def cosine_similarity(x: torch.Tensor, y: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """cos(x, y) over the last dim in float32; each norm clamped at ``eps`` (so cos(0, y) = 0)."""
    x, y = torch.broadcast_tensors(_f32(x), _f32(y))
    return (F.normalize(x, dim=-1, eps=eps) * F.normalize(y, dim=-1, eps=eps)).sum(-1)


def distance(x: torch.Tensor, y: torch.Tensor, kind: str, eps: float = EPS) -> torch.Tensor:
    """Distance of kind ``kind`` between ``x`` and ``y`` over the last dim, in float32.

    ``x`` and ``y`` broadcast (e.g. ``[L, B, T, d]`` against a centroid ``[L, 1, 1, d]``); the result
    has the broadcast shape without the last dim. ``y`` is the reference for ``l2_relative``.
    """
    if kind not in DISTANCE_RANGES:
        raise ValueError(f"unknown distance kind {kind!r}; expected one of {list(DISTANCE_KINDS)}")
    x, y = torch.broadcast_tensors(_f32(x), _f32(y))
    if kind == "l2":
        return torch.linalg.vector_norm(x - y, dim=-1)
    if kind == "l2_relative":
        return torch.linalg.vector_norm(x - y, dim=-1) / (torch.linalg.vector_norm(y, dim=-1) + eps)
    if kind == "cosine":
        return 1.0 - cosine_similarity(x, y, eps)
    if kind == "l2squarednormalized":
        diff = F.normalize(x, dim=-1, eps=eps) - F.normalize(y, dim=-1, eps=eps)
        return 0.3 * diff.pow(2).sum(-1)
    # mix
    return torch.linalg.vector_norm(x - y, dim=-1) + 10.0 * (1.0 - torch.relu(cosine_similarity(x, y, eps)))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask-weighted mean of ``values`` in float32.

    ``values`` is ``[..., B, T]`` (typically ``[L, B, T]``: one value per layer, row, token); ``mask``
    is ``[B, T]`` (bool, int or float weights; 1 = the position counts) and is broadcast over the
    leading dims, so the denominator is ``L · Σ mask`` — the number of valid (layer, row, token)
    positions. Masked positions are *selected out* (``torch.where``), so a NaN or inf value there cannot leak into the
    result.
    With no valid position the result is ``0.0`` and still carries a grad path to ``values`` (whose
    gradient is then zero), never NaN.
    """
    values = _f32(values)
    mask = _f32(mask).to(values.device)
    if mask.shape != values.shape[-mask.dim():]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the trailing dims of values "
                         f"{tuple(values.shape)}")
    weights = mask.expand_as(values)
    valid = weights != 0
    total = torch.where(valid, values * weights, values.new_zeros(())).sum()
    denom = weights.sum()
    # no .item(): stays on device, no host sync; an empty mask gives 0 / 1 = 0
    return total / torch.where(denom != 0, denom, denom.new_ones(()))


def check_hidden(name: str, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Raise ValueError unless ``hidden`` is ``[L, B, T, d]`` and ``mask`` (if given) is ``[B, T]``."""
    if hidden.dim() != 4:
        raise ValueError(f"{name}: expected hidden states [L, B, T, d], got shape {tuple(hidden.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(hidden.shape[1:3]):
        raise ValueError(f"{name}: mask shape {tuple(mask.shape)} does not match hidden [L, B, T, d] = "
                         f"{tuple(hidden.shape)} (expected [B, T] = {tuple(hidden.shape[1:3])})")
