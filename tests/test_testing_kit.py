"""The plugin author kit must pass good plugins and catch broken ones (each check can fail)."""

from __future__ import annotations

import numpy as np
import pytest

from rmroute.harness.core.plugins import get_registry
from rmroute.harness.core.testing import (ConformanceError, check_entry, check_normalizer, check_reward_model,
                             check_router)
from rmroute.harness.core.types import Selection
from rmroute.reward_models.heuristics import LengthRM
from rmroute.routers.base import BaseRouter
from rmroute.routers.simple import RandomRouter


def test_every_builtin_passes_its_conformance_check():
    reg = get_registry()
    results = {
        (kind, name): check_entry(entry)
        for kind, entries in reg.entries.items() for name, entry in entries.items()
        if entry.plugin.startswith("builtin") and kind in ("router", "reward_model", "normalizer", "featurizer")
    }
    assert results, "no built-ins found"
    assert {k: v for k, v in results.items() if v[0] == "fail"} == {}
    # only backends that need a model or a server are skipped here; tests/test_reward_models.py and
    # tests/test_remote_rm.py run check_reward_model on them with tiny models / a live server
    skipped = {k for k, v in results.items() if v[0] == "skip"}
    assert skipped <= {("reward_model", n) for n in ("hf-seqcls", "hf-loglik", "remote-http")}, skipped
    assert all("needs parameters" in results[k][1] for k in skipped)


def test_length_rm_passes():
    check_reward_model(LengthRM)
    check_reward_model(LengthRM, log=True)


class GlobalRandom(BaseRouter):
    """Uses global numpy state: not reproducible from its seed."""

    def _select(self, X, items):
        return Selection.single(np.random.randint(0, self.n_arms, size=X.shape[0]), self.n_arms)


class AliasingState(RandomRouter):
    """Learns counts but returns live arrays from state_dict (overrides the base's copying)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.counts = np.zeros(self.n_arms)

    def _select(self, X, items):
        return Selection.single(np.full(X.shape[0], int(np.argmin(self.counts))), self.n_arms)

    def _update(self, X, arms, feedback):
        np.add.at(self.counts, arms, 1)

    def state_dict(self):
        return {"n_arms": self.n_arms, "dim": self.dim, "rng": self.rng.bit_generator.state, "counts": self.counts}

    def _load_state(self, state):
        self.counts = state["counts"]


class AcceptsNaN(RandomRouter):
    def update(self, contexts, arms, feedback):
        pass


class BadCalls(RandomRouter):
    def _select(self, X, items):
        sel = super()._select(X, items)
        sel.calls[:] = False
        return sel


class NoGreedy(RandomRouter):
    select_greedy = None


class Exploring(BaseRouter):
    """Explores in select (a coin per item) and keeps BaseRouter's default select_greedy (= select),
    without declaring greedy_draws: its test decision draws, as the example router's did."""

    def _select(self, X, items):
        return Selection.single(self.rng.integers(0, self.n_arms, size=X.shape[0]), self.n_arms)


class GreedyCoin(RandomRouter):
    """Its test decision draws from self.rng (a wasted draw, then arm 0)."""

    greedy_draws = False

    def select_greedy(self, contexts, items=None):
        self.rng.random()
        return Selection.single(np.zeros(np.asarray(contexts).shape[0], dtype=np.int64), self.n_arms)


class _Helper:
    def __init__(self, seed):
        self.gen = np.random.default_rng(seed)


class GreedyHiddenRng(BaseRouter):
    """Draws on test from a generator kept on a helper object, outside state_dict()."""

    def __init__(self, n_arms, dim, seed=0):
        super().__init__(n_arms, dim, seed)
        self.helper = _Helper(seed)

    def _select(self, X, items):
        return Selection.single(np.zeros(X.shape[0], dtype=np.int64), self.n_arms)

    def select_greedy(self, contexts, items=None):
        n = np.asarray(contexts).shape[0]
        return Selection.single((self.helper.gen.random(n) < 0.0).astype(np.int64), self.n_arms)


class GreedyGlobal(GreedyHiddenRng):
    """Draws on test from numpy's global generator (then always arm 0)."""

    def select_greedy(self, contexts, items=None):
        np.random.random()
        return Selection.single(np.zeros(np.asarray(contexts).shape[0], dtype=np.int64), self.n_arms)


class GreedyCounter(RandomRouter):
    """Its test decision depends on a process-wide counter, not on its state."""

    greedy_draws = False
    count = 0

    def select_greedy(self, contexts, items=None):
        GreedyCounter.count += 1
        return Selection.single(np.full(np.asarray(contexts).shape[0], GreedyCounter.count % self.n_arms), self.n_arms)


class GreedyLearns(GreedyHiddenRng):
    """Counts its test decisions in its state: select_greedy must leave the state alone."""

    def __init__(self, n_arms, dim, seed=0):
        super().__init__(n_arms, dim, seed)
        self.decided = 0

    def select_greedy(self, contexts, items=None):
        self.decided += 1
        return Selection.single(np.zeros(np.asarray(contexts).shape[0], dtype=np.int64), self.n_arms)

    def _state(self):
        return {"decided": self.decided}

    def _load_state(self, state):
        self.decided = state["decided"]


class GreedyUncalled(RandomRouter):
    def select_greedy(self, contexts, items=None):
        sel = self.select(contexts, items)
        sel.calls[:] = False
        return sel


class ItemsRefusesNone(GreedyHiddenRng):
    """Declares items in update but fails when select got none (items=None)."""

    def update(self, contexts, arms, feedback, items=None):
        if items is None:
            raise TypeError("items is None")
        super().update(contexts, arms, feedback)


class ItemsIgnoresLength(GreedyHiddenRng):
    """Declares items in update but does not check that there is one per row."""

    def update(self, contexts, arms, feedback, items=None):
        super().update(contexts, arms, feedback)


@pytest.mark.parametrize("cls, rule", [
    (NoGreedy, "router has no method 'select_greedy'"),
    (Exploring, "select_greedy draws randomness: router.rng advanced"),
    (GreedyCoin, "select_greedy draws randomness: router.rng advanced"),
    (GreedyHiddenRng, "select_greedy draws randomness: router.helper.gen advanced"),
    (GreedyGlobal, "select_greedy draws randomness: the global numpy or Python generator advanced"),
    (GreedyLearns, "select_greedy changed the router's state"),
    (GreedyCounter, "select_greedy from the same state and inputs gave different selections"),
    (GreedyUncalled, "credited arm must be marked as called"),
    (GlobalRandom, "same seed and inputs gave different decisions"),
    (AliasingState, "aliases live state"),
    (AcceptsNaN, "update with an arm out of range"),
    (BadCalls, "credited arm must be marked as called"),
    (ItemsRefusesNone, "update declares items but failed on items=None"),
    (ItemsIgnoresLength, "update with 2 items for 3 rows"),
])
def test_broken_routers_are_caught(cls, rule):
    with pytest.raises(ConformanceError, match=rule):
        check_router(cls)


def test_a_test_decision_random_by_design_is_declared():
    """The same exploring router passes once it declares greedy_draws (only repeatability is
    checked then), and once it overrides select_greedy with an exploit-only choice."""
    check_router(type("DeclaredRandom", (Exploring,), {"greedy_draws": True}))
    check_router(type("Exploiting", (Exploring,), {
        "select_greedy": lambda self, X, items=None: Selection.single(
            np.zeros(self._check_contexts(X).shape[0], dtype=np.int64), self.n_arms)}))


class RowKeeper(BaseRouter):
    """Fails (AssertionError, not the ValueError the kit expects anywhere) when update gets a row
    that is not a row of one of its past selections, or an item that is not the one select got."""

    learns = True
    updates_with_items = 0

    def __init__(self, n_arms, dim, seed=0):
        super().__init__(n_arms, dim, seed)
        self.selected: dict[bytes, list] = {}

    def _select(self, X, items):
        for i, x in enumerate(X):
            self.selected.setdefault(x.tobytes(), []).append(None if items is None else items[i])
        return Selection.single(np.arange(X.shape[0]) % self.n_arms, self.n_arms)

    def update(self, contexts, arms, feedback, items=None):
        X = np.asarray(contexts, dtype=np.float64)
        for j, x in enumerate(X):
            assert x.tobytes() in self.selected, f"update row {j} was never selected"
            if items is not None and len(items) == len(X):  # a wrong length is BaseRouter's ValueError
                assert items[j] in self.selected[x.tobytes()], f"update row {j}: not the item select got"
                RowKeeper.updates_with_items += 1
        super().update(contexts, arms, feedback, items)


def test_the_kit_updates_only_rows_of_past_selections_with_their_items():
    RowKeeper.updates_with_items = 0
    check_router(RowKeeper)
    assert RowKeeper.updates_with_items > 0


class WrongShapeRM(LengthRM):
    def score(self, prompts, responses):
        return super().score(prompts, responses)[:, None]


class InfRM(LengthRM):
    def score(self, prompts, responses):
        return super().score(prompts, responses) * np.inf


@pytest.mark.parametrize("cls, rule", [(WrongShapeRM, "shape"), (InfRM, "inf")])
def test_broken_reward_models_are_caught(cls, rule):
    with pytest.raises(ConformanceError, match=rule):
        check_reward_model(cls)


def test_normalizer_check_catches_nan_passthrough():
    with pytest.raises(ConformanceError, match="NaN feedback"):
        check_normalizer(lambda: (lambda raw, arms: np.asarray(raw, dtype=float)))
