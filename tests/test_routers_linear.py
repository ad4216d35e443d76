"""The linear bandit routers (bayesian*, laser) against independent computations.

Every check of the maths compares with something computed another way: the closed-form batch
posterior (one solve per arm over all data), mabwiser's LinUCB / LinTS, or the Gaussian CDF.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rmroute.harness.core.plugins as plugins
from rmroute.harness.core.testing import check_router
from rmroute.routers.bayesian import BayesianAdaptiveRouter, BayesianOfflineRouter, BayesianRouter
from rmroute.routers.laser import LaserRouter
from rmroute.routers.linear import LinearGaussianArms

LINEAR = ["bayesian", "bayesian-offline", "bayesian-online", "bayesian-adaptive", "laser"]


# ---- independent references ------------------------------------------------------------------
def closed_form(X, arms, r, n_arms, prior_mean=None, lam0=1.0, noise=1.0):
    """(λ0·I + XᵀX/σ²)⁻¹(λ0·μ0 + Xᵀr/σ²) and the inverse precision, per arm, by direct solves."""
    d = X.shape[1]
    mu0 = np.zeros((n_arms, d)) if prior_mean is None else np.asarray(prior_mean)
    means, covs = np.zeros((n_arms, d)), np.zeros((n_arms, d, d))
    for k in range(n_arms):
        Xk, rk = X[arms == k], r[arms == k]
        prec = lam0 * np.eye(d) + Xk.T @ Xk / noise
        means[k] = np.linalg.solve(prec, lam0 * mu0[k] + Xk.T @ rk / noise)
        covs[k] = np.linalg.inv(prec)
    return means, covs


def rel_err(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-300))


def random_history(rng, n, d, K, scale=1.0):
    X = rng.normal(size=(n, d)) * scale
    arms = rng.integers(0, K, size=n)
    r = rng.normal(size=n)
    return X, arms, r


def feed_in_batches(router, X, arms, r, rng, max_batch=40):
    """Feed a history in random-sized batches (sizes 1..max_batch, singles included)."""
    i = 0
    while i < len(X):
        n = int(rng.integers(1, max_batch + 1))
        router.update(X[i:i + n], arms[i:i + n], r[i:i + n])
        i += n


def norm_cdf(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


# ---- (1) exact posterior ---------------------------------------------------------------------
@pytest.mark.parametrize("with_prior", [False, True])
@pytest.mark.parametrize("lam0,noise", [(1.0, 1.0), (2.5, 0.3)])
def test_bayesian_posterior_equals_closed_form(with_prior, lam0, noise):
    rng = np.random.default_rng(11)
    K, d = 4, 9
    M0 = rng.normal(size=(K, d)) if with_prior else None
    router = plugins.create("router", "bayesian", n_arms=K, dim=d, seed=0, prior_mean=M0,
                            prior_precision=lam0, noise=noise)
    X, arms, r = random_history(rng, 700, d, K)
    arms[arms == 3] = 2  # arm 3 never observed: must stay at its prior
    feed_in_batches(router, X, arms, r, rng)
    # a block bigger than the Woodbury block size too
    X2, a2, r2 = random_history(rng, 600, d, K)
    a2[a2 == 3] = 2
    router.update(X2, a2, r2)
    Xall, aall, rall = np.vstack([X, X2]), np.concatenate([arms, a2]), np.concatenate([r, r2])
    mean_ref, cov_ref = closed_form(Xall, aall, rall, K, M0, lam0, noise)
    for k in range(K):
        assert rel_err(router.posterior_mean()[k], mean_ref[k]) < 1e-8 or np.allclose(mean_ref[k], 0)
        assert rel_err(router.posterior_cov()[k], cov_ref[k]) < 1e-8
    assert rel_err(router.posterior_mean(), mean_ref) < 1e-8
    if with_prior:
        np.testing.assert_array_equal(router.posterior_mean()[3], M0[3])
    # precision helper inverts the covariance back
    assert rel_err(router.posterior_precision()[0], np.linalg.inv(cov_ref[0])) < 1e-8


def test_prior_scale_multiplies_prior_mean():
    rng = np.random.default_rng(2)
    M0 = rng.normal(size=(3, 4))
    router = BayesianRouter(3, 4, prior_mean=M0, prior_scale=2.5, prior_precision=3.0)
    X, arms, r = random_history(rng, 50, 4, 3)
    router.update(X, arms, r)
    mean_ref, _ = closed_form(X, arms, r, 3, 2.5 * M0, 3.0, 1.0)
    assert rel_err(router.posterior_mean(), mean_ref) < 1e-8


def test_predictive_matches_direct_computation():
    rng = np.random.default_rng(3)
    K, d = 3, 7
    router = BayesianRouter(K, d, prior_mean=rng.normal(size=(K, d)))
    X, arms, r = random_history(rng, 90, d, K)
    router.update(X, arms, r)
    Xq = rng.normal(size=(25, d))
    means, var = router.predictive(Xq)
    mu, cov = router.posterior_mean(), router.posterior_cov()
    for b in range(25):
        for k in range(K):
            assert means[b, k] == pytest.approx(mu[k] @ Xq[b], rel=1e-10, abs=1e-12)
            assert var[b, k] == pytest.approx(Xq[b] @ cov[k] @ Xq[b], rel=1e-10)


def test_thompson_choice_frequencies_match_gaussian_probability():
    """With two arms, P(pick arm 0) = Φ((m0 − m1)/sqrt(v0 + v1)) for a fixed posterior."""
    rng = np.random.default_rng(4)
    router = BayesianRouter(2, 3, seed=7)
    X, arms, r = random_history(rng, 30, 3, 2)
    router.update(X, arms, r + np.where(arms == 0, 0.3, 0.0))
    x = rng.normal(size=3)
    n = 40_000
    picks = router.select(np.tile(x, (n, 1))).arms
    m, v = router.predictive(x[None])
    p0 = norm_cdf((m[0, 0] - m[0, 1]) / math.sqrt(v[0, 0] + v[0, 1]))
    se = math.sqrt(p0 * (1 - p0) / n)
    assert abs((picks == 0).mean() - p0) < 5 * se + 1e-3


# ---- (2) laser == mabwiser LinUCB ------------------------------------------------------------
def mabwiser_linucb(K, alpha, lam):
    from mabwiser.mab import MAB, LearningPolicy

    return MAB(arms=list(range(K)), learning_policy=LearningPolicy.LinUCB(alpha=alpha, l2_lambda=lam), seed=0)


@pytest.mark.parametrize("alpha,lam", [(0.1, 1.0), (1.5, 0.5)])
def test_laser_per_item_decisions_match_mabwiser(alpha, lam):
    rng = np.random.default_rng(5)
    K, d, B = 4, 8, 16
    theta = rng.normal(size=(K, d))
    ours = plugins.create("router", "laser", n_arms=K, dim=d, seed=0, alpha=alpha, ridge=lam, mode="per_item")
    mab = mabwiser_linucb(K, alpha, lam)
    X0, a0, r0 = random_history(rng, 40, d, K)
    ours.update(X0, a0, r0)
    mab.fit(decisions=a0, rewards=r0, contexts=X0)
    agreed = 0
    for _ in range(30):
        X = rng.normal(size=(B, d))
        sel = ours.select(X)
        theirs = np.asarray(mab.predict(X))
        np.testing.assert_array_equal(sel.arms, theirs)
        exp = mab.predict_expectations(X)
        ucb_ref = np.array([[e[k] for k in range(K)] for e in exp])
        np.testing.assert_allclose(ours.ucb(X), ucb_ref, rtol=1e-9, atol=1e-12)
        fb = np.einsum("bd,bd->b", X, theta[sel.arms]) + 0.1 * rng.normal(size=B)
        ours.update(X, sel.arms, fb)
        mab.partial_fit(decisions=sel.arms, rewards=fb, contexts=X)
        agreed += B
    assert agreed == 30 * B
    for k in range(K):
        model = mab._imp.arm_to_model[k]
        assert rel_err(ours.posterior_mean()[k], model.beta) < 1e-8
        assert rel_err(ours.posterior_cov()[k], model.A_inv) < 1e-8


def test_laser_tie_breaking_matches_mabwiser():
    """Untouched arms tie exactly; both pick the lowest index among the tied best."""
    rng = np.random.default_rng(6)
    K, d = 5, 4
    ours = LaserRouter(K, d, alpha=1.0, ridge=1.0, mode="per_item")
    mab = mabwiser_linucb(K, 1.0, 1.0)
    X0 = rng.normal(size=(6, d))
    a0, r0 = np.full(6, 0), np.full(6, -5.0)  # arm 0 observed, and bad: arms 1..4 tie above it
    ours.update(X0, a0, r0)
    mab.fit(decisions=a0, rewards=r0, contexts=X0)
    X = rng.normal(size=(10, d))
    np.testing.assert_array_equal(ours.select(X).arms, np.asarray(mab.predict(X)))
    picks = ours.select(X).arms
    assert set(picks.tolist()) <= {0, 1} and (picks == 1).any()  # 2..4 tie with 1 and lose to it
    fresh = LaserRouter(K, d, mode="per_item")
    assert (fresh.select(X).arms == 0).all()


@pytest.mark.parametrize("lam", [1.0, 2.0])
def test_laser_per_batch_follows_the_laser_rule(lam):
    """One RM per batch from the mean context; one observation (mean context, mean feedback).

    Decisions are checked against the UCB of the closed-form ridge solution at every step, and
    against mabwiser fed the (mean context, mean feedback) history. mabwiser initialises an arm that
    has no data yet with A⁻¹ = λI instead of I/λ, so it is only comparable at λ = 1 until every
    arm has data.
    """
    rng = np.random.default_rng(7)
    K, d, alpha = 3, 5, 0.7
    ours = LaserRouter(K, d, alpha=alpha, ridge=lam, mode="per_batch")
    mab = mabwiser_linucb(K, alpha, lam)
    theta = rng.normal(size=(K, d))
    xbars, picks, rbars = [], [], []
    for t in range(25):
        X = rng.normal(size=(12, d)) + rng.normal(size=d)
        sel = ours.select(X)
        assert (sel.arms == sel.arms[0]).all() and sel.n_calls.tolist() == [1] * 12
        xbar = X.mean(axis=0)
        if t > 0:
            mean_ref, cov_ref = closed_form(np.array(xbars), np.array(picks), np.array(rbars), K, None, lam, 1.0)
            ucb_ref = mean_ref @ xbar + alpha * np.sqrt(np.einsum("i,kij,j->k", xbar, cov_ref, xbar))
            assert sel.arms[0] == np.argmax(ucb_ref)
            if lam == 1.0 or len(set(picks)) == K:
                assert sel.arms[0] == mab.predict(xbar[None])
        fb = X @ theta[sel.arms[0]]
        ours.update(X, sel.arms, fb)
        xbars.append(xbar); picks.append(int(sel.arms[0])); rbars.append(fb.mean())
        step = dict(decisions=np.array(picks[-1:]), rewards=np.array(rbars[-1:]), contexts=xbar[None])
        (mab.fit if t == 0 else mab.partial_fit)(**step)
    assert len(set(picks)) > 1  # the test saw more than one RM
    mean_ref, cov_ref = closed_form(np.array(xbars), np.array(picks), np.array(rbars), K, None, lam, 1.0)
    assert rel_err(ours.posterior_mean(), mean_ref) < 1e-8
    assert rel_err(ours.posterior_cov(), cov_ref) < 1e-8


def test_laser_per_batch_update_with_several_rms_uses_each_rms_own_rows():
    rng = np.random.default_rng(17)
    router = LaserRouter(3, 4, mode="per_batch")
    X, arms, r = rng.normal(size=(10, 4)), np.array([0, 2, 0, 2, 2, 0, 0, 2, 2, 2]), rng.normal(size=10)
    router.update(X, arms, r)
    Xbar = np.stack([X[arms == 0].mean(0), X[arms == 2].mean(0)])
    rbar = np.array([r[arms == 0].mean(), r[arms == 2].mean()])
    mean_ref, cov_ref = closed_form(Xbar, np.array([0, 2]), rbar, 3)
    assert rel_err(router.posterior_mean(), mean_ref) < 1e-8
    assert rel_err(router.posterior_cov(), cov_ref) < 1e-8


# ---- (3) bayesian-online == mabwiser LinTS ridge posterior -----------------------------------
@pytest.mark.parametrize("lam", [1.0, 0.25])
def test_bayesian_online_posterior_matches_mabwiser_lints(lam):
    from mabwiser.mab import MAB, LearningPolicy

    rng = np.random.default_rng(8)
    K, d = 3, 6
    ours = plugins.create("router", "bayesian-online", n_arms=K, dim=d, seed=0, prior_precision=lam, noise=1.0)
    mab = MAB(arms=list(range(K)), learning_policy=LearningPolicy.LinTS(alpha=1.0, l2_lambda=lam), seed=0)
    X, arms, r = random_history(rng, 30, d, K)
    ours.update(X, arms, r)
    mab.fit(decisions=arms, rewards=r, contexts=X)
    for _ in range(10):
        X, arms, r = random_history(rng, int(rng.integers(1, 20)), d, K)
        ours.update(X, arms, r)
        mab.partial_fit(decisions=arms, rewards=r, contexts=X)
    for k in range(K):
        model = mab._imp.arm_to_model[k]
        assert rel_err(ours.posterior_mean()[k], model.beta) < 1e-8
        assert rel_err(ours.posterior_cov()[k], model.A_inv) < 1e-8


# ---- (4) properties --------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    K=st.integers(1, 5), d=st.integers(1, 8), B=st.integers(0, 12), n=st.integers(0, 60),
    seed=st.integers(0, 2**16), name=st.sampled_from(LINEAR),
)
def test_shapes_symmetry_and_exactness(K, d, B, n, seed, name):
    rng = np.random.default_rng(seed)
    router = plugins.create("router", name, n_arms=K, dim=d, seed=seed)
    X, arms, r = random_history(rng, n, d, K)
    feed_in_batches(router, X, arms, r, rng, max_batch=7)
    sel = router.select(rng.normal(size=(B, d)))
    assert sel.arms.shape == (B,) and sel.calls.shape == (B, K)
    assert sel.arms.dtype == np.int64 and sel.calls.dtype == bool
    assert router.posterior_mean().shape == (K, d)
    cov = router.posterior_cov()
    assert cov.shape == (K, d, d)
    np.testing.assert_array_equal(cov, cov.transpose(0, 2, 1))
    assert (np.linalg.eigvalsh(cov) > 0).all()
    if name in ("bayesian", "bayesian-online", "bayesian-adaptive"):
        mean_ref, cov_ref = closed_form(X, arms, r, K)
        assert rel_err(router.posterior_mean(), mean_ref) < 1e-8
        assert rel_err(cov, cov_ref) < 1e-8


def test_hundred_thousand_updates_stay_symmetric_positive_definite_and_exact():
    rng = np.random.default_rng(9)
    K, d, total = 3, 12, 100_000
    arms_state = LinearGaussianArms(K, d, prior_mean=rng.normal(size=(K, d)), prior_precision=0.5, noise=0.7)
    mu0 = arms_state.mean.copy()
    scales = rng.choice([1e-2, 1.0, 30.0], size=(total, 1))
    X = rng.normal(size=(total, d)) * scales
    arms = rng.integers(0, K, size=total)
    r = X @ np.linspace(-1, 1, d) + rng.normal(size=total)
    i = 0
    while i < total:  # a mix of single-row (Sherman–Morrison) and block (Woodbury) updates
        n = 1 if rng.random() < 0.3 else int(rng.integers(2, 3000))
        arms_state.update(X[i:i + n], arms[i:i + n], r[i:i + n])
        i += n
    cov = arms_state.cov
    np.testing.assert_array_equal(cov, cov.transpose(0, 2, 1))
    assert (np.linalg.eigvalsh(cov) > 0).all()
    for k in range(K):
        np.linalg.cholesky(cov[k])  # positive definite
    assert arms_state.counts.sum() == total
    mean_ref, cov_ref = closed_form(X, arms, r, K, mu0, 0.5, 0.7)
    assert rel_err(arms_state.mean, mean_ref) < 1e-8
    assert rel_err(cov, cov_ref) < 1e-8


# ---- (5) determinism and state round trip ----------------------------------------------------
def run_stream(router, rng, rounds, B=9):
    out = []
    for _ in range(rounds):
        X = rng.normal(size=(B, router.dim))
        sel = router.select(X)
        out.append((sel.arms.copy(), sel.calls.copy()))
        router.update(X, sel.arms, X[:, 0] * (sel.arms == 1) + 0.1 * rng.normal(size=B))
    return out


@pytest.mark.parametrize("name,params", [
    ("bayesian", {"prior_mean": np.arange(20.0).reshape(4, 5) / 20}),
    ("bayesian-online", {}),
    ("bayesian-adaptive", {"threshold": 0.9, "n_samples": 64}),
    ("laser", {"mode": "per_batch", "alpha": 0.5}),
    ("laser", {"mode": "per_item", "alpha": 0.5}),
])
def test_determinism_and_mid_stream_round_trip(name, params):
    make = lambda seed: plugins.create("router", name, n_arms=4, dim=5, seed=seed, **params)  # noqa: E731
    a, b = make(3), make(3)
    assert all(
        np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
        for x, y in zip(run_stream(a, np.random.default_rng(1), 6), run_stream(b, np.random.default_rng(1), 6))
    )
    state = a.state_dict()
    frozen = copy.deepcopy(state)
    restored = make(999)
    restored.load_state_dict(state)
    cont_a = run_stream(a, np.random.default_rng(2), 6)
    cont_r = run_stream(restored, np.random.default_rng(2), 6)
    for x, y in zip(cont_a, cont_r):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    np.testing.assert_array_equal(a.posterior_mean(), restored.posterior_mean())
    np.testing.assert_array_equal(a.posterior_cov(), restored.posterior_cov())
    # the saved state is a snapshot, and loading it did not alias it either
    np.testing.assert_array_equal(state["posterior"]["cov"], frozen["posterior"]["cov"])
    np.testing.assert_array_equal(state["posterior"]["mean"], frozen["posterior"]["mean"])


def test_state_for_other_hyperparameters_is_rejected():
    a = BayesianRouter(2, 3, noise=1.0)
    with pytest.raises(ValueError, match="noise"):
        BayesianRouter(2, 3, noise=2.0).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="mode"):
        LaserRouter(2, 3, mode="per_item").load_state_dict(LaserRouter(2, 3).state_dict())


# ---- (6) conformance -------------------------------------------------------------------------
@pytest.mark.parametrize("name", LINEAR)
def test_check_router_passes(name):
    check_router(plugins.get_registry().get("router", name).factory)


def test_check_router_passes_with_parameters():
    rng = np.random.default_rng(0)
    check_router(BayesianRouter, prior_mean=rng.normal(size=(4, 6)), prior_scale=0.5, noise=0.5)
    check_router(BayesianOfflineRouter, prior_mean=rng.normal(size=(4, 6)))
    check_router(BayesianAdaptiveRouter, threshold=1.0, n_samples=32)
    check_router(LaserRouter, mode="per_item", alpha=2.0, ridge=0.1)


def test_metadata_is_registered():
    for name in LINEAR:
        meta = plugins.get_registry().get("router", name).metadata
        assert {"description", "paper", "calls_per_item", "learns"} <= set(meta)
    assert plugins.get_registry().get("router", "bayesian-adaptive").metadata["calls_per_item"] == "1..2"


@pytest.mark.parametrize("cls,params,word", [
    (BayesianRouter, {"prior_precision": 0.0}, "prior_precision"),
    (BayesianRouter, {"noise": -1.0}, "noise"),
    (BayesianRouter, {"noise": float("nan")}, "noise"),
    (BayesianRouter, {"prior_mean": np.zeros((3, 3))}, "prior_mean"),
    (BayesianRouter, {"prior_scale": "big"}, "prior_scale"),
    (BayesianAdaptiveRouter, {"threshold": 1.5}, "threshold"),
    (BayesianAdaptiveRouter, {"n_samples": 0}, "n_samples"),
    (LaserRouter, {"alpha": -0.1}, "alpha"),
    (LaserRouter, {"ridge": 0}, "ridge"),
    (LaserRouter, {"mode": "batch"}, "per_batch, per_item"),
])
def test_bad_parameters_are_rejected_by_name(cls, params, word):
    with pytest.raises(ValueError, match=word):
        cls(2, 4, **params)


# ---- (7) offline ablation and the adaptive router --------------------------------------------
def test_bayesian_offline_picks_prior_argmax_and_never_learns():
    rng = np.random.default_rng(10)
    K, d = 5, 6
    M0 = rng.normal(size=(K, d))
    router = plugins.create("router", "bayesian-offline", n_arms=K, dim=d, seed=0, prior_mean=M0, prior_scale=3.0)
    X = rng.normal(size=(200, d))
    expected = np.array([max(range(K), key=lambda k: float(M0[k] @ x)) for x in X])
    np.testing.assert_array_equal(router.select(X).arms, expected)
    router.update(X, expected, rng.normal(size=200))
    np.testing.assert_array_equal(router.select(X).arms, expected)
    np.testing.assert_array_equal(router.posterior_mean(), 3.0 * M0)
    with pytest.raises(ValueError):
        router.update(X[:2], np.array([0, K]), np.zeros(2))
    assert router.learns is False


def trained_adaptive(threshold, seed=0, n_samples=256, K=4, d=5):
    rng = np.random.default_rng(12)
    router = BayesianAdaptiveRouter(K, d, seed=seed, threshold=threshold, n_samples=n_samples)
    X, arms, r = random_history(rng, 150, d, K)
    router.update(X, arms, r + X[:, 0] * (arms == 2))
    return router, rng


def test_adaptive_calls_a_second_rm_only_below_threshold():
    router, rng = trained_adaptive(threshold=0.6)
    X = rng.normal(size=(300, 5)) * 2
    sel = router.select(X)
    p_top, second = sel.info["p_top"], sel.info["second_arm"]
    below = p_top < 0.6
    assert 0 < below.sum() < 300  # the test exercises both cases
    np.testing.assert_array_equal(sel.n_calls, np.where(below, 2, 1))
    np.testing.assert_array_equal(second >= 0, below)
    rows = np.flatnonzero(below)
    assert sel.calls[rows, second[rows]].all() and (second[rows] != sel.arms[rows]).all()
    # the runner-up is the likeliest-best arm other than the credited one
    p = sel.info["p_best"].copy()
    p[np.arange(300), sel.arms] = -1
    np.testing.assert_array_equal(p[rows, second[rows]], p[rows].max(axis=1))
    np.testing.assert_allclose(sel.info["p_best"].sum(axis=1), 1.0)
    # threshold 0: never a second call; threshold 1: a second call wherever p_top < 1
    assert (trained_adaptive(0.0)[0].select(X).n_calls == 1).all()
    sel1 = trained_adaptive(1.0)[0].select(X)
    np.testing.assert_array_equal(sel1.n_calls, np.where(sel1.info["p_top"] < 1.0, 2, 1))


def test_adaptive_credits_the_same_arms_as_bayesian():
    a, _ = trained_adaptive(0.7, seed=4)
    b = BayesianRouter(4, 5, seed=4)
    b.load_state_dict({**b.state_dict(), "posterior": a.state_dict()["posterior"]})
    X = np.random.default_rng(1).normal(size=(50, 5))
    np.testing.assert_array_equal(a.select(X).arms, b.select(X).arms)


def test_adaptive_probability_estimate_matches_gaussian_cdf():
    router = BayesianAdaptiveRouter(2, 3, n_samples=20_000)
    means = np.array([[0.3, 0.0], [-1.0, 0.5], [0.0, 0.0]])
    var = np.array([[1.0, 0.5], [0.2, 2.0], [1.0, 1.0]])
    p = router.best_probabilities(means, var)
    for i in range(3):
        p0 = norm_cdf((means[i, 0] - means[i, 1]) / math.sqrt(var[i].sum()))
        assert abs(p[i, 0] - p0) < 5 * math.sqrt(p0 * (1 - p0) / 20_000) + 1e-3
        assert p[i].sum() == pytest.approx(1.0)


def test_adaptive_combine_rule():
    from rmroute.harness.core.types import Selection

    router = BayesianAdaptiveRouter(3, 2)
    calls = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 1, 0]], dtype=bool)
    arms = np.array([0, 0, 0, 2, 0, 0, 0])
    p = np.array([[.9, .05, .05], [.4, .35, .25], [.4, .35, .25], [.1, .5, .4], [.4, .2, .4], [.3, .3, .4], [.5, .5, 0]])
    sel = Selection(arms=arms, calls=calls, info={"p_best": p})
    m = np.full((7, 3), np.nan)
    m[0, 0] = -0.7                   # one call: its margin
    m[1, [0, 1]] = [1.0, 3.0]        # agree: mean
    m[2, [0, 1]] = [1.0, -3.0]       # disagree: credited arm 0 is likelier best
    m[3, [2, 1]] = [1.0, -3.0]       # disagree: second arm 1 (p .5) beats credited 2 (p .4)
    m[4, [0, 2]] = [2.0, -1.0]       # disagree, equal p: the credited arm
    m[5, [0, 1]] = [np.nan, -2.0]    # credited abstained: the other one
    m[6, [0, 1]] = [0.0, 4.0]        # one undecided: mean
    np.testing.assert_allclose(router.combine(sel, m), [-0.7, 2.0, 1.0, -3.0, 2.0, -2.0, 2.0])


# ---- (8) learning sanity ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bayesian", "bayesian-online", "bayesian-adaptive"])
def test_bayesian_learns_which_rm_is_best_where(name):
    """Three regions of context space, one best RM each: picks of the best RM rise far above 1/3."""
    rng = np.random.default_rng(13)
    K, d = 3, 4
    router = plugins.create("router", name, n_arms=K, dim=d, seed=0)
    hits = []
    for _ in range(100):
        region = rng.integers(0, K, size=20)
        X = np.zeros((20, d))
        X[np.arange(20), region] = 1.0
        X[:, 3] = 1.0  # a bias feature
        X += 0.15 * rng.normal(size=X.shape)
        sel = router.select(X)
        hits.append(sel.arms == region)
        reward = (sel.arms == region).astype(float) + 0.3 * rng.normal(size=20)
        router.update(X, sel.arms, reward)
    early, late = np.mean(hits[:5]), np.mean(hits[-30:])
    assert late > 0.85 and late > early + 0.3
