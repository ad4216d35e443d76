"""Statistics helpers checked against scipy (a test-only reference) and hand counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from rmroute.harness import analysis as A


@pytest.mark.parametrize("k, n", [(0, 10), (8, 10), (10, 10), (137, 300), (1, 1)])
def test_wilson_matches_scipy(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = A.wilson(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


def test_correct_matrix_ties_and_abstentions_are_not_right():
    margins = np.array([[1.0, -2.0, 0.0, np.nan], [-0.5, 0.5, 3.0, -1.0]])
    gold = np.array([1, -1])
    assert A.correct(margins, gold).tolist() == [[True, False, False, False], [True, False, False, True]]


def test_correct_decisions_one_per_pair():
    decisions = np.array([2.0, -0.1, 0.0, np.nan, -3.0, 0.4])
    gold = np.array([1, 1, -1, 1, -1, -1])
    assert A.correct(decisions, gold).tolist() == [True, False, False, False, True, False]
    # a column of a margin matrix gets the same verdict as that column alone
    m = np.stack([decisions, -decisions], axis=1)
    assert A.correct(m, gold)[:, 1].tolist() == A.correct(-decisions, gold).tolist() == [False, True, False, False, False, True]


def test_domain_best_and_oracles():
    # RM 0 is right on domain x, RM 1 on domain y; a third RM is always wrong
    right = np.array([[1, 0, 0]] * 4 + [[0, 1, 0]] * 4, dtype=bool)
    domains = ["x"] * 4 + ["y"] * 4
    best, global_best = A.domain_best_arms(right, domains)
    assert best == {"x": 0, "y": 1} and global_best == 0
    assert A.routed_right(right, np.array([best[d] for d in domains])).all()
    assert A.oracle_right(right).mean() == 1.0
    # shuffling within a domain keeps per-domain accuracy, which here is 0 or 1: the oracle stays 1
    assert A.shuffled_oracle(right, domains, np.random.default_rng(0), n_shuffles=5) == 1.0


def test_shuffled_oracle_of_independent_coin_flips():
    # K independent RMs each right half the time: P(some RM right) = 1 - 0.5^K whether shuffled or not
    rng = np.random.default_rng(1)
    right = rng.random((4000, 3)) < 0.5
    value = A.shuffled_oracle(right, ["d"] * 4000, rng, n_shuffles=10)
    assert value == pytest.approx(1 - 0.5**3, abs=0.02)


def test_shuffle_destroys_structure():
    # two RMs right on complementary halves: the oracle is 1; shuffled, about 1 - 0.5*0.5 = 0.75
    right = np.zeros((2000, 2), dtype=bool)
    right[:1000, 0] = True
    right[1000:, 1] = True
    value = A.shuffled_oracle(right, ["d"] * 2000, np.random.default_rng(2), n_shuffles=20)
    assert A.oracle_right(right).mean() == 1.0 and value == pytest.approx(0.75, abs=0.02)


def test_paired_bootstrap_interval_covers_the_difference():
    a = np.array([1] * 70 + [0] * 30)
    b = np.array([1] * 50 + [0] * 50)
    diff, lo, hi = A.paired_bootstrap_diff(a, b, np.random.default_rng(0))
    assert diff == pytest.approx(0.2) and lo < 0.2 < hi and lo > 0.05
