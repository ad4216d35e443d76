"""Baseline routers: votes, standardised ensembles, oracle, domain-best.

Every expected value is computed independently here (plain Python loops, ``statistics``), never
from the routers' own earlier outputs.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from rmroute.harness.core.plugins import create, get_registry
from rmroute.harness.core.testing import check_router
from rmroute.harness.core.types import Selection
from rmroute.routers.baselines import OracleRouter

K, D = 4, 3


def _make(name, **kw):
    return create("router", name, **{"n_arms": K, "dim": D, "seed": 0, **kw})


def _random_margins(rng, B, k=K, nan_share=0.2, zero_share=0.1):
    m = rng.normal(size=(B, k))
    m[rng.random((B, k)) < zero_share] = 0.0
    m[rng.random((B, k)) < nan_share] = np.nan
    return m


def _hand_selection(calls):
    calls = np.asarray(calls, dtype=bool)
    arms = np.array([int(np.flatnonzero(r)[0]) if r.any() else 0 for r in calls], dtype=np.int64)
    calls = calls.copy()
    calls[np.arange(len(arms)), arms] = True
    return Selection(arms=arms, calls=calls)


# ---- registry and conformance -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["majority-vote", "mean-ensemble", "min-ensemble", "domain-best"])
def test_check_router(name):
    check_router(lambda **kw: create("router", name, **kw))


def test_check_router_oracle():
    # check_router also calls select(X) without items, which the default oracle refuses
    check_router(OracleRouter, without_gold="random")
    check_router(lambda **kw: create("router", "oracle", without_gold="random", **kw))


def test_oracle_without_gold_random_draws_uniformly():
    r = _make("oracle", without_gold="random")
    arms = r.select(np.zeros((400, D))).arms
    assert set(arms.tolist()) == set(range(K))
    mixed = r.select(np.zeros((2, D)), [{"rm_correct": [False, False, True, False]}, {"domain": "x"}])
    assert mixed.arms[0] == 2
    with pytest.raises(ValueError, match="without_gold must be one of 'error', 'random'"):
        _make("oracle", without_gold="skip")


def test_registry_metadata():
    reg = get_registry()
    for name, calls in [("majority-vote", "K"), ("mean-ensemble", "K"), ("min-ensemble", "K"),
                        ("oracle", 1), ("domain-best", 1)]:
        meta = reg.get("router", name).metadata
        assert meta["calls_per_item"] == calls
        assert meta["learns"] is False
        assert meta["description"] and meta["paper"]


@pytest.mark.parametrize("name", ["majority-vote", "mean-ensemble", "min-ensemble"])
def test_ensembles_call_every_rm_and_spread_credit(name):
    r = _make(name)
    sel = r.select(np.zeros((400, D)))
    assert sel.calls.all()
    counts = np.bincount(sel.arms, minlength=K)
    assert (counts > 50).all()  # seeded uniform credit, not always arm 0


# ---- majority vote ----------------------------------------------------------------------------
def _votes_by_hand(m, calls):
    out = []
    for row, crow in zip(m, calls):
        a = b = n = 0
        for v, c in zip(row, crow):
            if not c or math.isnan(v):
                continue
            n += 1
            a += v > 0
            b += v < 0
        out.append((a - b) if n else None)
    return out


def test_majority_vote_matches_brute_force():
    rng = np.random.default_rng(7)
    m = _random_margins(rng, 500)
    calls = rng.random((500, K)) < 0.8
    sel = _hand_selection(calls)
    got = _make("majority-vote").combine(sel, m)
    for g, want in zip(got, _votes_by_hand(m, sel.calls)):
        if want is None:
            assert math.isnan(g)
        else:
            assert g == want


def test_majority_vote_ignores_margins_it_did_not_pay_for():
    r = _make("majority-vote")
    sel = Selection(arms=np.array([0]), calls=np.array([[True, True, True, False]]))
    # the unpaid RM 3 would turn 2-1 into a 2-2 tie
    assert r.combine(sel, np.array([[1.0, 2.0, -1.0, -5.0]]))[0] == 1.0


def test_majority_vote_ties_are_ties_scored_half():
    from rmroute.harness.analysis import score

    m = np.tile([[1.0, -1.0, 2.0, -2.0]], (200, 1))  # every item a 2-2 tie
    sel = Selection(arms=np.zeros(200, dtype=np.int64), calls=np.ones((200, K), dtype=bool))
    got = create("router", "majority-vote", n_arms=K, dim=D, seed=11).combine(sel, m)
    assert (got == 0).all()  # no coin: the same for every seed
    np.testing.assert_array_equal(got, create("router", "majority-vote", n_arms=K, dim=D, seed=12).combine(sel, m))
    assert (score(got, np.ones(200)) == 0.5).all() and (score(got, -np.ones(200)) == 0.5).all()


def test_majority_vote_zero_margins_are_ties_and_abstentions_are_nan():
    r = _make("majority-vote")
    sel = Selection(arms=np.zeros(2, dtype=np.int64), calls=np.ones((2, K), dtype=bool))
    out = r.combine(sel, np.array([[0.0, 0.0, np.nan, np.nan], [np.nan] * K]))
    assert out[0] == 0.0
    assert math.isnan(out[1])


def test_combine_rejects_inf_and_bad_shapes():
    r = _make("mean-ensemble")
    sel = Selection(arms=np.zeros(2, dtype=np.int64), calls=np.ones((2, K), dtype=bool))
    with pytest.raises(ValueError, match=r"inf at \(item, arm\) \[\(1, 2\)\]"):
        r.combine(sel, np.array([[0.0] * K, [0.0, 0.0, np.inf, 0.0]]))
    with pytest.raises(ValueError, match="margins must have shape"):
        r.combine(sel, np.zeros((2, K + 1)))


# ---- standardised ensembles -------------------------------------------------------------------
def _offline(rng, N=300):
    m = rng.normal(size=(N, K)) * np.array([1.0, 3.0, 0.5, 10.0]) + np.array([0.0, 2.0, -1.0, 5.0])
    m[rng.random((N, K)) < 0.15] = np.nan
    gold = np.where(rng.random(N) < 0.5, 1, -1)
    return rng.normal(size=(N, D)), m, gold


def _stats_by_hand(m):
    means, stds = [], []
    for k in range(m.shape[1]):
        col = [float(v) for v in m[:, k] if not math.isnan(v)]
        mu = statistics.fmean(col) if col else 0.0
        sd = statistics.pstdev(col) if len(col) > 1 else 0.0
        means.append(mu)
        stds.append(sd if sd > 1e-12 else 1.0)
    return means, stds


@pytest.mark.parametrize("name", ["mean-ensemble", "min-ensemble"])
def test_fit_offline_statistics(name):
    X, m, gold = _offline(np.random.default_rng(1))
    m[:, 2] = 4.0  # constant RM: std guard
    m[:, 3] = np.nan  # RM that always abstained: mean 0, std 1
    r = _make(name)
    r.fit_offline(X, m, gold)
    means, stds = _stats_by_hand(m)
    np.testing.assert_allclose(r.mean, means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.std, stds, rtol=1e-12)
    assert r.std[2] == 1.0 and r.mean[2] == 4.0 and (r.mean[3], r.std[3]) == (0.0, 1.0)


def _z_rows(m, calls, means, stds):
    rows = []
    for row, crow in zip(m, calls):
        rows.append([(k, (v - means[k]) / stds[k]) for k, (v, c) in enumerate(zip(row, crow))
                     if c and not math.isnan(v)])
    return rows


def test_mean_ensemble_matches_hand_computation():
    rng = np.random.default_rng(2)
    X, m_off, gold = _offline(rng)
    r = _make("mean-ensemble")
    r.fit_offline(X, m_off, gold)
    means, stds = _stats_by_hand(m_off)
    m = _random_margins(rng, 300) * 4
    sel = _hand_selection(rng.random((300, K)) < 0.7)
    got = r.combine(sel, m)
    for g, zs in zip(got, _z_rows(m, sel.calls, means, stds)):
        if zs:
            assert g == pytest.approx(sum(z for _, z in zs) / len(zs), rel=1e-12, abs=1e-12)
        else:
            assert math.isnan(g)


def test_ensembles_before_fit_use_raw_margins():
    m = np.array([[1.0, 3.0, np.nan, -2.0]])
    sel = Selection(arms=np.zeros(1, dtype=np.int64), calls=np.ones((1, K), dtype=bool))
    assert _make("mean-ensemble").combine(sel, m)[0] == pytest.approx(2.0 / 3.0)
    assert _make("min-ensemble").combine(sel, m)[0] == 1.0


def test_min_ensemble_matches_hand_computation():
    rng = np.random.default_rng(3)
    X, m_off, gold = _offline(rng)
    r = _make("min-ensemble")
    r.fit_offline(X, m_off, gold)
    means, stds = _stats_by_hand(m_off)
    m = _random_margins(rng, 300) * 4
    sel = _hand_selection(rng.random((300, K)) < 0.7)
    got = r.combine(sel, m)
    for g, zs in zip(got, _z_rows(m, sel.calls, means, stds)):
        if not zs:
            assert math.isnan(g)
            continue
        best = zs[0]
        for k, z in zs[1:]:
            if abs(z) < abs(best[1]):
                best = (k, z)
        assert g == pytest.approx(best[1], rel=1e-12, abs=1e-12)


def test_min_ensemble_equal_magnitudes_go_to_lowest_arm():
    sel = Selection(arms=np.zeros(1, dtype=np.int64), calls=np.ones((1, K), dtype=bool))
    assert _make("min-ensemble").combine(sel, np.array([[5.0, -0.5, 0.5, 2.0]]))[0] == -0.5


def test_ensemble_state_round_trip_keeps_offline_statistics():
    X, m_off, gold = _offline(np.random.default_rng(4))
    r = _make("mean-ensemble")
    r.fit_offline(X, m_off, gold)
    fresh = _make("mean-ensemble", seed=99)
    fresh.load_state_dict(r.state_dict())
    np.testing.assert_array_equal(fresh.mean, r.mean)
    np.testing.assert_array_equal(fresh.std, r.std)
    assert fresh.fitted


def test_fit_offline_rejects_bad_input():
    r = _make("mean-ensemble")
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        r.fit_offline(None, np.zeros((3, K + 1)), np.ones(3))
    with pytest.raises(ValueError, match=r"gold must be \+1"):
        r.fit_offline(None, np.zeros((3, K)), np.array([1, 2, -1]))


# ---- oracle -----------------------------------------------------------------------------------
def test_oracle_routing_accuracy_is_one_where_some_rm_is_right():
    rng = np.random.default_rng(5)
    correct = rng.random((1000, K)) < 0.3
    items = [{"rm_correct": row.tolist(), "domain": "x"} for row in correct]
    sel = _make("oracle").select(np.zeros((1000, D)), items)
    assert sel.n_calls.tolist() == [1] * 1000
    some = correct.any(axis=1)
    assert some.sum() > 500 and (~some).sum() > 50
    assert correct[np.arange(1000), sel.arms][some].all()
    # items no RM gets right still get a valid arm, drawn from all K
    assert set(sel.arms[~some].tolist()) == set(range(K))


def test_oracle_draws_uniformly_among_agreeing_rms_and_is_seeded():
    items = [{"rm_correct": [False, True, False, True]}] * 2000
    a = _make("oracle").select(np.zeros((2000, D)), items).arms
    b = _make("oracle").select(np.zeros((2000, D)), items).arms
    np.testing.assert_array_equal(a, b)
    counts = np.bincount(a, minlength=K)
    assert counts[0] == counts[2] == 0 and min(counts[1], counts[3]) > 800


def test_oracle_without_items_or_rm_correct_explains_itself():
    r = _make("oracle")
    with pytest.raises(ValueError, match=r"'rm_correct'.*replay"):
        r.select(np.zeros((2, D)))
    with pytest.raises(ValueError, match=r"item 1 has no key 'rm_correct'.*replay"):
        r.select(np.zeros((2, D)), [{"rm_correct": [True] * K}, {"domain": "x"}])
    with pytest.raises(ValueError, match=r"item 0: 'rm_correct' must have 4 entries"):
        r.select(np.zeros((1, D)), [{"rm_correct": [True, False]}])
    with pytest.raises(ValueError, match=r"item 0: 'rm_correct' must hold booleans"):
        r.select(np.zeros((1, D)), [{"rm_correct": ["no", True, False, True]}])
    # numpy rows and 0/1 are fine
    assert r.select(np.zeros((1, D)), [{"rm_correct": np.array([0, 0, 1, 0])}]).arms.tolist() == [2]


# ---- domain-best ------------------------------------------------------------------------------
def _accuracy_by_hand(m, gold, rows):
    acc = []
    for k in range(m.shape[1]):
        hits = sum(1 for i in rows if not math.isnan(m[i, k]) and m[i, k] != 0 and (m[i, k] > 0) == (gold[i] > 0))
        acc.append(hits / len(rows))
    return acc


def test_domain_best_picks_per_domain_argmax_accuracy():
    rng = np.random.default_rng(6)
    N = 600
    domains = np.array(["math", "code", "chat"])[rng.integers(0, 3, size=N)]
    gold = np.where(rng.random(N) < 0.5, 1, -1)
    skill = {"math": [0.9, 0.6, 0.5, 0.55], "code": [0.5, 0.6, 0.95, 0.6], "chat": [0.6, 0.8, 0.55, 0.7]}
    right = np.array([[rng.random() < skill[d][k] for k in range(K)] for d in domains])
    m = np.abs(rng.normal(size=(N, K))) * np.where(right, gold[:, None], -gold[:, None])
    m[rng.random((N, K)) < 0.05] = np.nan
    items = [{"domain": d} for d in domains]
    r = _make("domain-best")
    r.fit_offline(rng.normal(size=(N, D)), m, gold, items)
    for d in ("math", "code", "chat"):
        acc = _accuracy_by_hand(m, gold, [i for i in range(N) if domains[i] == d])
        assert r.domain_best[d] == acc.index(max(acc))
    assert r.domain_best == {"math": 0, "code": 2, "chat": 1}
    overall = _accuracy_by_hand(m, gold, list(range(N)))
    assert r.global_best == overall.index(max(overall))
    sel = r.select(np.zeros((5, D)), [{"domain": "code"}, {"domain": "math"}, {"domain": "new"}, {}, {"domain": "chat"}])
    assert sel.arms.tolist() == [2, 0, r.global_best, r.global_best, 1]
    assert r.select(np.zeros((2, D))).arms.tolist() == [r.global_best] * 2


def test_domain_best_scores_abstentions_half_and_skips_unlabelled():
    # RM 0: right on 6 of 10 -> 0.6. RM 1 answers 5 (right on `hits` of them) and abstains on 5:
    # (hits + 5 * 0.5) / 10, so 3 hits -> 0.55 (RM 0 wins), 5 hits -> 0.75 (RM 1 wins)
    gold = np.array([1, -1] * 5 + [0, 0])
    for hits, want in ((3, 0), (5, 1)):
        m = np.zeros((12, 2))
        m[:10, 0] = gold[:10] * np.array([1, 1, 1, 1, 1, 1, -1, -1, -1, -1])
        signs = np.array([1] * hits + [-1] * (5 - hits))
        m[:10, 1] = np.where(np.arange(10) < 5, gold[:10] * np.concatenate([signs, np.ones(5)]), np.nan)
        m[10:, 1] = 1.0  # unlabelled pairs would otherwise matter
        r = create("router", "domain-best", n_arms=2, dim=1, seed=0)
        r.fit_offline(None, m, gold, [{"domain": "d"}] * 12)
        assert r.domain_best == {"d": want} and r.global_best == want


def test_domain_best_min_pairs_and_ties():
    gold = np.array([1, 1, 1, -1])
    m = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [-1.0, 1.0]])
    items = [{"domain": "a"}] * 3 + [{"domain": "b"}]
    r = create("router", "domain-best", n_arms=2, dim=1, seed=0, min_pairs=2)
    r.fit_offline(None, m, gold, items)
    assert r.domain_best == {"a": 0}  # tie 3/3 vs 3/3 -> lowest arm; b has too few pairs
    assert r.select(np.zeros((1, 1)), [{"domain": "b"}]).arms.tolist() == [r.global_best]
    with pytest.raises(ValueError, match="min_pairs must be an int >= 1"):
        create("router", "domain-best", n_arms=2, dim=1, seed=0, min_pairs=0)


def test_domain_best_state_round_trip():
    gold = np.array([1, -1, 1, -1])
    m = np.array([[1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    r = create("router", "domain-best", n_arms=2, dim=1, seed=0)
    r.fit_offline(None, m, gold, [{"domain": "p"}, {"domain": "p"}, {"domain": "q"}, {"domain": "q"}])
    fresh = create("router", "domain-best", n_arms=2, dim=1, seed=3)
    fresh.load_state_dict(r.state_dict())
    items = [{"domain": "p"}, {"domain": "q"}, {"domain": "z"}]
    assert fresh.select(np.zeros((3, 1)), items).arms.tolist() == r.select(np.zeros((3, 1)), items).arms.tolist() == [0, 1, 0]
