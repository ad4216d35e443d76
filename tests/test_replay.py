"""The replay protocol on synthetic data where the right answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from rmroute.harness.runners import replay
from rmroute.harness.routing import RouterSpec, router_spec
from rmroute.harness.runners.replay import ColdStart, Drift, ReplayData, Scenario, Split, replay_one, stream_order
from rmroute.harness.core.types import Selection
from rmroute.routers.base import BaseRouter

DOMAINS = ["math", "chat", "code"]


#: what a replay's build_data returns besides the data, for tests that replace it with synthetic data
SYNTHETIC_PROVENANCE = {"inputs": {"data": "0" * 64}, "rm_abstention": {}, "compute": {"profile": "test"}}


def synthetic_prepared(data):
    """What replay.build_data returns, over one synthetic ReplayData for every seed."""
    data.inputs = SYNTHETIC_PROVENANCE["inputs"]
    return replay.Prepared(list(data.names), {"name": "synthetic", "sha256": "0" * 64, "n": 600},
                           {k: v for k, v in SYNTHETIC_PROVENANCE.items() if k != "inputs"}, lambda seed: data)


def make_split(n, rng, dim=6):
    """Domain d's items are decided right by RM d only (margin +-1 with the gold sign), others wrong."""
    dom = rng.integers(0, 3, size=n)
    gold = rng.choice([-1, 1], size=n)
    margins = np.where(np.arange(3)[None, :] == dom[:, None], 1.0, -1.0) * gold[:, None]
    X = np.zeros((n, dim))
    X[np.arange(n), dom] = 1.0
    X[:, 3:] = rng.normal(scale=0.1, size=(n, dim - 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return Split(X, margins, gold, [DOMAINS[d] for d in dom])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return ReplayData(names=["rm-math", "rm-chat", "rm-code"], costs=np.array([1.0, 2.0, 0.5]),
                      offline=make_split(300, rng), online=make_split(900, rng), test=make_split(600, rng))


def spec(name, **params):
    return router_spec(name, params)


def test_single_rm_accuracy_is_its_own_record(data):
    for k in range(3):
        out = replay_one(spec("single", arm=k), data, Scenario(), seed=0)
        expected = np.mean(np.array(data.test.domains) == DOMAINS[k])  # RM k is right exactly on domain k
        assert out["metrics"]["test_routing_accuracy"] == pytest.approx(expected)
        assert out["metrics"]["test_calls_per_item"] == 1.0
        assert out["metrics"]["test_cost_per_item"] == data.costs[k]


def test_oracle_and_domain_best_are_perfect_here(data):
    for name in ("oracle", "domain-best"):
        out = replay_one(spec(name), data, Scenario(), seed=0)
        assert out["metrics"]["test_routing_accuracy"] == 1.0, name
    out = replay_one(spec("domain-best"), data, Scenario(), seed=0)
    assert out["per_domain"]["chat"]["choice_share"]["rm-chat"] == 1.0


def test_majority_vote_pays_k_calls(data):
    out = replay_one(spec("majority-vote"), data, Scenario(), seed=0)
    assert out["metrics"]["test_calls_per_item"] == 3.0
    assert out["metrics"]["test_cost_per_item"] == pytest.approx(3.5)
    # one RM right, two wrong on every item: the majority is always wrong
    assert out["metrics"]["test_accuracy"] == 0.0


def test_learning_routers_find_the_structure(data):
    random = replay_one(spec("random"), data, Scenario(), seed=0)["metrics"]["test_routing_accuracy"]
    assert random == pytest.approx(1 / 3, abs=0.06)
    for name, params in (("bayesian", {}), ("laser", {"mode": "per_item", "alpha": 0.5}), ("bayesian-adaptive", {})):
        out = replay_one(spec(name, **params), data, Scenario(), seed=0)
        assert out["metrics"]["test_routing_accuracy"] > 0.9, (name, out["metrics"])
        assert out["metrics"]["stream_regret"] >= 0
        assert out["curves"]["regret"][-1] == out["metrics"]["stream_regret"]


class Spy(BaseRouter):
    """Records what it is shown; picks arm 0 and, every other item, arm 2 too."""

    seen: list = []
    fed: list = []

    def _select(self, X, items):
        calls = np.zeros((X.shape[0], self.n_arms), dtype=bool)
        calls[:, 0] = True
        calls[::2, 2] = True
        assert all(set(it) == {"domain"} for it in items)  # no gold-derived information
        return Selection(arms=np.zeros(X.shape[0], dtype=np.int64), calls=calls)

    def combine(self, selection, margins):
        Spy.seen.append((selection.calls.copy(), margins.copy()))
        return super().combine(selection, margins)

    def _update(self, X, arms, feedback):
        Spy.fed.append(arms.copy())


def test_no_router_sees_a_score_it_did_not_pay_for(data):
    Spy.seen, Spy.fed = [], []
    out = replay_one(RouterSpec("spy", Spy), data, Scenario(), seed=1, batch_size=16)
    for calls, margins in Spy.seen:
        assert np.isnan(margins[~calls]).all() and np.isfinite(margins[calls]).all()
    fed = np.concatenate(Spy.fed)
    assert set(fed.tolist()) == {0}  # feedback only for the credited RM (it also paid for RM 2)
    n_on = data.online.gold.size
    batches = [min(16, n_on - s) for s in range(0, n_on, 16)]  # arm 0 on every item, arm 2 on every other one
    assert out["rm_calls"]["stream_total"] == sum(b + (b + 1) // 2 for b in batches)
    assert out["rm_calls"]["stream_per_rm"] == {"rm-math": n_on, "rm-chat": 0, "rm-code": sum((b + 1) // 2 for b in batches)}


def test_determinism_and_seeds(data):
    a = replay_one(spec("bayesian"), data, Scenario(), seed=3)
    b = replay_one(spec("bayesian"), data, Scenario(), seed=3)
    c = replay_one(spec("bayesian"), data, Scenario(), seed=4)
    assert a == b
    assert a["test_outcomes"] != c["test_outcomes"] or a["metrics"] != c["metrics"]


def test_shift_order_is_domain_blocks():
    domains = ["a"] * 5 + ["b"] * 5 + ["c"] * 5
    order = stream_order(domains, Scenario(order="domain_blocks"), np.random.default_rng(0))
    seq = [domains[i] for i in order]
    changes = sum(1 for x, y in zip(seq, seq[1:]) if x != y)
    assert sorted(order.tolist()) == list(range(15)) and changes == 2


def test_cold_start_arm_abstains_before_joining(data):
    Spy.seen = []
    replay_one(RouterSpec("spy", Spy), data, Scenario(cold_start=ColdStart(arm="rm-code", join_at=0.5)), seed=0, batch_size=30)
    n = data.online.gold.size
    first = [m for _, m in Spy.seen[: (n // 2) // 30]]
    last = [m for _, m in Spy.seen[-((n // 2) // 30):]]
    assert all(np.isnan(m[::2, 2]).all() for m in first)  # called, but absent: abstains
    assert all(np.isfinite(m[::2, 2]).all() for m in last)


def test_drift_turns_one_rm_to_noise(data):
    clean = replay_one(spec("single", arm=1), data, Scenario(), seed=0)["metrics"]["test_accuracy"]
    drifted = replay_one(spec("single", arm=1), data, Scenario(drift=Drift(arm="rm-chat", start_at=0.5)), seed=0)
    assert clean == pytest.approx(np.mean(np.array(data.test.domains) == "chat"))
    assert drifted["metrics"]["test_accuracy"] == pytest.approx(0.5, abs=0.06)  # a coin on every domain
    with pytest.raises(ValueError, match="arm 'nope' is not in the pool"):
        replay_one(spec("random"), data, Scenario(drift=Drift(arm="nope")), seed=0)


def test_greedy_test_decisions_use_the_posterior_mean(data):
    router = spec("bayesian").factory(n_arms=3, dim=data.dim, seed=0)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, data.dim))
    router.update(X, rng.integers(0, 3, size=200), rng.normal(size=200))
    greedy = router.select_greedy(X[:50]).arms
    assert np.array_equal(greedy, np.argmax(X[:50] @ router.posterior_mean().T, axis=1))
