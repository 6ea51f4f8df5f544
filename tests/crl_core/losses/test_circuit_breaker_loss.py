import math

import pytest
import torch

from crl_core.config import ConfigError
from crl_core.losses.circuit_breaker_loss import (
    CircuitBreakerConfig,
    circuit_breaker_loss,
    reroute_loss,
    retain_l2_loss,
    rr_coefficients,
)
from crl_core.losses.distances import cosine_similarity

R2 = 1.0 / math.sqrt(2.0)


def h(*tokens):
    return torch.tensor([[list(tokens)]], dtype=torch.float32)  # [L=1, B=1, T, d]


def test_schedule_values():
    cfg = CircuitBreakerConfig(alpha=10.0, total_steps=100, warmup_steps=0)
    # c_reroute = α(1 − t/2T), c_retain = α·t/2T
    assert rr_coefficients(0, cfg) == pytest.approx((10.0, 0.0))
    assert rr_coefficients(50, cfg) == pytest.approx((7.5, 2.5))
    assert rr_coefficients(100, cfg) == pytest.approx((5.0, 5.0))
    assert rr_coefficients(250, cfg) == pytest.approx((5.0, 5.0))  # clamped at T
    assert rr_coefficients(-3, cfg) == pytest.approx((10.0, 0.0))


def test_warmup_forces_retain_to_zero():
    cfg = CircuitBreakerConfig(alpha=10.0, total_steps=100, warmup_steps=10)
    assert rr_coefficients(5, cfg) == pytest.approx((10.0 * (1 - 5 / 200), 0.0))
    assert rr_coefficients(9, cfg)[1] == 0.0
    assert rr_coefficients(10, cfg) == pytest.approx((9.5, 0.5))
    assert CircuitBreakerConfig().warmup_steps == 10  # the organism-notes fix is on by default


def test_reroute_hand_computed():
    # current [1,0],[0,1],[1,0]; frozen [1,1],[−1,0],[−1,−1]
    # cos: 1/√2, 0, −1/√2 -> ReLU: 1/√2, 0, 0 -> mean = 1/(3√2)
    cur = h([1.0, 0.0], [0.0, 1.0], [1.0, 0.0])
    frz = h([1.0, 1.0], [-1.0, 0.0], [-1.0, -1.0])
    assert reroute_loss(cur, frz, torch.ones(1, 3)).item() == pytest.approx(R2 / 3, abs=1e-6)
    assert reroute_loss(cur, frz, torch.tensor([[1, 0, 0]])).item() == pytest.approx(R2, abs=1e-6)


def test_retain_hand_computed():
    # ‖[3,4] − [0,0]‖ = 5, ‖[3,4] − [3,0]‖ = 4 -> mean 4.5; relative: second token 4/3, first 5/eps (masked)
    cur = h([3.0, 4.0], [3.0, 4.0])
    frz = h([0.0, 0.0], [3.0, 0.0])
    assert retain_l2_loss(cur, frz, torch.ones(1, 2)).item() == pytest.approx(4.5)
    assert retain_l2_loss(cur, frz, torch.tensor([[0, 1]]), relative=True).item() == pytest.approx(4 / 3)


def test_all_masked_is_zero_with_grad():
    cur = torch.randn(2, 2, 3, 4, requires_grad=True)
    for fn in (reroute_loss, retain_l2_loss):
        out = fn(cur, torch.randn(2, 2, 3, 4), torch.zeros(2, 3))
        out.backward()
        assert out.item() == 0.0 and torch.isfinite(cur.grad).all()
        cur.grad = None


def test_reroute_step_lowers_cosine_to_frozen():
    g = torch.Generator().manual_seed(5)
    frozen = torch.randn(2, 3, 4, 16, generator=g)
    cur = (frozen + 0.2 * torch.randn(2, 3, 4, 16, generator=g)).requires_grad_(True)
    loss = reroute_loss(cur, frozen, torch.ones(3, 4))
    (grad,) = torch.autograd.grad(loss, cur)
    new = cur.detach() - 1.0 * grad
    assert cosine_similarity(new, frozen).mean() < cosine_similarity(cur.detach(), frozen).mean()


def test_identical_states_have_zero_reroute_gradient():
    # the symmetry problem of the organism notes: cur == frozen -> cos = 1 at its max, gradient 0
    frozen = torch.randn(1, 2, 3, 8)
    cur = frozen.clone().requires_grad_(True)
    loss = reroute_loss(cur, frozen, torch.ones(2, 3))
    (grad,) = torch.autograd.grad(loss, cur)
    assert loss.item() == pytest.approx(1.0, abs=1e-6)
    assert grad.abs().max().item() < 1e-5


def test_combined_loss_and_parts():
    cfg = CircuitBreakerConfig(alpha=4.0, total_steps=10, warmup_steps=0)
    cur = h([1.0, 0.0], [0.0, 1.0], [1.0, 0.0])
    frz = h([1.0, 1.0], [-1.0, 0.0], [-1.0, -1.0])
    rcur, rfrz = h([3.0, 4.0]), h([0.0, 0.0])
    total, parts = circuit_breaker_loss(cfg, 5, cur, frz, torch.ones(1, 3), rcur, rfrz, torch.ones(1, 1))
    # t = 5, T = 10: c_reroute = 4·0.75 = 3, c_retain = 1; 3·(1/(3√2)) + 1·5
    assert total.item() == pytest.approx(R2 + 5.0, abs=1e-6)
    assert parts["c_reroute"] == pytest.approx(3.0) and parts["c_retain"] == pytest.approx(1.0)


def test_config_validation():
    with pytest.raises(ConfigError, match="warmup_steps"):
        CircuitBreakerConfig(total_steps=5, warmup_steps=6)
    with pytest.raises(ConfigError, match="alpha.*below the minimum"):
        CircuitBreakerConfig(alpha=-1.0)
    with pytest.raises(ConfigError, match="total_steps"):
        CircuitBreakerConfig(total_steps=0)


def test_golden_value():
    g = torch.Generator().manual_seed(11)
    hc, hf = torch.randn(2, 2, 5, 8, generator=g), torch.randn(2, 2, 5, 8, generator=g)
    rc, rf = torch.randn(3, 2, 5, 8, generator=g), torch.randn(3, 2, 5, 8, generator=g)
    hm = (torch.rand(2, 5, generator=g) > 0.3).float()
    rm = (torch.rand(2, 5, generator=g) > 0.3).float()
    cfg = CircuitBreakerConfig(alpha=10.0, total_steps=150, warmup_steps=0)
    total, parts = circuit_breaker_loss(cfg, 60, hc, hf, hm, rc, rf, rm)
    assert parts["reroute"].item() == pytest.approx(GOLDEN[0], abs=1e-6)
    assert parts["retain"].item() == pytest.approx(GOLDEN[1], abs=1e-6)
    assert total.item() == pytest.approx(GOLDEN[2], abs=1e-6, rel=1e-6)


GOLDEN = (0.127827, 3.404087, 7.830792)  # (reroute, retain, total), pinned from the implementation (float32 CPU)
