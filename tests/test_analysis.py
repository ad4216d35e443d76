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


# ---- cluster bootstrap and Holm ------------------------------------------------------------------


def test_cluster_bootstrap_matches_a_direct_loop_with_the_same_draws():
    """The vectorised bootstrap against a slow, literal one: per replicate, draw C items with replacement,
    gather every (seed, pair) entry of each drawn item and average them; then flip each item's sign."""
    from scipy.stats import binom  # noqa: F401  (scipy is the tests' reference library; imported to fail early)

    rng_data = np.random.default_rng(7)
    items = rng_data.integers(100, 140, size=300)  # 40-odd items of uneven size, ids not 0..C-1
    d = rng_data.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=300, p=[0.15, 0.1, 0.4, 0.1, 0.25])
    n_boot = 410  # one block: one rng.integers(0, C, size=(n_boot, C)) call; 2.5% of it no whole number
    got = A.cluster_bootstrap_diff(d, items, n_boot=n_boot, seed=3)

    ids = sorted(set(items.tolist()))
    entries = {i: [float(x) for x, j in zip(d, items) if j == i] for i in ids}
    rng = np.random.default_rng(3)
    draws = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    means = []
    for row in draws:
        chosen = [x for c in row for x in entries[ids[c]]]
        means.append(sum(chosen) / len(chosen))
    means.sort()
    lo, hi = means[int(np.ceil(0.025 * n_boot)) - 1], means[int(np.ceil(0.975 * n_boot)) - 1]
    signs = rng.integers(0, 2, size=(n_boot, len(ids)))
    t = abs(sum(sum(entries[i]) for i in ids))
    extreme = sum(abs(sum((1 if s else -1) * sum(entries[i]) for s, i in zip(row, ids))) >= t - 1e-9 for row in signs)
    assert got.diff == pytest.approx(float(d.mean()), abs=1e-12)
    assert (got.lo, got.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert got.p == pytest.approx((1 + extreme) / (1 + n_boot), abs=1e-12)
    assert (got.n_items, got.n_entries) == (len(ids), 300)


def test_cluster_bootstrap_interval_is_the_binomial_closed_form():
    """Every item has 3 entries all equal to +1 or -1 (a math item tested on 3 seeds, say): a replicate
    mean is (2K - C)/C with K ~ Binomial(C, share of +1 items), so the 95% interval is that binomial's
    quantiles; the pair-level bootstrap would be narrower by a factor of about sqrt(3)."""
    from scipy.stats import binom

    C, plus = 200, 120
    items = np.repeat(np.arange(C), 3)
    d = np.repeat(np.where(np.arange(C) < plus, 1.0, -1.0), 3)
    got = A.cluster_bootstrap_diff(d, items, seed=0)
    q = plus / C
    lo, hi = ((2 * binom.ppf([0.025, 0.975], C, q) - C) / C)
    assert got.diff == pytest.approx(2 * q - 1)
    step = 2 / C  # a Monte Carlo quantile of 10,000 draws lands on the exact one or its neighbour
    assert abs(got.lo - lo) <= step + 1e-12 and abs(got.hi - hi) <= step + 1e-12
    naive = A.cluster_bootstrap_diff(d, np.arange(d.size), seed=0)  # every entry its own item
    assert (naive.hi - naive.lo) < 0.7 * (got.hi - got.lo)
    # the sign-flip test: P(|2·Binomial(C,1/2) - C| >= |2·plus - C|) by the closed form
    exact = 2 * binom.cdf(C - plus, C, 0.5)
    assert got.p == pytest.approx(exact, abs=0.01)


def test_cluster_bootstrap_of_no_difference_and_bad_input():
    same = A.cluster_bootstrap_diff(np.zeros(12), np.repeat(np.arange(4), 3))
    assert (same.diff, same.lo, same.hi, same.p) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="one id per"):
        A.cluster_bootstrap_diff(np.zeros(3), [1, 2])
    with pytest.raises(ValueError, match="no entries"):
        A.cluster_bootstrap_diff(np.zeros(0), [])


def holm_by_definition(p):
    """Holm (1979) step-down, written out: reject in order of increasing p while p_(j) <= alpha/(m-j+1);
    the adjusted p of H_(i) is the smallest alpha at which it is rejected."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def test_holm_hand_example_and_definition():
    # p = 0.01, 0.04, 0.03, 0.005 (m = 4). Sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06;
    # 0.04·1 = 0.04, raised to 0.06 by monotonicity. In the input's order: 0.03, 0.06, 0.06, 0.02.
    assert A.holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1; NaN passed through and not counted (m = 2 here)
    got = A.holm([0.6, np.nan, 0.2])
    assert got[0] == pytest.approx(0.6) and np.isnan(got[1]) and got[2] == pytest.approx(0.4)
    assert A.holm([0.7, 0.8]).tolist() == [1.0, 1.0]
    assert A.holm([]).size == 0 and np.isnan(A.holm([np.nan])).all()
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.random(rng.integers(1, 9)) ** 2
        assert A.holm(p).tolist() == pytest.approx(holm_by_definition(p.tolist()))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        A.holm([0.5, 1.5])
