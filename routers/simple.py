"""Routers that do not learn: one fixed RM, or a seeded uniform choice."""

from __future__ import annotations

import numpy as np

from rmroute.harness.core.types import Selection
from rmroute.routers.base import BaseRouter


class SingleRouter(BaseRouter):
    """Always RM ``arm``: one leaderboard row per RM."""

    def __init__(self, n_arms: int, dim: int, seed: int = 0, arm: int = 0) -> None:
        super().__init__(n_arms, dim, seed)
        if isinstance(arm, bool) or not isinstance(arm, (int, np.integer)) or not 0 <= arm < self.n_arms:
            raise ValueError(f"single: arm must be in [0, {self.n_arms}) (an RM index; a replay or train config "
                             f"may also give an RM name, or 'all' for one router per RM), got {arm!r}")
        self.arm = int(arm)

    def _select(self, X, items):
        return Selection.single(np.full(X.shape[0], self.arm, dtype=np.int64), self.n_arms)


class RandomRouter(BaseRouter):
    """A uniformly random RM per item, from the router's seeded generator."""

    greedy_draws = True  # its test decision is the same uniform draw

    def _select(self, X, items):
        return Selection.single(self.rng.integers(0, self.n_arms, size=X.shape[0]), self.n_arms)
