"""KL retain term: keep the adapted model's next-token distribution on retain (chat) data unchanged.

``L_KL = T² · KL(q ‖ p)`` per valid token, with ``q = softmax(z_frozen / T)`` (the frozen model, the
target) and ``p = softmax(z_current / T)``, averaged over valid tokens (mask-weighted), in float32.

Difference from the published code (docs/method.md §3.3): there the term is
``F.kl_div(log p, q, reduction="batchmean") · T²`` on logits whose pad positions are zeroed, i.e. the
KL *summed* over all valid tokens and divided by the number of **rows**. Its size therefore grows with
the sequence length (~1024 tokens per row there), so the weight ε means something different for every
sequence length and batch composition. Here the default ``reduction="token"`` divides by the number of
valid **tokens** instead: ``published = ours · (Σ mask / B)``. ``reduction="batchmean"`` reproduces the
published scaling (sum over valid tokens / B) for parity checks. Pads contribute nothing either way
(there, zeroed logits give two uniform distributions, KL 0; here they are not computed at all).

The frozen logits are treated as a constant target (detached). Only the valid positions are gathered
before the float32 softmaxes, so memory is ``O(#valid tokens · V)``, not ``O(B · T · V)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crl_core.losses.distances import upcast

__all__ = ["kl_retain_loss"]


def kl_retain_loss(logits_current: torch.Tensor, logits_frozen: torch.Tensor, mask: torch.Tensor,
                   temperature: float = 2.0, reduction: str = "token") -> torch.Tensor:
    """``T² · KL(softmax(z_frozen/T) ‖ softmax(z_current/T))`` averaged over valid tokens.

    Args:
        logits_current: ``[B, T, V]`` logits of the model being trained.
        logits_frozen: ``[B, T, V]`` logits of the frozen reference (detached here).
        mask: ``[B, T]`` (bool/int/float weights; 1 = the token counts).
        temperature: softmax temperature ``T`` (> 0); the result is scaled by ``T²`` so gradient
            magnitudes stay comparable across temperatures (Hinton et al. 2015).
        reduction: ``"token"`` (default) = mask-weighted mean over tokens; ``"batchmean"`` = weighted sum
            over tokens divided by the number of rows ``B`` (the published scaling).

    Returns a float32 scalar; ``0`` (with a grad path) when no token is valid.
    """
    if logits_current.dim() != 3 or logits_current.shape != logits_frozen.shape:
        raise ValueError(f"logits must both be [B, T, V]; got {tuple(logits_current.shape)} and "
                         f"{tuple(logits_frozen.shape)}")
    if tuple(mask.shape) != tuple(logits_current.shape[:2]):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match logits [B, T] = "
                         f"{tuple(logits_current.shape[:2])}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if reduction not in ("token", "batchmean"):
        raise ValueError(f"reduction must be 'token' or 'batchmean', got {reduction!r}")

    mask = mask.to(logits_current.device)
    valid = mask != 0
    weights = mask[valid].float()                                        # [N]
    log_p = F.log_softmax(upcast(logits_current[valid]) / temperature, dim=-1)          # [N, V]
    log_q = F.log_softmax(upcast(logits_frozen.detach()[valid]) / temperature, dim=-1)  # [N, V]
    kl = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(-1)             # [N]
    total = (kl * weights).sum() * temperature ** 2
    if reduction == "batchmean":
        return total / logits_current.shape[0]
    denom = weights.sum()
    return total / torch.where(denom != 0, denom, denom.new_ones(()))
