"""An epsilon-greedy router as a third-party rmroute plugin.

It ignores the context: it keeps each RM's running mean feedback, picks the best RM with
probability 1 - epsilon and a uniformly random one otherwise. On the test split (``select_greedy``)
it does not explore: every item goes to the best RM, and nothing is drawn from ``self.rng``.
It also keeps the running mean per (domain, RM), learned from the ``items`` the host hands
``update`` (the items of the rows being updated), for ``domain_means``.
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
        self.by_domain: dict[str, np.ndarray] = {}  # domain -> (2, K): counts and sums

    def means(self) -> np.ndarray:
        # Unseen arms get +inf so each is tried once before exploitation settles.
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / self.counts, np.inf)

    def domain_means(self, domain: str) -> np.ndarray:
        """Mean feedback per RM on items of ``domain`` (NaN where an RM has none there)."""
        counts, sums = self.by_domain.get(domain, np.zeros((2, self.n_arms)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / counts, np.nan)

    def _select(self, X, items):
        n = X.shape[0]
        greedy = np.full(n, int(np.argmax(self.means())))
        explore = self.rng.random(n) < self.epsilon
        arms = np.where(explore, self.rng.integers(0, self.n_arms, size=n), greedy)
        return Selection.single(arms, self.n_arms)

    def select_greedy(self, contexts, items=None):
        # The test decision: exploit only (no epsilon draw), so the board scores what was learned.
        X = self._check_contexts(contexts)
        return Selection.single(np.full(X.shape[0], int(np.argmax(self.means()))), self.n_arms)

    def _update(self, X, arms, feedback, items=None):
        # items[j] is the item of row j, the one select got for it (None when select got None).
        np.add.at(self.counts, arms, 1.0)
        np.add.at(self.sums, arms, feedback)
        for j, item in enumerate(items or ()):
            if "domain" in item:
                table = self.by_domain.setdefault(str(item["domain"]), np.zeros((2, self.n_arms)))
                table[:, arms[j]] += (1.0, feedback[j])

    def _state(self):
        return {"counts": self.counts.copy(), "sums": self.sums.copy(),
                "domains": list(self.by_domain), "domain_tables": [t.tolist() for t in self.by_domain.values()]}

    def _load_state(self, state):
        self.counts = np.array(state["counts"], dtype=float)
        self.sums = np.array(state["sums"], dtype=float)
        self.by_domain = {str(d): np.array(t, dtype=float) for d, t in zip(state["domains"], state["domain_tables"])}


@hookimpl
def register_routers(register):
    register(
        "epsilon-greedy", EpsilonGreedyRouter,
        description="context-free epsilon-greedy over RMs (example plugin)",
        calls_per_item=1, learns=True,
    )
