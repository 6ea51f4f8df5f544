import pytest
import torch

from crl_core.config import ConfigError
from crl_core.losses.distances import distance
from crl_core.losses.repbend_loss import RepBendConfig, pairwise_cosine_diversity, repbend_loss


def h(*tokens):
    return torch.tensor([[list(tokens)]], dtype=torch.float32)  # [L=1, B=1, T, d]


def test_config_defaults_and_validation():
    cfg = RepBendConfig()
    assert (cfg.alpha, cfg.beta, cfg.gamma, cfg.epsilon, cfg.eta) == (0.5, 0.1, 0.3, 0.3, 0.0)
    assert cfg.harmful_l2_cap is None and cfg.distance == "l2"
    assert RepBendConfig(harmful_l2_cap=2).harmful_l2_cap == 2.0
    with pytest.raises(ConfigError, match="beta.*below the minimum"):
        RepBendConfig(beta=-0.1)
    with pytest.raises(ConfigError, match="harmful_l2_cap.*below the minimum"):
        RepBendConfig(harmful_l2_cap=-1.0)
    with pytest.raises(ConfigError, match="did you mean 'l2_relative'"):
        RepBendConfig(distance="l2_relativ")


def test_diversity_hand_computed():
    # rows [1,0], [0,1], [1,0]: off-diagonal cos 0, 1, 0 (each twice) -> mean(1 − cos) = (1 + 0 + 1)/3
    reps = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    assert pairwise_cosine_diversity(reps).item() == pytest.approx(2 / 3, abs=1e-6)
    # mean over layers: a second layer with identical rows contributes 0 -> (2/3 + 0)/2
    two = torch.cat([reps, torch.ones(1, 3, 2)])
    assert pairwise_cosine_diversity(two).item() == pytest.approx(1 / 3, abs=1e-6)
    single = torch.randn(2, 1, 4, requires_grad=True)
    out = pairwise_cosine_diversity(single)
    out.backward()
    assert out.item() == 0.0


def test_repbend_hand_computed():
    # benign: ‖[3,4] − [0,0]‖ = 5, ‖[1,1] − [1,1]‖ = 0 -> 2.5
    # harmful: ‖[0,2] − [0,0]‖ = 2 (only valid token)
    # diversity of [1,0],[0,1],[1,0] = 2/3
    # total = 0.5·2.5 − 0.1·2 + 0.3·(2/3) = 1.25
    cfg = RepBendConfig()
    reps = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    total, parts = repbend_loss(cfg, h([3.0, 4.0], [1.0, 1.0]), h([0.0, 0.0], [1.0, 1.0]), torch.ones(1, 2),
                                h([0.0, 2.0], [9.0, 9.0]), h([0.0, 0.0], [0.0, 0.0]), torch.tensor([[1, 0]]),
                                reps)
    assert total.item() == pytest.approx(1.25, abs=1e-6)
    assert parts["benign_l2"].item() == pytest.approx(2.5)
    assert parts["harmful_l2"].item() == pytest.approx(2.0)
    assert parts["diversity"].item() == pytest.approx(2 / 3, abs=1e-6)


def test_harmful_cap_bounds_the_term_and_stops_its_gradient():
    benign = torch.zeros(1, 1, 1, 2)
    reps = torch.randn(1, 2, 2)
    frozen = h([0.0, 0.0])
    cfg, capped = RepBendConfig(gamma=0.0), RepBendConfig(gamma=0.0, harmful_l2_cap=2.0)
    # uncapped: pushing further always lowers the loss (unbounded below)
    values = [repbend_loss(cfg, benign, benign, torch.ones(1, 1), h([s, 0.0]), frozen, torch.ones(1, 1),
                           reps)[0].item() for s in (1.0, 10.0, 1000.0)]
    assert values[0] > values[1] > values[2] == pytest.approx(-100.0)
    # capped at 2: the term is ≥ −β·2 and a position past the cap gets no gradient
    far = h([5.0, 0.0]).requires_grad_(True)
    total, parts = repbend_loss(capped, benign, benign, torch.ones(1, 1), far, frozen, torch.ones(1, 1), reps)
    assert parts["harmful_l2"].item() == 2.0 and total.item() == pytest.approx(-0.2)
    total.backward()
    assert torch.equal(far.grad, torch.zeros_like(far))


def test_gradient_pushes_harmful_away_and_pulls_benign_back():
    g = torch.Generator().manual_seed(4)
    bf, hf = torch.randn(2, 2, 3, 8, generator=g), torch.randn(2, 2, 3, 8, generator=g)
    bc = (bf + 0.3 * torch.randn(2, 2, 3, 8, generator=g)).requires_grad_(True)
    hc = (hf + 0.3 * torch.randn(2, 2, 3, 8, generator=g)).requires_grad_(True)
    reps = torch.randn(2, 2, 8, generator=g)
    mask = torch.ones(2, 3)
    total, _ = repbend_loss(RepBendConfig(), bc, bf, mask, hc, hf, mask, reps)
    gb, gh = torch.autograd.grad(total, (bc, hc))
    assert distance(bc - 0.1 * gb, bf, "l2").mean() < distance(bc, bf, "l2").mean()
    assert distance(hc - 0.1 * gh, hf, "l2").mean() > distance(hc, hf, "l2").mean()


def test_diversity_step_pulls_reps_together():
    g = torch.Generator().manual_seed(6)
    reps = torch.randn(2, 4, 8, generator=g, requires_grad=True)
    loss = pairwise_cosine_diversity(reps)
    (grad,) = torch.autograd.grad(loss, reps)
    assert pairwise_cosine_diversity(reps - 0.5 * grad) < loss


def test_golden_value():
    g = torch.Generator().manual_seed(77)
    bc, bf = torch.randn(3, 2, 4, 8, generator=g), torch.randn(3, 2, 4, 8, generator=g)
    hc, hf = torch.randn(2, 3, 4, 8, generator=g), torch.randn(2, 3, 4, 8, generator=g)
    bm = (torch.rand(2, 4, generator=g) > 0.3).float()
    hm = (torch.rand(3, 4, generator=g) > 0.3).float()
    reps = torch.randn(2, 3, 8, generator=g)
    total, parts = repbend_loss(RepBendConfig(), bc, bf, bm, hc, hf, hm, reps)
    assert total.item() == pytest.approx(GOLDEN[0], abs=1e-6)
    assert parts["diversity"].item() == pytest.approx(GOLDEN[1], abs=1e-6)
    total, _ = repbend_loss(RepBendConfig(harmful_l2_cap=3.0), bc, bf, bm, hc, hf, hm, reps)
    assert total.item() == pytest.approx(GOLDEN[2], abs=1e-6)


GOLDEN = (1.731206, 1.040510, 1.847917)  # (total, diversity, total with cap 3), pinned from the implementation (float32 CPU)
