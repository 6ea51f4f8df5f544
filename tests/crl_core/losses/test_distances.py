import math

import pytest
import torch

from crl_core.losses.distances import DISTANCE_KINDS, DISTANCE_RANGES, distance, masked_mean

T = torch.tensor


# x = [3, 4], y = [3, 0]: x − y = [0, 4] -> ‖·‖ = 4; ‖y‖ = 3; cos = 9 / (5·3) = 0.6
# l2 = 4; l2_relative = 4/3; cosine = 0.4; l2squarednormalized = 0.3·(2 − 2·0.6) = 0.24;
# mix = 4 + 10·(1 − 0.6) = 8
@pytest.mark.parametrize("kind,expected", [
    ("l2", 4.0), ("l2_relative", 4.0 / 3.0), ("cosine", 0.4), ("l2squarednormalized", 0.24), ("mix", 8.0)])
def test_hand_computed_values(kind, expected):
    assert distance(T([3.0, 4.0]), T([3.0, 0.0]), kind).item() == pytest.approx(expected, abs=1e-6)


# x = [1, 0], y = [−1, 0] (opposite): l2 = 2, l2_relative = 2/1, cosine = 2 (its max),
# l2squarednormalized = 0.3·‖[2, 0]‖² = 1.2 (its max), mix = 2 + 10·(1 − ReLU(−1)) = 12
@pytest.mark.parametrize("kind,expected", [
    ("l2", 2.0), ("l2_relative", 2.0), ("cosine", 2.0), ("l2squarednormalized", 1.2), ("mix", 12.0)])
def test_opposite_vectors_reach_bounded_maxima(kind, expected):
    assert distance(T([1.0, 0.0]), T([-1.0, 0.0]), kind).item() == pytest.approx(expected, abs=1e-6)
    hi = DISTANCE_RANGES[kind][1]
    if not math.isinf(hi):
        assert expected == pytest.approx(hi)


@pytest.mark.parametrize("kind", DISTANCE_KINDS)
def test_identical_vectors_are_at_distance_zero(kind):
    x = T([0.5, -2.0, 7.0])
    # float32 rounding of cos (≈ 1 − 1e-7) is amplified 10× by mix: 1e-5 tolerance
    assert distance(x, x.clone(), kind).item() == pytest.approx(0.0, abs=1e-5)


def test_zero_vectors_are_safe():
    # x = [3, 4], y = 0: l2 = 5; cos(x, 0) is taken as 0 -> cosine 1, mix 5 + 10 = 15;
    # x̂ = [0.6, 0.8], ŷ = 0 -> l2squarednormalized = 0.3; l2_relative = 5 / eps: finite
    x, zero = T([3.0, 4.0]), torch.zeros(2)
    assert distance(x, zero, "l2").item() == pytest.approx(5.0)
    assert distance(x, zero, "cosine").item() == pytest.approx(1.0)
    assert distance(x, zero, "mix").item() == pytest.approx(15.0)
    assert distance(x, zero, "l2squarednormalized").item() == pytest.approx(0.3)
    assert math.isfinite(distance(x, zero, "l2_relative").item())
    for kind in DISTANCE_KINDS:
        a = torch.zeros(2, requires_grad=True)
        d = distance(a, torch.zeros(2), kind)
        d.backward()
        assert torch.isfinite(d) and torch.isfinite(a.grad).all(), kind


@pytest.mark.parametrize("kind", DISTANCE_KINDS)
def test_random_values_lie_in_the_declared_range(kind):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(500, 8, generator=g), torch.randn(500, 8, generator=g)
    d = distance(x, y, kind)
    lo, hi = DISTANCE_RANGES[kind]
    assert d.min().item() >= lo - 1e-6 and d.max().item() <= hi + 1e-6


def test_ranges_table():
    assert set(DISTANCE_RANGES) == set(DISTANCE_KINDS)
    assert DISTANCE_RANGES["cosine"] == (0.0, 2.0)
    assert DISTANCE_RANGES["l2squarednormalized"] == (0.0, 1.2)
    for kind in ("l2", "l2_relative", "mix"):
        assert DISTANCE_RANGES[kind] == (0.0, math.inf)


def test_broadcasting_and_float32_output():
    x = torch.randn(2, 3, 4, 5).to(torch.bfloat16)
    centroid = torch.randn(2, 5)[:, None, None, :]
    for kind in DISTANCE_KINDS:
        d = distance(x, centroid, kind)
        assert d.shape == (2, 3, 4) and d.dtype == torch.float32


def test_l2squarednormalized_is_0_6_cosine():
    x, y = torch.randn(10, 6), torch.randn(10, 6)
    torch.testing.assert_close(distance(x, y, "l2squarednormalized"), 0.6 * distance(x, y, "cosine"))


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown distance kind"):
        distance(torch.ones(2), torch.ones(2), "norm")


def test_masked_mean_hand_computed():
    # values [L=2, B=1, T=2] = [[1, 2]], [[3, 4]]; mask [[1, 0]] -> (1 + 3) / 2 = 2
    v = T([[[1.0, 2.0]], [[3.0, 4.0]]])
    assert masked_mean(v, T([[1.0, 0.0]])).item() == pytest.approx(2.0)
    assert masked_mean(v, T([[True, True]])).item() == pytest.approx(2.5)
    # weights 0.5 / 1: (0.5·1 + 2 + 0.5·3 + 4) / 3 = 8 / 3
    assert masked_mean(v, T([[0.5, 1.0]])).item() == pytest.approx(8.0 / 3.0)


def test_masked_mean_all_masked_and_nan_at_masked_positions():
    v = torch.randn(2, 1, 2, requires_grad=True)
    out = masked_mean(v, torch.zeros(1, 2))
    out.backward()
    assert out.item() == 0.0 and torch.equal(v.grad, torch.zeros_like(v))
    w = T([[[1.0, float("nan")]], [[3.0, float("inf")]]])
    assert masked_mean(w, T([[1, 0]])).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="mask shape"):
        masked_mean(v, torch.ones(3, 2))


def test_golden_values():
    g = torch.Generator().manual_seed(1234)
    x, y = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    got = {kind: distance(x, y, kind).sum().item() for kind in DISTANCE_KINDS}
    expected = GOLDEN
    for kind in DISTANCE_KINDS:
        assert got[kind] == pytest.approx(expected[kind], abs=1e-6, rel=1e-6), kind


# pinned from the implementation at creation (float32 CPU); a change here means the maths changed
GOLDEN = {"l2": 13.175220, "l2_relative": 5.411747, "cosine": 3.837945, "l2squarednormalized": 2.302767,
          "mix": 50.809959}
