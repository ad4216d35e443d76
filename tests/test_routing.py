"""The routing step (rmroute.harness.routing) on a small hand-made margin matrix, each option checked
against a direct computation written out here; router specs read from the registry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rmroute.harness.analysis import correct
from rmroute.harness.core.types import Selection
from rmroute.harness.routing import (
    TRAIN_FEEDBACK, NormalizerChain, decide, expand_routers, fallback_order, feedback_cells, resolve_routers, route,
    router_spec, rows_items, update_router,
)
from rmroute.harness.core.types import takes_items
from rmroute.routers.base import BaseRouter

NAN = np.nan
# 5 items x 3 RMs: score(A) - score(B), NaN = the RM abstains on that item
M = np.array([
    [0.5, -1.0, 2.0],   # 0: every RM answers
    [NAN, NAN, -3.0],   # 1: only RM 2 answers
    [NAN, NAN, NAN],    # 2: nobody answers
    [NAN, 0.7, NAN],    # 3: only RM 1 answers
    [NAN, NAN, 4.0],    # 4: only RM 2 answers
])
GOLD = np.array([1, -1, 1, 1, -1])
X = np.eye(5, 3) + 0.1


class Scripted(BaseRouter):
    """Selects what the test scripts: ``ARMS`` credited, ``CALLS`` called (default: the credited arm)."""

    ARMS = np.array([0, 0, 1, 0, 2])
    CALLS: np.ndarray | None = None

    def _select(self, X, items):
        if self.CALLS is None:
            return Selection.single(self.ARMS, self.n_arms)
        return Selection(arms=self.ARMS.copy(), calls=self.CALLS.copy())


class Ranked(Scripted):
    """Has a posterior mean: the fallback follows it (arm 2 best, then 1, then 0, on every item)."""

    def predictive(self, contexts):
        means = np.tile([0.1, 0.2, 0.3], (np.asarray(contexts).shape[0], 1))
        return means, np.ones_like(means)


class Recorder:
    """``pay`` for a routing step: looks the margins up in ``M`` and records every cell paid for."""

    def __init__(self, margins=M):
        self.margins, self.paid = margins, []

    def __call__(self, cells, out):
        self.paid.append(cells.copy())
        out[cells] = self.margins[cells]


def test_wrong_pays_only_the_selection_and_never_falls_back():
    router, pay = Scripted(3, 3), Recorder()
    r = route(router, X, None, pay, on_abstain="wrong")
    calls = np.zeros((5, 3), dtype=bool)
    calls[np.arange(5), Scripted.ARMS] = True
    assert len(pay.paid) == 1 and np.array_equal(pay.paid[0], calls)
    assert np.array_equal(r.calls, calls) and r.arms.tolist() == [0, 0, 1, 0, 2] and r.fallback_calls == 0
    expected = np.where(calls, M, NAN)
    assert np.array_equal(r.margins, expected, equal_nan=True)
    decision = decide(router, r)  # BaseRouter.combine: the credited arm's margin
    assert np.array_equal(decision, [0.5, NAN, NAN, NAN, 4.0], equal_nan=True)
    # an abstention is a missing decision, which counts as wrong
    assert correct(decision, GOLD).tolist() == [True, False, False, False, False]
    assert r.answered.tolist() == [True, False, False, False, True]


def test_next_without_ranking_tries_the_following_indices():
    router, pay = Scripted(3, 3), Recorder()
    r = route(router, X, None, pay, on_abstain="next")
    # item 1: 0 abstains -> 1 abstains -> 2 answers; item 2: 1 -> 2 -> 0, all abstain (last called is
    # credited); item 3: 0 -> 1 answers; items 0 and 4 answered at once
    assert r.arms.tolist() == [0, 2, 0, 1, 2]
    assert r.calls.sum(axis=1).tolist() == [1, 3, 3, 2, 1]
    assert r.fallback_calls == 2 + 2 + 1
    assert [p.sum() for p in pay.paid] == [5, 3, 2]  # the selection, then one call per dead item per round
    assert np.array_equal(r.margins, np.where(r.calls, M, NAN), equal_nan=True)
    assert np.array_equal(decide(router, r), [0.5, -3.0, NAN, 0.7, 4.0], equal_nan=True)


def test_next_follows_the_routers_ranking():
    r = route(Ranked(3, 3), X, None, Recorder(), on_abstain="next")
    # ranking 2, 1, 0: item 1 (selected 0) -> 2 answers; item 2 (selected 1) -> 2 -> 0; item 3 (0) -> 2 -> 1
    assert r.arms.tolist() == [0, 2, 0, 1, 2]
    assert r.calls.tolist()[3] == [True, True, True] and r.calls.tolist()[1] == [True, False, True]
    assert fallback_order(Ranked(3, 3), X[0], first=0) == [2, 1]
    assert fallback_order(Scripted(3, 3), X[0], first=0) == [1, 2]


def test_next_single_leaves_multi_call_items_and_keeps_the_routers_arm_when_nobody_answers():
    calls = np.zeros((5, 3), dtype=bool)
    calls[np.arange(5), Scripted.ARMS] = True
    calls[2, 0] = calls[3, 2] = True  # items 2 and 3 call two RMs, both abstain
    Scripted.CALLS = calls
    try:
        single = route(Scripted(3, 3), X, None, Recorder(), on_abstain="next-single")
        train = route(Scripted(3, 3), X, None, Recorder(), on_abstain="next")
    finally:
        Scripted.CALLS = None
    assert np.array_equal(single.calls[[2, 3]], calls[[2, 3]])  # no fallback for items that called two RMs
    assert single.arms.tolist() == [0, 2, 1, 0, 2] and single.fallback_calls == 2
    # "next" falls back on them too: item 2 calls RM 2 (abstains), item 3 calls RM 1 (answers)
    assert train.arms.tolist() == [0, 2, 2, 1, 2] and train.fallback_calls == 4
    M2 = M.copy()
    M2[1] = NAN  # nobody answers item 1 now: next-single credits the router's own arm, next the last one tried
    assert route(Scripted(3, 3), X, None, Recorder(M2), on_abstain="next-single").arms.tolist()[1] == 0
    assert route(Scripted(3, 3), X, None, Recorder(M2), on_abstain="next").arms.tolist()[1] == 2


def test_greedy_routes_with_select_greedy():
    class Greedy(Scripted):
        def select_greedy(self, contexts, items=None):
            return Selection.single(np.full(np.asarray(contexts).shape[0], 2), self.n_arms)

    assert route(Greedy(3, 3), X, None, Recorder(), on_abstain="wrong", greedy=True).arms.tolist() == [2] * 5
    assert route(Greedy(3, 3), X, None, Recorder(), on_abstain="wrong").arms.tolist() == [0, 0, 1, 0, 2]
    with pytest.raises(ValueError, match="on_abstain must be"):
        route(Greedy(3, 3), X, None, Recorder(), on_abstain="skip")


class Learner(Scripted):
    seen: list = []

    def _update(self, X, arms, feedback):
        Learner.seen.append((X.copy(), arms.copy(), feedback.copy()))


def test_update_rule_learns_from_the_credited_arm_only():
    calls = np.zeros((5, 3), dtype=bool)
    calls[np.arange(5), Scripted.ARMS] = True
    calls[0, 1] = calls[0, 2] = True  # item 0 pays for every RM; only its credited arm (0) learns
    Scripted.CALLS = calls
    try:
        router = Learner(3, 3)
        r = route(router, X, None, Recorder(), on_abstain="wrong")
    finally:
        Scripted.CALLS = None
    rows, arms = feedback_cells(r)
    assert rows.tolist() == [0, 1, 2, 3, 4] and arms.tolist() == [0, 0, 1, 0, 2]
    raw = np.array([0.9, 0.1, 0.4, 0.3, 0.2])
    Learner.seen = []
    fb = update_router(router, NormalizerChain([lambda v, a: v - v.mean()]), X[rows], arms, raw)
    np.testing.assert_allclose(fb, raw - raw.mean())
    (ctx, upd_arms, upd_fb), = Learner.seen
    assert np.array_equal(ctx, X[rows]) and np.array_equal(upd_arms, arms)
    np.testing.assert_allclose(upd_fb, raw - raw.mean())
    kept, kept_arms = feedback_cells(r, rows=np.array([4, 0]))
    assert kept.tolist() == [4, 0] and kept_arms.tolist() == [2, 0]


def test_update_skips_what_the_chain_skips():
    router = Learner(3, 3)
    Learner.seen = []
    fb = update_router(router, NormalizerChain([], on_bad_feedback="skip"), X[:3], np.array([0, 1, 2]),
                       np.array([1.0, NAN, 3.0]))
    assert np.array_equal(fb, [1.0, NAN, 3.0], equal_nan=True)
    (ctx, arms, values), = Learner.seen
    assert arms.tolist() == [0, 2] and values.tolist() == [1.0, 3.0] and np.array_equal(ctx, X[[0, 2]])


class WithItems(Scripted):
    """Declares ``items`` in ``_update``: BaseRouter.update passes the rows' items on."""

    seen: list = []

    def _update(self, X, arms, feedback, items=None):
        WithItems.seen.append((X.copy(), arms.copy(), feedback.copy(), items))


class Plain:
    """A router not built on BaseRouter whose ``update`` has no ``items``: called with three arguments."""

    n_arms, dim = 3, 3

    def __init__(self):
        self.seen = []

    def update(self, contexts, arms, feedback):
        self.seen.append((np.array(contexts), np.array(arms), np.array(feedback)))


ITEMS = [{"domain": d, "i": i} for i, d in enumerate(["math", "chat", "code", "math", "chat"])]


def test_update_hands_a_router_the_items_of_the_rows_it_learns_from():
    """Rows 0, 2, 3, 4 have a label (1 has none); row 2's feedback is NaN and skipped: the update
    covers rows 0, 3, 4 of the selection, in that order, each with the item select got for it."""
    router = WithItems(3, 3)
    r = route(router, X, ITEMS, Recorder(), on_abstain="wrong")
    assert r.items == ITEMS
    rows, arms = feedback_cells(r, rows=np.array([0, 2, 3, 4]))
    assert rows_items(r, rows) == [ITEMS[0], ITEMS[2], ITEMS[3], ITEMS[4]]
    WithItems.seen = []
    fb = update_router(router, NormalizerChain([], on_bad_feedback="skip"), X[rows], arms,
                       np.array([1.0, NAN, 0.0, 1.0]), items=rows_items(r, rows))
    assert np.array_equal(fb, [1.0, NAN, 0.0, 1.0], equal_nan=True)
    (ctx, upd_arms, values, items), = WithItems.seen
    assert items == [ITEMS[0], ITEMS[3], ITEMS[4]]
    assert np.array_equal(ctx, X[[0, 3, 4]]) and upd_arms.tolist() == [0, 0, 2] and values.tolist() == [1.0, 0.0, 1.0]
    # select got no items: the router gets items=None
    r = route(router, X, None, Recorder(), on_abstain="wrong")
    WithItems.seen = []
    update_router(router, NormalizerChain([]), X[:2], r.arms[:2], np.ones(2), items=rows_items(r, np.arange(2)))
    assert WithItems.seen[0][3] is None


def test_update_without_an_items_parameter_is_called_as_before():
    plain = Plain()
    update_router(plain, NormalizerChain([]), X[:3], np.array([0, 1, 2]), np.ones(3), items=ITEMS[:3])
    (ctx, arms, fb), = plain.seen
    assert np.array_equal(ctx, X[:3]) and arms.tolist() == [0, 1, 2]
    # an instance whose update was replaced by a function without items (a test spy) is read as it is now
    router, seen = WithItems(3, 3), []
    router.update = lambda X, arms, fb: seen.append(arms.tolist())
    update_router(router, NormalizerChain([]), X[:2], np.array([1, 2]), np.ones(2), items=ITEMS[:2])
    assert seen == [[1, 2]]


def test_takes_items_reads_the_signature():
    assert takes_items(WithItems(3, 3).update) and takes_items(WithItems(3, 3)._update)
    assert not takes_items(Scripted(3, 3)._update) and not takes_items(Plain().update)

    class KeywordOnly:
        def update(self, contexts, arms, feedback, *, items=None): ...

    class Catchall:
        def update(self, contexts, arms, feedback, **kwargs): ...

    assert takes_items(KeywordOnly().update) and not takes_items(Catchall().update)


def test_update_refuses_items_that_do_not_match_the_rows():
    with pytest.raises(ValueError, match="2 items for 3 feedback rows"):
        update_router(WithItems(3, 3), NormalizerChain([]), X[:3], np.zeros(3, dtype=int), np.ones(3), items=ITEMS[:2])
    with pytest.raises(ValueError, match="update got 2 items for 3 rows"):
        WithItems(3, 3).update(X[:3], np.zeros(3, dtype=int), np.ones(3), items=ITEMS[:2])


class SpyRows(BaseRouter):
    """Records every select batch and every update, to compare them."""

    learns = True

    def __init__(self, n_arms, dim, seed=0):
        super().__init__(n_arms, dim, seed)
        self.log = []

    def _select(self, X, items):
        self.log.append(("select", X.copy(), list(items)))
        return Selection.single(np.arange(X.shape[0]) % self.n_arms, self.n_arms)

    def _update(self, X, arms, feedback, items=None):
        self.log.append(("update", X.copy(), list(items), arms.copy()))


@pytest.mark.parametrize("feedback", [{"mode": "gold"}, {"mode": "budget", "share": 0.5}])
def test_replay_updates_rows_of_the_selection_just_made_with_their_items(feedback):
    """Each update covers a subsequence of the batch selected just before it (context, item and
    credited arm as selected); with gold feedback every streamed item learns once, with a budget
    only the labelled share."""
    from rmroute.harness.runners.replay import ReplayData, Scenario, Split, replay_one

    rng = np.random.default_rng(0)

    def split(n):
        dom = rng.integers(0, 3, size=n)
        gold = rng.choice([-1, 1], size=n)
        return Split(rng.normal(size=(n, 4)), rng.normal(size=(n, 3)), gold, [["a", "b", "c"][d] for d in dom])

    data = ReplayData(names=["r0", "r1", "r2"], costs=np.ones(3), offline=split(30), online=split(100), test=split(20))
    routers = []
    spec = dataclasses.replace(router_spec("random"), name="spy", label="spy", learns=True,
                               factory=lambda **kw: routers.append(SpyRows(**kw)) or routers[-1])
    replay_one(spec, data, Scenario(feedback=feedback), seed=0, batch_size=16)
    log = routers[0].log
    updated = 0
    for prev, entry in zip(log, log[1:]):
        if entry[0] != "update":
            continue
        assert prev[0] == "select"  # the update follows its selection
        _, Xs, items_s = prev
        _, Xu, items_u, arms_u = entry
        pos = [next(i for i in range(len(Xs)) if np.array_equal(Xs[i], x)) for x in Xu]
        assert pos == sorted(set(pos))  # distinct rows, in selection order
        assert items_u == [items_s[i] for i in pos] and arms_u.tolist() == [i % 3 for i in pos]
        updated += len(pos)
    assert updated == (100 if feedback["mode"] == "gold" else 50)


class LengthRM:
    name, cost = "len", 1.0

    def score(self, prompts, responses):
        return np.array([float(len(r)) for r in responses])


class ItemsLog(BaseRouter):
    """Credits arm 0 and records the items every update gets."""

    def __init__(self, n_arms, dim, seed=0):
        super().__init__(n_arms, dim, seed)
        self.updates = []

    def _select(self, X, items):
        return Selection.single(np.zeros(X.shape[0], dtype=np.int64), self.n_arms)

    def _update(self, X, arms, feedback, items=None):
        self.updates.append(items)


def test_routed_reward_hands_update_the_items_of_every_pending_group():
    """Two reward calls (gradient accumulation), then one feedback: the update gets one item per
    prompt group, call after call; a call without a domain column makes it None."""
    from rmroute.harness.pipelines.routed_reward import RoutedReward

    router = ItemsLog(2, 1)
    reward = RoutedReward(router, [LengthRM(), LengthRM()])
    reward(prompts=["p", "p", "q", "q"], completions=["a", "bb", "c", "dd"], domain=["math", "math", "chat", "chat"])
    reward(prompts=["r", "r"], completions=["e", "ff"], domain=["code", "code"])
    reward.feedback(np.array([1.0, 0.0, 1.0]))
    assert router.updates == [[{"domain": "math"}, {"domain": "chat"}, {"domain": "code"}]]
    reward(prompts=["p", "p"], completions=["a", "bb"], domain=["math", "math"])
    reward(prompts=["q", "q"], completions=["c", "dd"])  # no domain: select got None
    reward.feedback(1.0)
    assert router.updates[1] is None


# ---- router specs -------------------------------------------------------------------------------------
def test_router_spec_reads_the_traits_from_registry_metadata():
    laser, single, oracle, mean = (router_spec(n) for n in ("laser", "single", "oracle", "mean-ensemble"))
    assert (laser.feedback, laser.learns, laser.calls_per_item) == ("neg-loss", True, 1)
    assert TRAIN_FEEDBACK[laser.feedback] == ({"name": "quantile", "params": {"unit": "batch", "warmup": 2, "during_warmup": "raw"}},)
    assert router_spec("bayesian").feedback == "loss" and TRAIN_FEEDBACK["loss"] == ("batch-baseline", "quantile")
    assert single.expands_arm_all and not laser.expands_arm_all
    assert oracle.replay_only and not single.replay_only
    assert mean.fit_offline and mean.calls_per_item == "K" and not mean.learns
    assert router_spec("bayesian", {"noise": 0.5}, "b").label == "b" and router_spec("bayesian").label == "bayesian"


def test_a_plugin_with_an_unknown_feedback_kind_is_refused():
    from rmroute.harness.core.hookspecs import hookimpl
    from rmroute.harness.core.plugins import build_registry, reset_registry
    from rmroute.routers.simple import RandomRouter

    class Plugin:
        @hookimpl
        def register_routers(self, register):
            register("odd-feedback", RandomRouter, feedback="reward")

    reset_registry(build_registry(extra_plugins=[("odd", Plugin())]))
    try:
        with pytest.raises(ValueError, match="router odd-feedback: metadata feedback must be one of 'loss', 'neg-loss'"):
            router_spec("odd-feedback")
    finally:
        reset_registry()


class Ref:
    def __init__(self, name, params=None, label=None):
        self.name, self.params, self.label = name, params or {}, label


def test_resolve_routers_expands_labels_and_arm_names():
    names = ["rm-a", "rm-b"]
    refs = [Ref("single", {"arm": "all"}), Ref("single", {"arm": "rm-b"}), Ref("laser", {"mode": "per_item"}, "laser-pi"),
            Ref("bayesian")]
    assert expand_routers(refs, names) == [
        (0, "single:rm-a", "single", {"arm": 0}), (0, "single:rm-b", "single", {"arm": 1}),
        (1, "single:rm-b", "single", {"arm": 1}), (2, "laser-pi", "laser", {"mode": "per_item"}),
        (3, "bayesian", "bayesian", {}),
    ]
    specs = resolve_routers(refs, names)
    assert [(s.label, s.name, dict(s.params)) for s in specs] == [(lbl, n, p) for _, lbl, n, p in expand_routers(refs, names)]
    assert specs[4].feedback == "loss" and specs[3].feedback == "neg-loss"
    with pytest.raises(ValueError, match="arm 'rm-z' is not in the pool"):
        expand_routers([Ref("single", {"arm": "rm-z"})], names)


def test_build_resolves_prior_mean_offline():
    spec = router_spec("bayesian", {"prior_mean": "offline"})
    prior = np.arange(6.0).reshape(3, 2)
    router = spec.build(3, 2, seed=0, prior_mean=prior)
    np.testing.assert_allclose(router.posterior_mean(), prior)
    with pytest.raises(ValueError, match="prior_mean 'offline' needs an offline bundle"):
        spec.build(3, 2, seed=0)
