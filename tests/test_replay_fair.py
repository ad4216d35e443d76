"""The fair-comparison rules of replay (issue 15): one scoring rule, one abstention rule shared with
training, label-free feedback modes, seeded arm order and folds by item."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rmroute.harness.analysis import decode_outcomes, score
from rmroute.harness.determinism import derived_rng
from rmroute.harness.routing import RouterSpec, router_spec
from rmroute.harness.runners import replay
from rmroute.harness.runners.replay import Feedback, ReplayData, ReplaySettings, Scenario, Split, replay_one
from rmroute.harness.runners.train import loop
from rmroute.routers.base import BaseRouter
from tests.test_replay import DOMAINS, make_split

#: the shipped `laser` row's chain: reward = agreement − 1 = −(0/1 loss), LASeR's sign, then its rule
LASER_CHAIN = ({"name": "affine", "params": {"shift": -1.0}},
               {"name": "quantile", "params": {"unit": "batch", "warmup": 2, "during_warmup": "raw"}})


def _data(margins_test, margins_stream=None, n_stream=64, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    K = margins_test.shape[1]
    m_on = margins_test[:1].repeat(n_stream, axis=0) if margins_stream is None else margins_stream

    def split(m):
        n = m.shape[0]
        X = rng.normal(size=(n, dim))
        return Split(X / np.linalg.norm(X, axis=1, keepdims=True), m, np.ones(n), ["d"] * n)

    return ReplayData(names=[f"rm{k}" for k in range(K)], costs=np.ones(K), offline=split(m_on[:8]),
                      online=split(m_on), test=split(margins_test))


# ---- one scoring rule --------------------------------------------------------------------------------
def test_score_by_hand():
    m = np.array([[2.0, -1.0, 0.0, np.nan]])
    assert score(m, np.array([1])).tolist() == [[1.0, 0.0, 0.5, 0.5]]
    assert score(m, np.array([-1])).tolist() == [[0.0, 1.0, 0.5, 0.5]]
    assert decode_outcomes("10h").tolist() == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="test_outcomes may hold only"):
        decode_outcomes("10x")


def test_a_tie_scores_half_in_every_replay_metric():
    n = 40
    test = np.column_stack([np.zeros(n), np.ones(n)])  # RM 0 always ties, RM 1 always right (gold +1)
    data = _data(test, margins_stream=np.column_stack([np.zeros(64), np.ones(64)]))
    out = replay_one(router_spec("single", {"arm": 0}), data, Scenario(), seed=0, batch_size=8)
    m = out["metrics"]
    assert out["test_outcomes"] == "h" * n
    assert m["test_accuracy"] == m["test_routing_accuracy"] == m["stream_accuracy"] == 0.5
    assert m["stream_regret"] == pytest.approx(64 * 0.5)  # the oracle (RM 1) is right on every item
    assert m["stream_mean_reward"] == 0.5  # gold feedback on a tie is 0.5
    tied_vote = _data(np.column_stack([np.ones(n), -np.ones(n)]))  # one RM for A, one for B
    out = replay_one(router_spec("majority-vote"), tied_vote, Scenario(), seed=0)
    assert out["test_outcomes"] == "h" * n and out["metrics"]["test_calls_per_item"] == 2.0


# ---- one abstention rule, shared with training ---------------------------------------------------------
def test_abstention_falls_back_to_the_next_rm_and_the_call_is_counted():
    n = 40
    test = np.column_stack([np.where(np.arange(n) % 2 == 0, np.nan, -1.0), np.ones(n), -np.ones(n)])
    out = replay_one(router_spec("single", {"arm": 0}), _data(test), Scenario(), seed=0, batch_size=8)
    # even items: RM 0 abstains, `single` has no ranking, so the next index (RM 1, right) answers
    assert out["test_outcomes"] == "10" * (n // 2)
    assert out["metrics"]["test_calls_per_item"] == 1.5
    assert out["rm_calls"]["test_per_rm"] == {"rm0": n, "rm1": n // 2, "rm2": 0}


class FakeCache:
    """Scores as a table: score_k(A_i) = margin[i, k] and score_k(B_i) = 0 (NaN: abstains)."""

    def __init__(self, margins):
        self.margins = margins

    def score(self, rm, prompts, texts):
        vals = [self.margins[int(t[1:]), rm] if t[0] == "a" else 0.0 for t in texts]
        return np.array(vals, dtype=np.float64), None


@pytest.mark.parametrize("name,params", [("single", {"arm": 0}), ("bayesian", {}), ("laser", {"mode": "per_item"})])
def test_abstention_fallback_is_the_same_in_replay_and_training(name, params):
    rng = np.random.default_rng(4)
    n, K, d = 48, 4, 5
    margins = rng.normal(size=(n, K))
    margins[rng.random((n, K)) < 0.45] = np.nan  # many abstentions, some items where every RM abstains
    X = rng.normal(size=(n, d))
    split = Split(X, margins, np.ones(n), ["d"] * n)
    idx = np.arange(n)
    a = router_spec(name, params).build(K, d, seed=7)
    b = router_spec(name, params).build(K, d, seed=7)
    in_replay, _ = replay._route(a, X, split, idx, False, np.zeros((n, K), bool), greedy=False)
    env = SimpleNamespace(rms=list(range(K)), cache=FakeCache(margins))
    in_training, _, _, _ = loop.route_and_score(env, SimpleNamespace(router=b), X, [{"domain": "d"}] * n,
                                                ["p"] * n, [f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)])
    assert np.array_equal(in_replay.calls, in_training.calls)
    assert np.array_equal(in_replay.arms, in_training.arms)
    assert np.array_equal(in_replay.margins, in_training.margins, equal_nan=True)
    assert in_replay.fallback_calls > 0


# ---- feedback modes ------------------------------------------------------------------------------------
class Spy(BaseRouter):
    """Always RM 0; records the feedback it is given."""

    learns = True
    fed: list = []

    def _select(self, X, items):
        from rmroute.harness.core.types import Selection

        return Selection.single(np.zeros(X.shape[0], dtype=np.int64), self.n_arms)

    def _update(self, X, arms, feedback):
        Spy.fed.append((arms.copy(), feedback.copy()))


@pytest.fixture(scope="module")
def structured():
    rng = np.random.default_rng(0)
    return ReplayData(names=["rm-math", "rm-chat", "rm-code"], costs=np.ones(3),
                      offline=make_split(90, rng), online=make_split(300, rng), test=make_split(90, rng))


def test_label_budget_gives_feedback_on_the_seeded_share_only(structured):
    Spy.fed = []
    out = replay_one(RouterSpec("spy", Spy, learns=True), structured, Scenario(feedback=Feedback(mode="budget", share=0.25)),
                     seed=3, batch_size=16)
    assert sum(a.size for a, _ in Spy.fed) == out["metrics"]["stream_feedback_items"] == 75  # round(0.25 * 300)
    assert out["metrics"]["stream_calls_per_item"] == 1.0  # labels cost no RM call
    again = replay_one(router_spec("random"), structured, Scenario(feedback=Feedback(mode="budget", share=0.25)), seed=3)
    assert again["metrics"]["stream_feedback_items"] == 75


def test_consensus_feedback_counts_the_voters_calls_and_agrees_by_hand(structured):
    Spy.fed = []
    scen = Scenario(feedback=Feedback(mode="consensus", m=2))
    out = replay_one(RouterSpec("spy", Spy, learns=True), structured, scen, seed=1, batch_size=300)
    # every item calls RM 0 and both other RMs vote: 3 calls per item
    assert out["metrics"]["stream_calls_per_item"] == 3.0
    (arms, fb), = Spy.fed
    # by construction RM d is right on domain d only. On math, RM 0 is right and both voters are
    # wrong (the consensus is the wrong sign): 0. Elsewhere one voter is right and one wrong: a tied
    # vote, 0.5. Consensus feedback punishes the one RM that is right.
    stream_domains = np.array([structured.online.domains[i] for i in replay.stream_order(
        structured.online.domains, scen, derived_rng(1, "replay-stream"))])
    assert np.array_equal(fb, np.where(stream_domains == "math", 0.0, 0.5))
    one = replay_one(router_spec("single", {"arm": 0}), structured, Scenario(feedback=Feedback(mode="consensus", m=1)), seed=1)
    assert one["metrics"]["stream_calls_per_item"] == 2.0
    mv = replay_one(router_spec("majority-vote"), structured, scen, seed=1)
    assert mv["metrics"]["stream_calls_per_item"] == 3.0  # it already paid for every voter


# ---- arm order and folds ---------------------------------------------------------------------------------
def _base(order=(0, 1, 2), n_items=150, seed=0):
    """A replay Base over synthetic data: domain d is decided right by RM d only; every item has two pairs."""
    rng = np.random.default_rng(seed)
    dom = np.repeat(rng.integers(0, 3, size=n_items), 2)
    gold = rng.choice([-1, 1], size=dom.size)
    margins = np.where(np.arange(3)[None, :] == dom[:, None], 1.0, -1.0) * gold[:, None]
    margins += rng.normal(scale=0.01, size=margins.shape)
    names = ["rm-math", "rm-chat", "rm-code"]
    X = np.zeros((dom.size, 6))
    X[np.arange(dom.size), dom] = 1.0
    X[:, 3:] = rng.normal(scale=0.1, size=(dom.size, 3))
    order = list(order)
    n = dom.size
    bounds = [0, n // 4, 3 * n // 4, n]
    return replay.Base(
        pool=SimpleNamespace(names=[names[k] for k in order], costs=[1.0, 1.0, 1.0]), pairs=[],
        margins=margins[:, order], gold=gold, domains=[DOMAINS[d] for d in dom], items=np.repeat(np.arange(n_items), 2),
        splits={s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(("offline", "online", "test"))},
        features={"pair": X, "prompt": X}, contexts={k: replay.unit_rows(X) for k in ("pair", "prompt")}, bundle=None,
        inputs={}, provenance={})


def test_folds_split_by_item_and_test_every_item_once():
    base = _base()
    settings = ReplaySettings(folds=5)
    tested = []
    for seed in range(5):
        ix = replay.fold_indices(base, 5, seed, None)
        sets = {s: set(base.items[v].tolist()) for s, v in ix.items()}
        assert not (sets["test"] & sets["offline"]) and not (sets["test"] & sets["online"]) and not (sets["offline"] & sets["online"])
        assert sum(v.size for v in ix.values()) == base.items.size  # every pair somewhere, once
        tested.extend(sets["test"])
        data = replay.seed_data(base, settings, seed)
        assert data.fold == {"index": seed, "n_folds": 5}
    assert sorted(tested) == list(range(150))  # each item is tested by exactly one seed
    # seeds 5..9 deal a new assignment (cross-fitting): it covers every item too, and differs
    second = [set(base.items[replay.fold_indices(base, 5, s, None)["test"]].tolist()) for s in range(5, 10)]
    assert sorted(i for s in second for i in s) == list(range(150))
    assert sorted(map(sorted, second)) != sorted(sorted(set(base.items[replay.fold_indices(base, 5, s, None)["test"]].tolist()))
                                                 for s in range(5))


def test_arm_order_is_seeded_and_recorded():
    base = _base()
    orders = {tuple(replay.seed_data(base, ReplaySettings(), s).arm_order) for s in range(30)}
    assert len(orders) == 6  # every listing of 3 RMs occurs
    fixed = replay.seed_data(base, ReplaySettings(permute_arms=False), 5)
    assert fixed.arm_order == base.pool.names
    d = replay.seed_data(base, ReplaySettings(), 5)
    k = d.names.index("rm-chat")
    assert np.array_equal(d.test.margins[:, k], base.margins[base.splits["test"], 1])


LASER = RouterSpec("laser", router_spec("laser").factory, {"mode": "per_batch", "alpha": 0.1}, learns=True,
                   normalizers=LASER_CHAIN)


def _laser_runs(order, seeds, permute=True):
    base = _base(order)
    out = []
    for s in seeds:
        data = replay.seed_data(base, ReplaySettings(permute_arms=permute), s)
        out.append((data, replay_one(LASER, data, Scenario(), seed=s, batch_size=16)))
    return out


def test_listing_order_does_not_matter_in_distribution():
    seeds = range(24)
    # without the seeded order, LinUCB's first batch goes to whichever RM is listed first
    for order in ((0, 1, 2), (2, 1, 0)):
        for data, out in _laser_runs(order, range(3), permute=False):
            assert out["rm_calls"]["stream_per_rm"][data.names[0]] > 0
    a = [out["metrics"]["test_accuracy"] for _, out in _laser_runs((0, 1, 2), seeds)]
    b = [out["metrics"]["test_accuracy"] for _, out in _laser_runs((2, 1, 0), seeds)]
    # the listing order only relabels which seeded permutation a seed gets: the two samples come
    # from one distribution, so their means agree within sampling error
    se = np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    assert abs(np.mean(a) - np.mean(b)) <= 3 * se + 1e-9


def test_faithful_laser_explores_and_is_not_one_fixed_single_rm():
    runs = _laser_runs((0, 1, 2), range(6))
    for data, out in runs:
        used = [k for k, v in out["rm_calls"]["stream_per_rm"].items() if v > 0]
        assert len(used) >= 2, out["rm_calls"]["stream_per_rm"]  # it leaves its first RM
    singles = {}
    for data, out in runs:
        for k, name in enumerate(data.names):
            singles.setdefault(name, []).append(
                replay_one(router_spec("single", {"arm": k}), data, Scenario(), seed=0)["test_outcomes"])
    laser = [out["test_outcomes"] for _, out in runs]
    assert all(laser != s for s in singles.values())


def test_training_lists_the_rms_in_the_seeds_order():
    from rmroute.harness.routing import arm_order
    from rmroute.harness.runners.train.state import Env, OfflineData, seed_env

    names = ["rm-a", "rm-b", "rm-c", "rm-d"]
    margins = np.arange(8.0).reshape(2, 4)
    env = Env(settings=SimpleNamespace(permute_arms=True), names=names, rms=["A", "B", "C", "D"],
              costs=np.array([1.0, 2.0, 3.0, 4.0]), prompts=[], featurize=None, dim=2, cache=None,
              prior_mean=np.eye(4)[:, :2] + np.arange(4)[:, None], offline=OfflineData(np.zeros((2, 2)), margins, np.ones(2), ["d", "d"]))
    seen = set()
    for seed in range(12):
        e = seed_env(env, seed)
        perm = arm_order(seed, 4)
        assert e.names == [names[k] for k in perm] and e.rms == [env.rms[k] for k in perm]
        for j, name in enumerate(e.names):  # every per-RM array moved with its RM
            k = names.index(name)
            assert e.costs[j] == env.costs[k] and np.array_equal(e.prior_mean[j], env.prior_mean[k])
            assert np.array_equal(e.offline.margins[:, j], margins[:, k])
        spec = router_spec("single", {"arm": names.index("rm-c")}).in_arm_order(names, e.names)
        assert e.names[spec.params["arm"]] == "rm-c"  # `single` still means the RM the config named
        seen.add(tuple(e.names))
    assert len(seen) > 1
    env.settings.permute_arms = False
    assert seed_env(env, 3).names == names
