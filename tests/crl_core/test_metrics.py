import pytest

from crl_core.metrics import rate, wilson_interval


def test_wilson_interval_matches_hand_computed_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)


def test_rate_and_bad_counts():
    assert rate(3, 4)["rate"] == 0.75 and rate(0, 0)["rate"] is None
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
