"""Representation losses for LoRA defences: pure functions of tensors (no model code, no Ray).

Conventions shared by every loss here: hidden states are stacked ``[L, B, T, d]`` (selected layers,
batch rows, tokens, hidden size); a token mask ``[B, T]`` marks the positions that count (1 = counts);
distances and reductions run in at least float32 (float64 stays float64); averages are mask-weighted means
over valid (layer, row, token) positions, and an all-masked input gives 0 with a grad path, never NaN.

* :mod:`.distances` — ``distance(x, y, kind)``, ``DISTANCE_RANGES``, ``masked_mean``.
* :mod:`.triplet_loss` — the CRL triplet loss (benign / harmful hinge around a harmful centroid).
* :mod:`.kl_retain` — temperature-scaled KL retain term, averaged per token.
* :mod:`.circuit_breaker_loss` — representation rerouting (circuit breakers) and its schedule.
* :mod:`.repbend_loss` — RepBend's representation terms.
"""

from crl_core.losses.circuit_breaker_loss import (
    CircuitBreakerConfig,
    circuit_breaker_loss,
    reroute_loss,
    retain_l2_loss,
    rr_coefficients,
)
from crl_core.losses.distances import (
    DISTANCE_KINDS,
    DISTANCE_RANGES,
    EPS,
    check_hidden,
    cosine_similarity,
    distance,
    masked_mean,
)
from crl_core.losses.kl_retain import kl_retain_loss
from crl_core.losses.repbend_loss import RepBendConfig, pairwise_cosine_diversity, repbend_loss
from crl_core.losses.triplet_loss import (
    CENTROID_MODES,
    HingeAlwaysActiveWarning,
    RunningCentroid,
    TripletLossConfig,
    benign_triplet_loss,
    harmful_centroid,
    harmful_triplet_loss,
    hinge_always_active,
    resolve_centroid,
    triplet_loss,
)

__all__ = [
    "DISTANCE_KINDS",
    "DISTANCE_RANGES",
    "EPS",
    "check_hidden",
    "cosine_similarity",
    "distance",
    "masked_mean",
    "CENTROID_MODES",
    "HingeAlwaysActiveWarning",
    "RunningCentroid",
    "TripletLossConfig",
    "benign_triplet_loss",
    "harmful_centroid",
    "harmful_triplet_loss",
    "hinge_always_active",
    "resolve_centroid",
    "triplet_loss",
    "kl_retain_loss",
    "CircuitBreakerConfig",
    "circuit_breaker_loss",
    "reroute_loss",
    "retain_l2_loss",
    "rr_coefficients",
    "RepBendConfig",
    "pairwise_cosine_diversity",
    "repbend_loss",
]
