"""The statistics the benchmarks report (bench/objective_validity.py, bench/defense_comparison.py), on
hand-computed values: a wrong rank correlation or interval would make every reported number wrong."""

import math

import pytest

from bench.defense_comparison import mean_ci, welch
from bench.objective_validity import noise, ranks, spearman


def test_ranks_share_the_mean_rank_of_ties():
    assert ranks([0.3, 0.1, 0.3, 0.9]) == [2.5, 1.0, 2.5, 4.0]


def test_spearman_on_hand_computed_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x 1..5, y 2,1,4,3,5: d^2 = 1+1+1+1+0 = 4 -> 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [5, 5, 5]) is None  # a constant side has no rank order


def test_in_sweep_noise_is_the_sd_over_evaluation_seeds_against_the_gaps_between_adapters():
    rows = [{"in_sweep": {"metrics": {"benign_accuracy": b, "asr": 0.0, "over_refusal": 0.0}},
             "in_sweep_noise": {1: {"benign_accuracy": b + d, "asr": 0.0, "over_refusal": 0.0},
                                2: {"benign_accuracy": b - d, "asr": 0.0, "over_refusal": 0.0}}}
            for b, d in ((0.9, 0.1), (0.5, 0.0))]
    out = noise(rows, "score")  # score = benign_accuracy - asr - over_refusal
    assert out["n_seeds"] == 3 and out["max_sd"] == pytest.approx(0.1) and out["median_sd"] == pytest.approx(0.1)
    assert out["top3_gaps_of_seed_means"] == [pytest.approx(0.4)]


def test_mean_ci_is_the_t_interval_across_seeds():
    m, sd, ci = mean_ci([0.1, 0.2, 0.3])
    assert m == pytest.approx(0.2) and sd == pytest.approx(0.1)
    assert ci == [pytest.approx(0.2 - 4.303 * 0.1 / math.sqrt(3)), pytest.approx(0.2 + 4.303 * 0.1 / math.sqrt(3))]
    assert mean_ci([0.5]) == (0.5, 0.0, None)


def test_welch_difference_separates_only_when_its_interval_excludes_zero():
    d = welch([0.9, 1.0, 1.1], [0.1, 0.2, 0.3])  # se = sqrt(0.01/3 + 0.01/3), df = 4 -> t 2.776
    assert d["diff"] == pytest.approx(0.8) and d["separated"]
    assert d["ci95"][0] == pytest.approx(0.8 - 2.776 * math.sqrt(0.02 / 3))
    assert not welch([0.0, 0.5, 1.0], [0.1, 0.6, 0.9])["separated"]
    assert welch([0.5], [0.1, 0.2]) is None
