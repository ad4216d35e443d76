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


class GreedyCoin(RandomRouter):
    """Its test decision draws from self.rng, but is not select: arm 0 after a wasted draw."""

    def select_greedy(self, contexts, items=None):
        self.rng.random()
        return Selection.single(np.zeros(np.asarray(contexts).shape[0], dtype=np.int64), self.n_arms)


class GreedyCounter(RandomRouter):
    """Its test decision depends on a process-wide counter, not on its state."""

    count = 0

    def select_greedy(self, contexts, items=None):
        GreedyCounter.count += 1
        return Selection.single(np.full(np.asarray(contexts).shape[0], GreedyCounter.count % self.n_arms), self.n_arms)


class GreedyUncalled(RandomRouter):
    def select_greedy(self, contexts, items=None):
        sel = self.select(contexts, items)
        sel.calls[:] = False
        return sel


@pytest.mark.parametrize("cls, rule", [
    (NoGreedy, "router has no method 'select_greedy'"),
    (GreedyCoin, "select_greedy draws from self.rng but is not select"),
    (GreedyCounter, "select_greedy from the same state and inputs gave different selections"),
    (GreedyUncalled, "credited arm must be marked as called"),
    (GlobalRandom, "same seed and inputs gave different decisions"),
    (AliasingState, "aliases live state"),
    (AcceptsNaN, "update with an arm out of range"),
    (BadCalls, "credited arm must be marked as called"),
])
def test_broken_routers_are_caught(cls, rule):
    with pytest.raises(ConformanceError, match=rule):
        check_router(cls)


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
