import math
import warnings

import pytest
import torch

from crl_core.config import ConfigError, from_dict
from crl_core.losses.distances import distance
from crl_core.losses.triplet_loss import (
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

R2 = 1.0 / math.sqrt(2.0)  # cos(45°)


def h(*tokens):
    """[L=1, B=1, T=len(tokens), d] from a list of token vectors."""
    return torch.tensor([[list(tokens)]], dtype=torch.float32)


def quiet_config(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HingeAlwaysActiveWarning)
        return TripletLossConfig(**kw)


# ----------------------------------------------------------------------------- hand-computed values

# Benign: anchor a = [[1,0],[0,1]], positive (frozen) p = [[1,0],[0,2]], centroid μ = [1,1], m = 0.5
#   token 1: d_p = ‖[0,0]‖ = 0;  d_n = 1 − cos([1,0],[1,1]) = 1 − 1/√2;  hinge = 0 − (1 − 1/√2) + 0.5
#   token 2: d_p = ‖[0,−1]‖ = 1; d_n = 1 − 1/√2;                         hinge = 1 − (1 − 1/√2) + 0.5
#   mean (l2) = ((1/√2 − 0.5) + (1/√2 + 0.5)) / 2 = 1/√2
#   with l2_relative: token 2 d_p = 1 / ‖[0,2]‖ = 0.5 -> hinge 1/√2; mean = ((1/√2 − 0.5) + 1/√2)/2
BENIGN_A = h([1.0, 0.0], [0.0, 1.0])
BENIGN_P = h([1.0, 0.0], [0.0, 2.0])
MU = torch.tensor([[1.0, 1.0]])


def test_benign_hand_computed():
    mask = torch.ones(1, 2)
    got = benign_triplet_loss(BENIGN_A, BENIGN_P, MU, mask, 0.5, "l2", "cosine")
    assert got.item() == pytest.approx(R2, abs=1e-6)
    got = benign_triplet_loss(BENIGN_A, BENIGN_P, MU, mask, 0.5, "l2_relative", "cosine")
    assert got.item() == pytest.approx((R2 - 0.5 + R2) / 2, abs=1e-6)


def test_benign_masking():
    # only token 1 counts: hinge = 1/√2 − 0.5
    got = benign_triplet_loss(BENIGN_A, BENIGN_P, MU, torch.tensor([[1.0, 0.0]]), 0.5, "l2", "cosine")
    assert got.item() == pytest.approx(R2 - 0.5, abs=1e-6)
    # changing the masked token's states changes nothing
    a2, p2 = BENIGN_A.clone(), BENIGN_P.clone()
    a2[0, 0, 1] = torch.tensor([100.0, -3.0])
    p2[0, 0, 1] = torch.tensor([0.0, 0.0])
    got2 = benign_triplet_loss(a2, p2, MU, torch.tensor([[1.0, 0.0]]), 0.5, "l2", "cosine")
    assert got2.item() == pytest.approx(got.item(), abs=1e-7)


# Harmful: anchor a = [[1,0],[0,1]], centroid μ = [1,1] (positive), frozen n = [[1,0],[1,0]], m = 1
#   token 1: d_p = 1 − 1/√2; d_n = 1 − cos([1,0],[1,0]) = 0; hinge = 1 − 1/√2 + 1 = 2 − 1/√2
#   token 2: d_p = 1 − 1/√2; d_n = 1 − cos([0,1],[1,0]) = 1; hinge = 1 − 1/√2
#   mean = (3 − 2/√2) / 2 = 1.5 − 1/√2
HARM_A = h([1.0, 0.0], [0.0, 1.0])
HARM_N = h([1.0, 0.0], [1.0, 0.0])


def test_harmful_hand_computed_and_masking():
    got = harmful_triplet_loss(HARM_A, HARM_N, MU, torch.ones(1, 2), 1.0, "cosine", "cosine")
    assert got.item() == pytest.approx(1.5 - R2, abs=1e-6)
    got = harmful_triplet_loss(HARM_A, HARM_N, MU, torch.tensor([[0, 1]]), 1.0, "cosine", "cosine")
    assert got.item() == pytest.approx(1.0 - R2, abs=1e-6)


def test_hinge_is_exactly_zero_when_the_margin_is_met():
    # a = [0,1] aligned with μ = [0,1] (d_p = 0), orthogonal to its frozen self [1,0] (d_n = 1):
    # hinge = max(0, 0 − 1 + m) = 0 for m = 1 (exactly met) and m = 0.9; gradient 0 too
    a = h([0.0, 1.0]).requires_grad_(True)
    for margin in (1.0, 0.9):
        parts = harmful_triplet_loss(a, h([1.0, 0.0]), torch.tensor([[0.0, 1.0]]), torch.ones(1, 1), margin,
                                     "cosine", "cosine", return_parts=True)
        assert parts["loss"].item() == 0.0 and parts["active"].item() == 0.0
        parts["loss"].backward()
        assert torch.equal(a.grad, torch.zeros_like(a))
        a.grad = None
    # m = 1.1 is not met: hinge 0.1, active
    loss = harmful_triplet_loss(a, h([1.0, 0.0]), torch.tensor([[0.0, 1.0]]), torch.ones(1, 1), 1.1)
    assert loss.item() == pytest.approx(0.1, abs=1e-6)


def test_all_masked_gives_zero_without_nan():
    cur = torch.randn(2, 3, 4, 5, requires_grad=True)
    frozen = torch.randn(2, 3, 4, 5)
    mask = torch.zeros(3, 4)
    c = harmful_centroid(cur, mask)
    assert torch.equal(c, torch.zeros(2, 5))
    for fn in (benign_triplet_loss, harmful_triplet_loss):
        loss = fn(cur, frozen, harmful_centroid(cur, mask), mask, 1.0)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(cur.grad).all()
        cur.grad = None
    total, parts = triplet_loss(TripletLossConfig(), cur, frozen, mask, cur, frozen, mask)
    total.backward()
    assert total.item() == 0.0 and all(torch.isfinite(torch.as_tensor(v)) for v in parts.values())


def test_centroid_hand_computed():
    # L=1, B=2, T=2, d=2; row 0 tokens [2,0], [0,2]; row 1 tokens [4,4], [100,100] (masked)
    hidden = torch.tensor([[[[2.0, 0.0], [0.0, 2.0]], [[4.0, 4.0], [100.0, 100.0]]]])
    mask = torch.tensor([[1, 1], [1, 0]])
    # (2 + 0 + 4)/3 = 2, (0 + 2 + 4)/3 = 2
    torch.testing.assert_close(harmful_centroid(hidden, mask), torch.tensor([[2.0, 2.0]]))


def test_triplet_loss_total_is_weighted_sum():
    cfg = TripletLossConfig(alpha=0.5, beta=0.6, margin_benign=0.5, margin_harmful=1.0,
                            benign_positive_distance="l2")
    # explicit centroid μ = [1,1] for both terms (same single layer)
    total, parts = triplet_loss(cfg, BENIGN_A, BENIGN_P, torch.ones(1, 2), HARM_A, HARM_N, torch.ones(1, 2),
                                centroid=MU)
    # 0.5·(1/√2) + 0.6·(1.5 − 1/√2)
    assert total.item() == pytest.approx(0.5 * R2 + 0.6 * (1.5 - R2), abs=1e-6)
    assert parts["benign"].item() == pytest.approx(R2, abs=1e-6)
    assert parts["harmful"].item() == pytest.approx(1.5 - R2, abs=1e-6)
    assert parts["benign_active"].item() == 1.0 and parts["harmful_active"].item() == 1.0
    # harmful term diagnostics: d_p = 1 − 1/√2 on both tokens; d_n = (0 + 1)/2
    assert parts["harmful_d_pos"].item() == pytest.approx(1 - R2, abs=1e-6)
    assert parts["harmful_d_neg"].item() == pytest.approx(0.5, abs=1e-6)


def test_triplet_loss_layer_sets():
    benign = torch.randn(3, 2, 4, 6)
    harmful = torch.randn(2, 2, 4, 6)
    mask = torch.ones(2, 4)
    with pytest.raises(ValueError, match="benign_centroid"):
        triplet_loss(TripletLossConfig(), benign, benign, mask, harmful, harmful, mask)
    harmful_on_benign_layers = torch.randn(3, 2, 4, 6)
    bc = resolve_centroid(TripletLossConfig(), harmful_on_benign_layers, mask)
    total, _ = triplet_loss(TripletLossConfig(), benign, benign, mask, harmful, harmful, mask,
                            benign_centroid=bc)
    assert torch.isfinite(total)


def test_zero_weight_terms_still_backprop():
    cur = torch.randn(1, 2, 3, 4, requires_grad=True)
    total, parts = triplet_loss(TripletLossConfig(alpha=0.0, beta=0.0), cur, cur.detach(), torch.ones(2, 3),
                                cur, cur.detach(), torch.ones(2, 3))
    total.backward()
    assert total.item() == 0.0 and parts["benign"].item() == 0.0


# ------------------------------------------------------------------------------- centroid modes


def test_batch_centroid_passes_gradient_through_mu_and_detached_does_not():
    g = torch.Generator().manual_seed(3)
    benign = torch.randn(1, 2, 3, 4, generator=g)
    harmful = torch.randn(1, 2, 3, 4, generator=g, requires_grad=True)
    mask = torch.ones(2, 3)
    # beta = 0: the only path from the loss to the harmful states is through μ (benign negative)
    for mode, expect_grad in (("batch", True), ("detached", False)):
        cfg = TripletLossConfig(beta=0.0, centroid=mode)
        total, _ = triplet_loss(cfg, benign + 0.1, benign, mask, harmful, harmful.detach(), mask)
        total.backward()
        has = harmful.grad is not None and harmful.grad.abs().sum().item() > 0
        assert has == expect_grad, mode
        harmful.grad = None


def test_running_centroid_ema_and_state_dict():
    rc = RunningCentroid(momentum=0.75)
    v = rc.update(torch.tensor([[4.0, 0.0]]))
    torch.testing.assert_close(v, torch.tensor([[4.0, 0.0]]))  # first update copies
    v = rc.update(torch.tensor([[0.0, 8.0]], requires_grad=True))
    # 0.75·[4,0] + 0.25·[0,8] = [3, 2]; detached
    torch.testing.assert_close(v, torch.tensor([[3.0, 2.0]]))
    assert not v.requires_grad
    v = rc.update(torch.tensor([[100.0, 100.0]]), n_valid=0)  # nothing valid: skipped
    torch.testing.assert_close(v, torch.tensor([[3.0, 2.0]]))
    restored = RunningCentroid()
    restored.load_state_dict(rc.state_dict())
    assert restored.momentum == 0.75 and restored.num_updates == 2
    torch.testing.assert_close(restored.value, rc.value)
    with pytest.raises(ValueError, match="one RunningCentroid per layer set"):
        rc.update(torch.zeros(2, 2))
    with pytest.raises(ValueError):
        RunningCentroid(momentum=1.0)


def test_running_mode_needs_and_updates_the_tracker():
    cfg = TripletLossConfig(centroid="running", centroid_momentum=0.5)
    x = torch.randn(1, 2, 3, 4)
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match="RunningCentroid"):
        triplet_loss(cfg, x, x, mask, x, x, mask)
    rc = RunningCentroid(0.5)
    triplet_loss(cfg, x, x, mask, x, x, mask, running=rc)
    triplet_loss(cfg, x, x, mask, x + 2.0, x, mask, running=rc)
    # 0.5·c + 0.5·(c + 2) = c + 1
    torch.testing.assert_close(rc.value, harmful_centroid(x, mask) + 1.0)


# --------------------------------------------------------------------------- gradient direction


def _sgd_step(loss, x, lr):
    (grad,) = torch.autograd.grad(loss, x)
    return (x - lr * grad).detach()


@pytest.mark.parametrize("pos_kind,margin", [("l2_relative", 1.0), ("l2", 2.0), ("cosine", 1.0)])
def test_benign_step_moves_toward_frozen_and_away_from_centroid(pos_kind, margin):
    g = torch.Generator().manual_seed(7)
    frozen = torch.randn(2, 3, 4, 16, generator=g)
    anchor = (frozen + 0.3 * torch.randn(2, 3, 4, 16, generator=g)).requires_grad_(True)
    mu = torch.randn(2, 16, generator=g)
    mask = torch.ones(3, 4)
    loss = benign_triplet_loss(anchor, frozen, mu, mask, margin, pos_kind, "cosine")
    new = _sgd_step(loss, anchor, lr=0.05)
    before_p = distance(anchor.detach(), frozen, pos_kind).mean()
    after_p = distance(new, frozen, pos_kind).mean()
    before_n = distance(anchor.detach(), mu[:, None, None], "cosine").mean()
    after_n = distance(new, mu[:, None, None], "cosine").mean()
    assert after_p < before_p and after_n > before_n
    assert benign_triplet_loss(new, frozen, mu, mask, margin, pos_kind, "cosine") < loss


def test_harmful_step_moves_away_from_frozen_and_toward_centroid():
    g = torch.Generator().manual_seed(8)
    frozen = torch.randn(2, 3, 4, 16, generator=g)
    anchor = (frozen + 0.1 * torch.randn(2, 3, 4, 16, generator=g)).requires_grad_(True)
    mu = torch.randn(2, 16, generator=g)
    mask = torch.ones(3, 4)
    loss = harmful_triplet_loss(anchor, frozen, mu, mask, 1.0)
    new = _sgd_step(loss, anchor, lr=0.5)
    # cosine distance to the frozen state grows, to the centroid shrinks
    assert distance(new, frozen, "cosine").mean() > distance(anchor.detach(), frozen, "cosine").mean()
    assert (distance(new, mu[:, None, None], "cosine").mean()
            < distance(anchor.detach(), mu[:, None, None], "cosine").mean())


# ------------------------------------------------------------------------- hinge / config rules


def test_hinge_always_active():
    # cosine/cosine: max d_n − min d_p = 2 − 0 = 2
    assert hinge_always_active(3.0, "cosine", "cosine")        # published m_n
    assert hinge_always_active(2.0, "cosine", "cosine")        # equality: only a degenerate corner
    assert not hinge_always_active(1.99, "cosine", "cosine")
    # published benign: d_p = l2 (unbounded, but min 0), d_n = cosine (max 2): 2 ≥ 2 -> always on
    assert hinge_always_active(2.0, "l2", "cosine")
    assert hinge_always_active(2.0, "l2_relative", "cosine")
    assert not hinge_always_active(1.0, "l2_relative", "cosine")  # our default
    # l2squarednormalized as d_n: max 1.2
    assert hinge_always_active(1.2, "cosine", "l2squarednormalized")
    assert not hinge_always_active(1.0, "cosine", "l2squarednormalized")
    # unbounded negative distance: the anchor can always get far enough, never always on
    assert not hinge_always_active(100.0, "cosine", "l2")
    assert not hinge_always_active(100.0, "cosine", "mix")
    with pytest.raises(ValueError):
        hinge_always_active(1.0, "cosin", "cosine")


def test_equality_margin_reaches_zero_only_in_the_degenerate_corner():
    # m = 2 cosine/cosine: zero needs d_p = 0 and d_n = 2 together: a ∥ μ and a opposite its frozen self
    a = h([1.0, 0.0])
    corner = harmful_triplet_loss(a, h([-1.0, 0.0]), torch.tensor([[1.0, 0.0]]), torch.ones(1, 1), 2.0)
    assert corner.item() == pytest.approx(0.0, abs=1e-6)
    near = harmful_triplet_loss(a, h([-1.0, 0.1]), torch.tensor([[1.0, 0.0]]), torch.ones(1, 1), 2.0)
    assert near.item() > 1e-4


def test_config_warns_for_published_margins_and_not_for_defaults():
    with pytest.warns(HingeAlwaysActiveWarning) as record:
        TripletLossConfig(margin_benign=2.0, margin_harmful=3.0, benign_positive_distance="l2")
    messages = [str(r.message) for r in record if r.category is HingeAlwaysActiveWarning]
    assert len(messages) == 2
    assert any("margin_harmful=3.0" in m and "always active" in m for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TripletLossConfig()


def test_config_defaults():
    cfg = TripletLossConfig()
    assert (cfg.alpha, cfg.beta) == (0.5, 0.6)
    assert cfg.benign_positive_distance == "l2_relative" and cfg.harmful_negative_distance == "cosine"
    assert cfg.centroid == "batch"


def test_config_validation():
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        TripletLossConfig(harmful_positive_distance="cosin")
    with pytest.raises(ConfigError, match="alpha.*below the minimum"):
        TripletLossConfig(alpha=-0.1)
    with pytest.raises(ConfigError, match="beta.*below the minimum"):
        TripletLossConfig(beta=-1)
    with pytest.raises(ConfigError, match="did you mean 'batch'"):
        TripletLossConfig(centroid="batches")
    with pytest.raises(ConfigError, match="centroid_momentum"):
        TripletLossConfig(centroid="running", centroid_momentum=1.0)
    with pytest.raises(ConfigError, match="did you mean 'margin_harmful'"):
        from_dict(TripletLossConfig, {"margin_harmfull": 0.5})
    cfg = from_dict(TripletLossConfig, {"margin_harmful": "0.5", "centroid": "detached"})
    assert cfg.margin_harmful == 0.5 and cfg.centroid == "detached"


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[L, B, T, d\]"):
        benign_triplet_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 4), torch.ones(2, 3), 1.0)
    with pytest.raises(ValueError, match="mask shape"):
        benign_triplet_loss(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 4),
                            torch.ones(3, 2), 1.0)
    with pytest.raises(ValueError, match="centroid must be"):
        harmful_triplet_loss(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(2, 4),
                             torch.ones(2, 3), 1.0)


# ----------------------------------------------------------------------------------------- golden


def _golden_inputs():
    g = torch.Generator().manual_seed(2025)
    bc, bf = torch.randn(3, 2, 5, 8, generator=g), torch.randn(3, 2, 5, 8, generator=g)
    hc, hf = torch.randn(3, 2, 5, 8, generator=g), torch.randn(3, 2, 5, 8, generator=g)
    bm = (torch.rand(2, 5, generator=g) > 0.3).float()
    hm = (torch.rand(2, 5, generator=g) > 0.3).float()
    return bc, bf, bm, hc, hf, hm


def test_golden_default_config():
    total, parts = triplet_loss(TripletLossConfig(), *_golden_inputs())
    assert total.item() == pytest.approx(GOLDEN_DEFAULT[0], abs=1e-6)
    assert parts["benign"].item() == pytest.approx(GOLDEN_DEFAULT[1], abs=1e-6)
    assert parts["harmful"].item() == pytest.approx(GOLDEN_DEFAULT[2], abs=1e-6)


def test_golden_published_config():
    cfg = quiet_config(margin_benign=2.0, margin_harmful=3.0, benign_positive_distance="l2")
    total, parts = triplet_loss(cfg, *_golden_inputs())
    assert total.item() == pytest.approx(GOLDEN_PUBLISHED[0], abs=1e-6)
    assert parts["benign"].item() == pytest.approx(GOLDEN_PUBLISHED[1], abs=1e-6)
    assert parts["harmful"].item() == pytest.approx(GOLDEN_PUBLISHED[2], abs=1e-6)


# (total, benign, harmful), pinned from the implementation at creation (float32 CPU)
GOLDEN_DEFAULT = (1.169748, 1.675082, 0.553678)
GOLDEN_PUBLISHED = (3.950641, 4.874918, 2.521970)


def test_bf16_inputs_give_float32_losses():
    bc, bf, bm, hc, hf, hm = (t.bfloat16() if t.dim() == 4 else t for t in _golden_inputs())
    total, parts = triplet_loss(TripletLossConfig(), bc, bf, bm, hc, hf, hm)
    assert total.dtype == torch.float32 and parts["benign"].dtype == torch.float32
    # close to the float32 result (bf16 rounding of the inputs only)
    assert total.item() == pytest.approx(GOLDEN_DEFAULT[0], abs=2e-2)
