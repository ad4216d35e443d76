"""LASeR (Nguyen et al., arXiv 2410.01735): LinUCB over reward models.

Per RM k: A_k = λI + Σ x xᵀ, b_k = Σ r·x, θ_k = A_k⁻¹ b_k, and the score of context x is

    UCB_k(x) = θ_kᵀx + α·sqrt(xᵀA_k⁻¹x)

The maths is :class:`rmroute.routers.linear.LinearGaussianArms` with prior precision λ, unit noise and a zero
prior mean (A_k⁻¹ is its covariance, θ_k its mean). Ties go to the lowest RM index (``np.argmax``),
which is also what mabwiser's LinUCB does.

Modes:

* ``per_batch`` (LASeR): one RM for the whole batch, chosen by the UCB of the batch's mean context
  x̄; the update is one observation (x̄, r̄) with r̄ the batch's mean feedback, as in the LASeR code
  (``scripts/train_and_infer.py``, batch mode: ``select_arm(contexts.mean(0))`` then one
  ``update(arm, mean_context, -loss)``). If an update carries several RMs, each RM gets one
  observation from the mean context and mean feedback of its own rows.
* ``per_item``: plain LinUCB, one decision and one observation per item.

LASeR's own code also rescales the reward by 20/80% quantiles inside the bandit; here that is the
``quantile`` feedback normalizer's job, so ``update`` takes feedback that is already normalized.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmroute.harness.core.types import Selection
from rmroute.routers.bayesian import LinearPosteriorRouter
from rmroute.routers.base import real
from rmroute.routers.linear import positive

MODES = ("per_batch", "per_item")


class LaserRouter(LinearPosteriorRouter):
    learns = True

    def __init__(
        self,
        n_arms: int,
        dim: int,
        seed: int = 0,
        alpha: float = 0.1,
        ridge: float = 1.0,
        mode: str = "per_batch",
    ) -> None:
        ridge = positive("ridge", ridge, "LaserRouter")
        a = real("LaserRouter", "alpha", alpha, low=0)
        if mode not in MODES:
            raise ValueError(f"LaserRouter: mode must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__(n_arms, dim, seed, prior_mean=None, prior_precision=ridge, noise=1.0)
        self.alpha, self.ridge, self.mode = a, ridge, mode

    def ucb(self, contexts: np.ndarray) -> np.ndarray:
        """(B, K) upper confidence bounds θ_kᵀx + α·sqrt(xᵀA_k⁻¹x)."""
        means, var = self.posterior.predict(self._check_contexts(contexts))
        return means + self.alpha * np.sqrt(var)

    def _select(self, X, items, alpha: float | None = None):
        alpha = self.alpha if alpha is None else alpha
        B = X.shape[0]
        if self.mode == "per_item" or B == 0:
            means, var = self.posterior.predict(X)
            arms = np.argmax(means + alpha * np.sqrt(var), axis=1)
            return Selection.single(arms.astype(np.int64), self.n_arms)
        means, var = self.posterior.predict(X.mean(axis=0, keepdims=True))
        arm = int(np.argmax(means[0] + alpha * np.sqrt(var[0])))
        return Selection.single(np.full(B, arm, dtype=np.int64), self.n_arms)

    def select_greedy(self, contexts, items=None) -> Selection:
        """No exploration bonus (α = 0); per_batch mode still picks one RM per batch."""
        return self._select(self._check_contexts(contexts), items, alpha=0.0)

    def _update(self, X: np.ndarray, arms: np.ndarray, feedback: np.ndarray) -> None:
        if self.mode == "per_item":
            self.posterior.update(X, arms, feedback)
            return
        ks = np.unique(arms)
        Xbar = np.stack([X[arms == k].mean(axis=0) for k in ks])
        rbar = np.array([feedback[arms == k].mean() for k in ks])
        self.posterior.update(Xbar, ks, rbar)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "mode": self.mode, "alpha": self.alpha}

    def _load_state(self, state: dict[str, Any]) -> None:
        for key in ("mode", "alpha"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"LaserRouter: state was saved with {key}={state[key]!r}; this router has {key}={getattr(self, key)!r}"
                )
        super()._load_state(state)
