"""BayesianRouter (Wu & Lu, arXiv 2510.02850) and its ablations.

Every router here keeps one Bayesian linear regression per RM (:class:`rmroute.routers.linear.LinearGaussianArms`):
prior N(μ0_k, Λ0⁻¹) with Λ0 = λ0·I and μ0_k = ``prior_scale`` × ``prior_mean[k]`` (the RM's offline
embedding, or zero), Gaussian noise σ² (``noise``). For a context x the predictive score of RM k is
N(μ_kᵀx, xᵀΛ_k⁻¹x); Thompson sampling draws one score per (item, RM) and picks the argmax.

* ``bayesian``           Thompson sampling per item, learns from the credited RM's feedback.
* ``bayesian-offline``   ablation: argmax_k μ0_kᵀx, never learns.
* ``bayesian-online``    ablation: zero prior mean (online learning only).
* ``bayesian-adaptive``  beyond the papers: also calls the runner-up RM when the posterior
                          probability that the chosen RM is best is below ``threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmroute.harness.core.types import Selection
from rmroute.harness.determinism import derived_rng
from rmroute.routers.base import BaseRouter, real
from rmroute.routers.linear import LinearGaussianArms


class LinearPosteriorRouter(BaseRouter):
    """Base of the routers built on :class:`LinearGaussianArms`: posterior views and state plumbing."""

    learns = True

    def __init__(
        self,
        n_arms: int,
        dim: int,
        seed: int = 0,
        prior_mean: np.ndarray | None = None,
        prior_scale: float = 1.0,
        prior_precision: float = 1.0,
        noise: float = 1.0,
    ) -> None:
        super().__init__(n_arms, dim, seed)
        name = type(self).__name__
        self.prior_scale = scale = real(name, "prior_scale", prior_scale)
        mu0 = None
        if prior_mean is not None:
            mu0 = np.array(prior_mean, dtype=np.float64)
            if mu0.shape != (self.n_arms, self.dim):
                raise ValueError(
                    f"{name}: prior_mean must have shape (n_arms, dim) = ({self.n_arms}, {self.dim}), got {mu0.shape}"
                )
            mu0 = scale * mu0
        self.posterior = LinearGaussianArms(
            self.n_arms, self.dim, prior_mean=mu0, prior_precision=prior_precision, noise=noise, owner=name
        )
        self.prior_mean = self.posterior.mean.copy()  # μ0 after scaling, (K, d)

    # ---- posterior views (copies) -----------------------------------------------------------
    def posterior_mean(self) -> np.ndarray:
        """μ_k for every RM, (K, d)."""
        return self.posterior.mean.copy()

    def posterior_cov(self) -> np.ndarray:
        """Λ_k⁻¹ for every RM, (K, d, d)."""
        return self.posterior.cov.copy()

    def posterior_precision(self) -> np.ndarray:
        """Λ_k for every RM, (K, d, d); inverts Σ_k, so it is a diagnostic, not for the hot path."""
        return self.posterior.precision()

    def predictive(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, K) predictive means μ_kᵀx and variances xᵀΛ_k⁻¹x."""
        return self.posterior.predict(self._check_contexts(contexts))

    # ---- learning and state -----------------------------------------------------------------
    def select_greedy(self, contexts, items=None) -> Selection:
        """Exploit only: the RM with the highest posterior (predictive) mean, no sampling."""
        means, _ = self.predictive(self._check_contexts(contexts))
        return Selection.single(np.argmax(means, axis=1).astype(np.int64), self.n_arms)

    def _update(self, X: np.ndarray, arms: np.ndarray, feedback: np.ndarray) -> None:
        self.posterior.update(X, arms, feedback)

    def _state(self) -> dict[str, Any]:
        return {"posterior": self.posterior.state_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        if "posterior" not in state:
            raise ValueError(f"{type(self).__name__}: state has no 'posterior' entry (keys: {sorted(state)})")
        self.posterior.load_state_dict(state["posterior"], owner=type(self).__name__)


class BayesianRouter(LinearPosteriorRouter):
    """Thompson sampling over per-RM Bayesian linear regressions, one draw per (item, RM).

    score_k ~ N(μ_kᵀx, xᵀΛ_k⁻¹x) from the router's seeded generator; the item goes to argmax_k
    (exact ties, which have probability zero, go to the lowest index).
    """

    def _thompson(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        means, var = self.posterior.predict(X)
        z = self.rng.standard_normal(means.shape)
        arms = np.argmax(means + np.sqrt(var) * z, axis=1).astype(np.int64)
        return arms, means, var

    def _select(self, X, items):
        arms, _, _ = self._thompson(X)
        return Selection.single(arms, self.n_arms)


class BayesianOnlineRouter(BayesianRouter):
    """Ablation: BayesianRouter with a zero prior mean (``prior_mean`` is not accepted)."""

    def __init__(
        self,
        n_arms: int,
        dim: int,
        seed: int = 0,
        prior_precision: float = 1.0,
        noise: float = 1.0,
    ) -> None:
        super().__init__(n_arms, dim, seed, prior_mean=None, prior_precision=prior_precision, noise=noise)


class BayesianOfflineRouter(LinearPosteriorRouter):
    """Ablation: the prior alone. Picks argmax_k μ0_kᵀx (ties: lowest index); feedback is
    validated and then ignored, so the posterior stays the prior."""

    learns = False

    def _select(self, X, items):
        return Selection.single(np.argmax(X @ self.prior_mean.T, axis=1).astype(np.int64), self.n_arms)

    def _update(self, X, arms, feedback) -> None:
        """Never learns (the input was already validated by BaseRouter.update)."""


class BayesianAdaptiveRouter(BayesianRouter):
    """Thompson sampling that pays for a second RM where the first is not clearly best.

    Per item, the credited RM a is the Thompson draw (exactly as ``bayesian``, from the same
    generator, so with the same seed and feedback both credit the same RMs). The posterior
    probability p_k that RM k has the highest score is estimated from ``n_samples`` Monte Carlo
    draws of the predictive Gaussians, made from a second seeded generator. Where p_a < ``threshold``
    the runner-up RM (highest p_k among k ≠ a; ties to the higher predictive mean, then the lower
    index) is called too. ``Selection.info`` carries ``p_best`` (B, K), ``p_top`` (B,) = p_a and
    ``second_arm`` (B,) (-1 where none was called).

    :meth:`combine` decides each pair: one call → that RM's margin; two calls → their mean when
    the signs agree (or one is zero), else the margin of the RM more likely to be best (higher
    p_k; on a tie the credited RM). An abstaining (NaN) RM is ignored when the other answered.
    """

    #: select_greedy credits the posterior-mean RM but still estimates p_best (whether to pay for a
    #: second RM) by Monte Carlo from mc_rng, so its test decision draws; committed runs rely on it
    greedy_draws = True

    def __init__(
        self,
        n_arms: int,
        dim: int,
        seed: int = 0,
        prior_mean: np.ndarray | None = None,
        prior_scale: float = 1.0,
        prior_precision: float = 1.0,
        noise: float = 1.0,
        threshold: float = 0.5,
        n_samples: int = 256,
    ) -> None:
        super().__init__(n_arms, dim, seed, prior_mean, prior_scale, prior_precision, noise)
        t = real("BayesianAdaptiveRouter", "threshold", threshold, low=0.0, high=1.0)
        if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"BayesianAdaptiveRouter: n_samples must be a positive int, got {n_samples!r}")
        self.threshold, self.n_samples = t, int(n_samples)
        self.mc_rng = derived_rng(self.seed, "router-monte-carlo")  # Monte Carlo draws only

    def best_probabilities(self, means: np.ndarray, var: np.ndarray) -> np.ndarray:
        """(B, K) Monte Carlo estimate of P(RM k has the highest predictive score) per item."""
        B, K = means.shape
        p = np.zeros((B, K))
        sd = np.sqrt(var)
        chunk = max(1, 2**22 // (self.n_samples * K))
        for start in range(0, B, chunk):
            m, s = means[start:start + chunk], sd[start:start + chunk]
            draws = m + s * self.mc_rng.standard_normal((self.n_samples,) + m.shape)  # (S, b, K)
            winner = np.argmax(draws, axis=2)  # (S, b)
            for k in range(K):
                p[start:start + chunk, k] = (winner == k).mean(axis=0)
        return p

    def _select(self, X, items):
        arms, means, var = self._thompson(X)
        return self._with_second(arms, means, var)

    def select_greedy(self, contexts, items=None) -> Selection:
        """Credit the RM with the highest posterior mean; still pay for a second RM where unsure."""
        X = self._check_contexts(contexts)
        means, var = self.posterior.predict(X)
        return self._with_second(np.argmax(means, axis=1).astype(np.int64), means, var)

    def _with_second(self, arms: np.ndarray, means: np.ndarray, var: np.ndarray) -> Selection:
        B, K = means.shape
        p = self.best_probabilities(means, var)
        rows = np.arange(B)
        p_top = p[rows, arms]
        second = np.full(B, -1, dtype=np.int64)
        calls = np.zeros((B, K), dtype=bool)
        calls[rows, arms] = True
        if K > 1 and B:
            masked = p.copy()
            masked[rows, arms] = -np.inf
            tied = masked == masked.max(axis=1, keepdims=True)
            runner_up = np.argmax(np.where(tied, means, -np.inf), axis=1)
            need = p_top < self.threshold
            second[need] = runner_up[need]
            calls[rows[need], runner_up[need]] = True
        return Selection(arms=arms, calls=calls, info={"p_best": p, "p_top": p_top, "second_arm": second})

    def combine(self, selection: Selection, margins: np.ndarray) -> np.ndarray:
        m = np.asarray(margins, dtype=np.float64)
        rows = np.arange(m.shape[0])
        arms = np.asarray(selection.arms)
        others = np.asarray(selection.calls).copy()
        others[rows, arms] = False  # what is left is the second RM, where one was called
        two = others.any(axis=1)
        second = np.argmax(others, axis=1)
        ma, mc = m[rows, arms], m[rows, second]
        p = selection.info.get("p_best")
        prefer_second = np.zeros(rows.size, dtype=bool) if p is None else p[rows, second] > p[rows, arms]
        both = np.where(
            ma * mc >= 0,  # they agree (or one is undecided): the mean
            0.5 * (ma + mc),
            np.where(prefer_second, mc, ma),  # they disagree: the likelier-best RM; ties to the credited one
        )
        both = np.where(np.isnan(ma), mc, np.where(np.isnan(mc), ma, both))  # one abstained: the other
        return np.where(two, both, ma)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "mc_rng": self.mc_rng.bit_generator.state}

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        if "mc_rng" not in state:
            raise ValueError(f"BayesianAdaptiveRouter: state has no 'mc_rng' entry (keys: {sorted(state)})")
        self.mc_rng.bit_generator.state = state["mc_rng"]
