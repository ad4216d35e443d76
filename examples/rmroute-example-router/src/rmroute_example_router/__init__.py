"""An epsilon-greedy router as a third-party rmroute plugin.

It ignores the context: it keeps each RM's running mean feedback, picks the best RM with
probability 1 - epsilon and a uniformly random one otherwise.
"""

from __future__ import annotations

import numpy as np

from rmroute import BaseRouter, Selection, hookimpl


class EpsilonGreedyRouter(BaseRouter):
    learns = True

    def __init__(self, n_arms: int, dim: int, seed: int = 0, epsilon: float = 0.1) -> None:
        super().__init__(n_arms, dim, seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon-greedy: epsilon must be in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.counts = np.zeros(n_arms)
        self.sums = np.zeros(n_arms)

    def means(self) -> np.ndarray:
        # Unseen arms get +inf so each is tried once before exploitation settles.
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / self.counts, np.inf)

    def _select(self, X, items):
        n = X.shape[0]
        greedy = np.full(n, int(np.argmax(self.means())))
        explore = self.rng.random(n) < self.epsilon
        arms = np.where(explore, self.rng.integers(0, self.n_arms, size=n), greedy)
        return Selection.single(arms, self.n_arms)

    def _update(self, X, arms, feedback):
        np.add.at(self.counts, arms, 1.0)
        np.add.at(self.sums, arms, feedback)

    def _state(self):
        return {"counts": self.counts.copy(), "sums": self.sums.copy()}

    def _load_state(self, state):
        self.counts = np.array(state["counts"], dtype=float)
        self.sums = np.array(state["sums"], dtype=float)


@hookimpl
def register_routers(register):
    register(
        "epsilon-greedy", EpsilonGreedyRouter,
        description="context-free epsilon-greedy over RMs (example plugin)",
        calls_per_item=1, learns=True,
    )
