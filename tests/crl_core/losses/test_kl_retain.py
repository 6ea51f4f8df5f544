import math

import pytest
import torch

from crl_core.losses.kl_retain import kl_retain_loss

# 2 tokens, 3-word vocabulary (B = 1):
#   token 1: frozen logits [0, 0, 0] -> q = [1/3, 1/3, 1/3]; current [ln 2, 0, 0] -> p = [1/2, 1/4, 1/4]
#            KL(q ‖ p) = (1/3)·(ln((1/3)/(1/2)) + 2·ln((1/3)/(1/4))) = (1/3)·(ln(2/3) + 2·ln(4/3))
#   token 2: identical logits -> KL = 0
KL1 = (math.log(2 / 3) + 2 * math.log(4 / 3)) / 3  # ≈ 0.056633
CUR = torch.tensor([[[math.log(2.0), 0.0, 0.0], [1.0, 2.0, 3.0]]])
FRZ = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]])


def test_zero_when_logits_equal():
    z = torch.randn(2, 4, 11)
    assert kl_retain_loss(z, z.clone(), torch.ones(2, 4)).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_computed_two_tokens_three_words():
    # T = 1: T² = 1; token mean over the 2 valid tokens = KL1 / 2
    assert kl_retain_loss(CUR, FRZ, torch.ones(1, 2), temperature=1.0).item() == pytest.approx(KL1 / 2, abs=1e-6)
    # mask out token 2: mean over 1 token = KL1
    got = kl_retain_loss(CUR, FRZ, torch.tensor([[1, 0]]), temperature=1.0)
    assert got.item() == pytest.approx(KL1, abs=1e-6)
    # published scaling ('batchmean'): sum over valid tokens / rows = KL1 / 1
    got = kl_retain_loss(CUR, FRZ, torch.ones(1, 2), temperature=1.0, reduction="batchmean")
    assert got.item() == pytest.approx(KL1, abs=1e-6)


def test_temperature_scaling():
    # logits scaled by T give the same distributions at temperature T, and the loss is multiplied by T²
    base = kl_retain_loss(CUR, FRZ, torch.ones(1, 2), temperature=1.0)
    scaled = kl_retain_loss(2.0 * CUR, 2.0 * FRZ, torch.ones(1, 2), temperature=2.0)
    assert scaled.item() == pytest.approx(4.0 * base.item(), abs=1e-6)
    # the default temperature is 2
    assert kl_retain_loss(2.0 * CUR, 2.0 * FRZ, torch.ones(1, 2)).item() == pytest.approx(scaled.item())
    # a higher temperature softens both distributions: smaller KL before the T² factor
    soft = kl_retain_loss(CUR, FRZ, torch.ones(1, 2), temperature=4.0) / 16.0
    assert soft.item() < base.item()


def test_token_mean_does_not_scale_with_length_but_batchmean_does():
    z_cur, z_frz = torch.randn(1, 1, 7), torch.randn(1, 1, 7)
    short = kl_retain_loss(z_cur, z_frz, torch.ones(1, 1))
    long_cur, long_frz = z_cur.repeat(1, 10, 1), z_frz.repeat(1, 10, 1)
    assert kl_retain_loss(long_cur, long_frz, torch.ones(1, 10)).item() == pytest.approx(short.item(), rel=1e-5)
    long_bm = kl_retain_loss(long_cur, long_frz, torch.ones(1, 10), reduction="batchmean")
    assert long_bm.item() == pytest.approx(10 * short.item(), rel=1e-5)


def test_masking_all_masked_dtype_and_gradients():
    cur = torch.randn(2, 3, 5, requires_grad=True)
    frz = torch.randn(2, 3, 5, requires_grad=True)
    out = kl_retain_loss(cur, frz, torch.zeros(2, 3))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(cur.grad).all()
    cur.grad = None
    # masked positions change nothing
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    a = kl_retain_loss(cur, frz, mask)
    cur2 = cur.detach().clone()
    cur2[0, 2] = 1000.0
    assert kl_retain_loss(cur2, frz, mask).item() == pytest.approx(a.item(), abs=1e-7)
    # the frozen logits are a constant target
    a.backward()
    assert frz.grad is None and cur.grad.abs().sum() > 0
    # bf16 in, float32 out
    assert kl_retain_loss(cur.detach().bfloat16(), frz.detach().bfloat16(), mask).dtype == torch.float32


def test_bad_arguments():
    z = torch.randn(1, 2, 3)
    with pytest.raises(ValueError, match="temperature"):
        kl_retain_loss(z, z, torch.ones(1, 2), temperature=0.0)
    with pytest.raises(ValueError, match="mask shape"):
        kl_retain_loss(z, z, torch.ones(2, 1))
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        kl_retain_loss(z, torch.randn(1, 2, 4), torch.ones(1, 2))
    with pytest.raises(ValueError, match="reduction"):
        kl_retain_loss(z, z, torch.ones(1, 2), reduction="sum")


def test_golden_value():
    g = torch.Generator().manual_seed(99)
    cur, frz = torch.randn(2, 6, 13, generator=g), torch.randn(2, 6, 13, generator=g)
    mask = (torch.rand(2, 6, generator=g) > 0.25).float()
    assert kl_retain_loss(cur, frz, mask).item() == pytest.approx(GOLDEN, abs=1e-6)


GOLDEN = 0.935539  # pinned from the implementation at creation (float32 CPU)
