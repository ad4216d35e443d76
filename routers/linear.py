"""Shared maths of the linear bandit routers: K independent Bayesian linear regressions.

Each arm k keeps a Gaussian posterior over its weight vector in information form::

    prior    Λ_k = λ0·I,            b_k = λ0·μ0_k
    update   Λ_k += x xᵀ / σ²,      b_k += (r / σ²)·x
    mean     μ_k = Λ_k⁻¹ b_k

What is stored is the covariance Σ_k = Λ_k⁻¹ (not Λ_k), kept current by low-rank identities, so
no decision and no update ever decomposes or inverts a d×d matrix:

* one row (Sherman–Morrison):   u = Σx,  Σ ← Σ − u uᵀ / (σ² + xᵀu)
* n rows X of one arm (Woodbury): U = Σ Xᵀ,  G = σ² I_n + X U,  Σ ← Σ − U G⁻¹ Uᵀ
  (G is n×n and symmetric positive definite; it is factorised by Cholesky, n ≤ ``block``).

Both are applied as Σ ← Σ − V Vᵀ with V = u/√(σ² + xᵀu) (resp. V = U L⁻ᵀ, G = L Lᵀ), and the
mean as μ ← Σ_new b = Σ_old b − V (Vᵀ b), so one pass over Σ serves Σx and Σb. The rank-1 form keeps Σ
bitwise symmetric; after a block update Σ is re-symmetrised ((Σ + Σᵀ)/2, O(d²)), so 10⁵ updates in
float64 leave it symmetric and positive definite.

Selecting a batch needs, for every item b and arm k, only the predictive mean μ_kᵀx_b and variance
x_bᵀΣ_k x_b; both come from matrix products over the whole batch (:meth:`LinearGaussianArms.predict`).

LinUCB (A_k = λI + Σ x xᵀ, b_k = Σ r x, θ_k = A_k⁻¹ b_k) is the same state with prior_precision = λ,
noise = 1 and a zero prior mean: Σ_k is then A_k⁻¹ and μ_k is θ_k.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rmroute.routers.base import real

#: Largest number of rows folded into one Woodbury step (bigger blocks are split in order).
DEFAULT_BLOCK = 128
#: Temporary memory (bytes) that :meth:`LinearGaussianArms.predict` may use per chunk of items.
_PREDICT_BYTES = 64 * 2**20


def positive(name: str, value: Any, owner: str) -> float:
    """``value`` as a float that must be finite and > 0; the error names ``owner`` and ``name``."""
    return real(owner, name, value, low=0, low_open=True)


class LinearGaussianArms:
    """Per-arm Bayesian linear regression, float64, with Σ_k = Λ_k⁻¹ kept by rank-1/Woodbury updates.

    Attributes (read-only from outside; use :meth:`state_dict` for copies):
        cov   (K, d, d)  posterior covariance Σ_k = Λ_k⁻¹ (without the σ² factor: this *is* Λ_k⁻¹)
        b     (K, d)     information vector b_k
        mean  (K, d)     posterior mean μ_k = Σ_k b_k
        counts (K,)      number of observations folded into each arm
    """

    def __init__(
        self,
        n_arms: int,
        dim: int,
        prior_mean: np.ndarray | None = None,
        prior_precision: float = 1.0,
        noise: float = 1.0,
        block: int = DEFAULT_BLOCK,
        owner: str = "LinearGaussianArms",
    ) -> None:
        self.n_arms, self.dim = int(n_arms), int(dim)
        self.prior_precision = positive("prior_precision", prior_precision, owner)
        self.noise = positive("noise", noise, owner)
        if not isinstance(block, (int, np.integer)) or block < 1:
            raise ValueError(f"{owner}: block must be a positive int, got {block!r}")
        self.block = int(block)
        K, d = self.n_arms, self.dim
        if prior_mean is None:
            mu0 = np.zeros((K, d))
        else:
            mu0 = np.array(prior_mean, dtype=np.float64)  # a copy, never a view of the caller's array
            if mu0.shape != (K, d):
                raise ValueError(f"{owner}: prior_mean must have shape ({K}, {d}) = (n_arms, dim), got {mu0.shape}")
            if not np.isfinite(mu0).all():
                raise ValueError(f"{owner}: prior_mean contains NaN/inf")
        self.cov = np.broadcast_to(np.eye(d) / self.prior_precision, (K, d, d)).copy()
        self.b = self.prior_precision * mu0
        self.mean = mu0.copy()
        self.counts = np.zeros(K, dtype=np.int64)

    # ---- decisions --------------------------------------------------------------------------
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean μ_kᵀx and variance xᵀΣ_k x for every item and arm: two (B, K) arrays."""
        X = np.asarray(X, dtype=np.float64)
        B, K, d = X.shape[0], self.n_arms, self.dim
        means = X @ self.mean.T
        var = np.empty((B, K))
        if B == 0:
            return means, var
        stacked = self.cov.reshape(K * d, d)  # all arms' Σ rows stacked: one product serves every arm
        chunk = max(1, _PREDICT_BYTES // (8 * K * d))
        for start in range(0, B, chunk):
            Xc = X[start:start + chunk]
            XS = (Xc @ stacked.T).reshape(-1, K, d)  # XS[b, k] = x_bᵀ Σ_k (Σ_k is symmetric)
            var[start:start + chunk] = np.einsum("bkd,bd->bk", XS, Xc)
        np.maximum(var, 0.0, out=var)  # Σ_k is PD; this only guards round-off on x ≈ 0
        return means, var

    # ---- learning ---------------------------------------------------------------------------
    def update(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        """Fold observations (X (n, d), arms (n,), rewards (n,)) into the posteriors.

        Rows of one arm are folded in their original order, ``block`` rows at a time; the result
        equals the closed form (λ0·I + XᵀX/σ²)⁻¹(λ0·μ0 + Xᵀr/σ²) up to float64 round-off, whatever
        the order or batching.
        """
        X = np.asarray(X, dtype=np.float64)
        arms = np.asarray(arms, dtype=np.int64)
        r = np.asarray(rewards, dtype=np.float64)
        for k in np.unique(arms):
            rows = np.flatnonzero(arms == k)
            Xk, rk = X[rows], r[rows]
            for start in range(0, rows.size, self.block):
                self._fold(int(k), Xk[start:start + self.block], rk[start:start + self.block])
            self.counts[k] += rows.size

    def _fold(self, k: int, X: np.ndarray, r: np.ndarray) -> None:
        """Fold n rows of arm k: Σ ← Σ − V Vᵀ, b ← b + Xᵀr/σ², μ ← Σ_new b = Σ_old b − V (Vᵀ b)."""
        cov, b, s2, n = self.cov[k], self.b[k], self.noise, X.shape[0]
        b += X.T @ r / s2
        W = cov @ np.concatenate([X, b[None]]).T  # one pass over Σ: [Σxᵢ … | Σb], (d, n + 1)
        U, Sb = W[:, :n], W[:, n]
        if n == 1:
            u = U[:, 0]
            v = u / np.sqrt(s2 + X[0] @ u)
            cov -= np.outer(v, v)  # bitwise symmetric: v_i v_j == v_j v_i
            self.mean[k] = Sb - v * (v @ b)
            return
        inner = X @ U
        inner = 0.5 * (inner + inner.T)
        inner[np.diag_indices_from(inner)] += s2
        L = np.linalg.cholesky(inner)  # n×n, n ≤ block: never d×d
        V = U @ np.linalg.inv(L).T  # V = U L⁻ᵀ, so V Vᵀ = U G⁻¹ Uᵀ
        cov -= V @ V.T
        cov += cov.T  # re-symmetrise in place (numpy buffers the overlap): Σ ← (Σ + Σᵀ)/2
        cov *= 0.5
        self.mean[k] = Sb - V @ (V.T @ b)

    # ---- views and diagnostics --------------------------------------------------------------
    def precision(self) -> np.ndarray:
        """Λ_k for every arm, (K, d, d). A diagnostic: it inverts Σ_k, so never call it per decision."""
        return np.linalg.inv(self.cov)

    def state_dict(self) -> dict[str, Any]:
        return {
            "cov": self.cov.copy(),
            "b": self.b.copy(),
            "mean": self.mean.copy(),
            "counts": self.counts.copy(),
            "prior_precision": self.prior_precision,
            "noise": self.noise,
        }

    def load_state_dict(self, state: Mapping[str, Any], owner: str = "LinearGaussianArms") -> None:
        K, d = self.n_arms, self.dim
        expected = {"cov": (K, d, d), "b": (K, d), "mean": (K, d), "counts": (K,)}
        for key, shape in expected.items():
            if key not in state:
                raise ValueError(f"{owner}: state has no {key!r} (keys: {sorted(state)})")
            if np.shape(state[key]) != shape:
                raise ValueError(f"{owner}: state[{key!r}] must have shape {shape}, got {np.shape(state[key])}")
        for key in ("prior_precision", "noise"):
            if key in state and float(state[key]) != getattr(self, key):
                raise ValueError(
                    f"{owner}: state was saved with {key}={state[key]!r}; this router has {key}={getattr(self, key)!r}"
                )
        self.cov = np.array(state["cov"], dtype=np.float64)
        self.b = np.array(state["b"], dtype=np.float64)
        self.mean = np.array(state["mean"], dtype=np.float64)
        self.counts = np.array(state["counts"], dtype=np.int64)

