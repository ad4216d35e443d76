"""Baseline routers both papers compare against: votes, score ensembles, the oracle, domain-best.

None of them learns from bandit feedback (``update`` is a no-op after the usual input checks).

* ``majority-vote``, ``mean-ensemble``, ``min-ensemble`` pay for every RM on every item and decide
  the pair in :meth:`combine`. No single RM decides at select time, so the *credited* arm
  (``Selection.arms``, used only for per-arm selection statistics) is a seeded uniform draw:
  credit is spread evenly over the pool instead of piling onto arm 0.
* ``oracle`` (replay only) picks an RM that agrees with the gold label, from ``items[i]["rm_correct"]``.
* ``domain-best`` picks, per item, the RM most accurate on the offline split for ``items[i]["domain"]``.

Conventions shared by every ``combine`` here: ``margins`` is (B, K), score(A) - score(B) per RM;
an RM counts as *available* for item i when ``selection.calls[i, k]`` is True and its margin is not
NaN (NaN = abstained). Margins of RMs that were not called are ignored even when present. ±inf is
rejected (reward models abstain with NaN). When no RM is available the result is NaN, the same
"no decision" a single router reports when its RM abstains.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rmroute.harness.analysis import score
from rmroute.harness.core.types import Selection
from rmroute.routers.base import BaseRouter


# ---- helpers ----------------------------------------------------------------------------------
def _all_calls(router: BaseRouter, batch: int) -> Selection:
    """Every RM called; the credited arm is a seeded uniform draw per item."""
    arms = router.rng.integers(0, router.n_arms, size=batch).astype(np.int64)
    return Selection(arms=arms, calls=np.ones((batch, router.n_arms), dtype=bool))


def _available(router: BaseRouter, selection: Selection, margins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``margins`` against ``selection``; return (margins, mask of usable entries)."""
    name = type(router).__name__
    m = np.asarray(margins, dtype=np.float64)
    calls = np.asarray(selection.calls, dtype=bool)
    if m.ndim != 2 or m.shape[1] != router.n_arms or m.shape != calls.shape:
        raise ValueError(
            f"{name}: margins must have shape (B, {router.n_arms}) matching selection.calls "
            f"{calls.shape}, got {m.shape}"
        )
    inf = np.isinf(m) & calls
    if inf.any():
        where = [tuple(int(v) for v in p) for p in np.argwhere(inf)[:5]]
        raise ValueError(
            f"{name}: margins are ±inf at (item, arm) {where}; reward models abstain with NaN, not inf"
        )
    return m, calls & ~np.isnan(m)


def _check_offline(router: BaseRouter, contexts, margins, gold) -> tuple[np.ndarray, np.ndarray]:
    """Validate the offline split; return (margins (N, K) with inf rejected, gold (N,) in {-1, 0, +1})."""
    name = type(router).__name__
    m = np.asarray(margins, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != router.n_arms:
        raise ValueError(f"{name}: fit_offline margins must have shape (N, {router.n_arms}), got {m.shape}")
    g = np.asarray(gold, dtype=np.float64)
    if g.shape != (m.shape[0],):
        raise ValueError(f"{name}: fit_offline gold must have shape ({m.shape[0]},), got {g.shape}")
    bad = ~np.isin(g, (-1.0, 0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"{name}: fit_offline gold must be +1 (A preferred), -1 (B preferred) or 0 (unlabelled); "
            f"got {g[bad][:5].tolist()} at position(s) {np.flatnonzero(bad)[:5].tolist()}"
        )
    if np.isinf(m).any():
        where = [tuple(int(v) for v in p) for p in np.argwhere(np.isinf(m))[:5]]
        raise ValueError(f"{name}: fit_offline margins are ±inf at (pair, arm) {where}; abstain with NaN")
    if contexts is not None:
        X = router._check_contexts(contexts)
        if X.shape[0] != m.shape[0]:
            raise ValueError(f"{name}: fit_offline got {X.shape[0]} contexts for {m.shape[0]} margin rows")
    return m, g.astype(np.int64)


# ---- majority vote ----------------------------------------------------------------------------
class MajorityVoteRouter(BaseRouter):
    """Every RM votes sign(margin) on the pair; the majority wins; a tied vote is a tie.

    ``combine`` returns ``votes_A - votes_B``: a nonzero integer when the vote is decided, 0 when it
    is tied (scored 0.5 by :func:`rmroute.harness.analysis.score`, the expected score of a coin,
    without drawing one; training keeps no pair from it), and NaN when no RM gave a margin. A
    margin of exactly 0 casts no vote.
    """

    greedy_draws = True  # the credited arm (selection statistics only) is drawn on test too

    def _select(self, X, items):
        return _all_calls(self, X.shape[0])

    def combine(self, selection: Selection, margins: np.ndarray) -> np.ndarray:
        m, ok = _available(self, selection, margins)
        m = np.where(ok, m, 0.0)
        diff = (m > 0).sum(axis=1).astype(np.float64) - (m < 0).sum(axis=1)
        diff[~ok.any(axis=1)] = np.nan
        return diff


# ---- standardised score ensembles -------------------------------------------------------------
class _StandardisedEnsemble(BaseRouter):
    """Per-RM z-scores z_k = (m_k - mean_k) / std_k with statistics from the offline split.

    Before :meth:`fit_offline`, mean_k = 0 and std_k = 1 (raw margins). ``fit_offline`` uses every
    non-NaN offline margin of RM k (``gold`` is not needed): mean_k = nanmean, std_k = nanstd
    (population, ddof=0). An RM with no offline margin keeps mean 0; one whose std is not > 1e-12
    (constant or absent) gets std 1, so it is centred but not rescaled.
    """

    greedy_draws = True  # the credited arm (selection statistics only) is drawn on test too

    def __init__(self, n_arms: int, dim: int, seed: int = 0) -> None:
        super().__init__(n_arms, dim, seed)
        self.mean = np.zeros(self.n_arms)
        self.std = np.ones(self.n_arms)
        self.fitted = False

    def _select(self, X, items):
        return _all_calls(self, X.shape[0])

    def fit_offline(self, contexts, margins, gold, items=None) -> None:
        m, _ = _check_offline(self, contexts, margins, gold)
        seen = ~np.isnan(m)
        n = seen.sum(axis=0)
        filled = np.where(seen, m, 0.0)
        mean = np.divide(filled.sum(axis=0), n, out=np.zeros(self.n_arms), where=n > 0)
        dev = np.where(seen, m - mean, 0.0)
        std = np.sqrt(np.divide((dev ** 2).sum(axis=0), n, out=np.zeros(self.n_arms), where=n > 0))
        self.mean = mean
        self.std = np.where(std > 1e-12, std, 1.0)
        self.fitted = True

    def standardise(self, margins: np.ndarray) -> np.ndarray:
        """(B, K) z-scores of raw margins (NaN stays NaN)."""
        return (np.asarray(margins, dtype=np.float64) - self.mean) / self.std

    def _state(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "fitted": self.fitted}

    def _load_state(self, state: dict[str, Any]) -> None:
        mean, std = np.asarray(state["mean"], dtype=np.float64), np.asarray(state["std"], dtype=np.float64)
        if mean.shape != (self.n_arms,) or std.shape != (self.n_arms,):
            raise ValueError(f"{type(self).__name__}: state mean/std must have shape ({self.n_arms},)")
        self.mean, self.std, self.fitted = mean.copy(), std.copy(), bool(state["fitted"])


class MeanEnsembleRouter(_StandardisedEnsemble):
    """Decision margin = mean over available RMs of z_k = (m_k - mean_k) / std_k."""

    def combine(self, selection: Selection, margins: np.ndarray) -> np.ndarray:
        m, ok = _available(self, selection, margins)
        z = np.where(ok, self.standardise(m), 0.0)
        n = ok.sum(axis=1)
        return np.divide(z.sum(axis=1), n, out=np.full(m.shape[0], np.nan), where=n > 0)


class MinEnsembleRouter(_StandardisedEnsemble):
    """Conservative: the least confident RM decides.

    Decision margin = z_j with j = argmin over available k of |z_k| (sign kept); on equal |z_k| the
    lowest arm index wins.
    """

    def combine(self, selection: Selection, margins: np.ndarray) -> np.ndarray:
        m, ok = _available(self, selection, margins)
        z = self.standardise(m)
        absz = np.where(ok, np.abs(z), np.inf)
        j = np.argmin(absz, axis=1)
        out = np.where(ok, z, np.nan)[np.arange(m.shape[0]), j] if m.shape[0] else np.zeros(0)
        return np.where(ok.any(axis=1), out, np.nan)


# ---- oracle -----------------------------------------------------------------------------------
class OracleRouter(BaseRouter):
    """Upper bound, replay only: an RM that agrees with the gold label, when one does.

    Needs ``items[i]["rm_correct"]``: K booleans (RM k prefers the gold response). Among the RMs
    that agree, one is drawn uniformly with the router's seeded generator (so credit is not biased
    to low indices); when none agrees, one of all K is drawn uniformly. One draw per item.

    ``without_gold`` says what happens to items that carry no ``rm_correct`` (or ``items=None``):
    ``"error"`` (default) raises ValueError, since the oracle only works in replay; ``"random"``
    treats them like items no RM gets right (a seeded uniform arm). The conformance kit builds the
    oracle with ``"random"`` because it also calls ``select(X)`` without items.
    """

    greedy_draws = True  # on test too it draws one of the RMs that agree with gold

    WITHOUT_GOLD = ("error", "random")

    def __init__(self, n_arms: int, dim: int, seed: int = 0, without_gold: str = "error") -> None:
        super().__init__(n_arms, dim, seed)
        if without_gold not in self.WITHOUT_GOLD:
            raise ValueError(
                f"oracle: without_gold must be one of {', '.join(map(repr, self.WITHOUT_GOLD))}, "
                f"got {without_gold!r}"
            )
        self.without_gold = without_gold

    def _select(self, X, items):
        B = X.shape[0]
        strict = self.without_gold == "error"
        if items is None and strict:
            raise ValueError(
                "oracle: select needs items with key 'rm_correct' (K booleans per item: which RMs "
                "agree with the gold label); the oracle only works in replay, where gold is known "
                "(or build it with without_gold='random')"
            )
        agrees = np.zeros((B, self.n_arms), dtype=bool)
        for i, item in enumerate(items if items is not None else ()):
            if not isinstance(item, Mapping) or "rm_correct" not in item:
                if not strict:
                    continue
                raise ValueError(
                    f"oracle: item {i} has no key 'rm_correct' (K booleans: which RMs agree with the "
                    "gold label); the oracle only works in replay, where gold is known "
                    "(or build it with without_gold='random')"
                )
            row = np.asarray(item["rm_correct"], dtype=object).reshape(-1)
            if row.shape != (self.n_arms,):
                raise ValueError(
                    f"oracle: item {i}: 'rm_correct' must have {self.n_arms} entries (one per RM), "
                    f"got {row.shape[0]}"
                )
            if not all(isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1))
                       for v in row):
                raise ValueError(
                    f"oracle: item {i}: 'rm_correct' must hold booleans (or 0/1), got {row.tolist()}"
                )
            agrees[i] = row.astype(bool)
        pool = np.where(agrees.any(axis=1, keepdims=True), agrees, True)
        count = pool.sum(axis=1)
        pick = np.minimum((self.rng.random(B) * count).astype(np.int64), count - 1)  # rank among pool
        arms = (np.cumsum(pool, axis=1) <= pick[:, None]).sum(axis=1).astype(np.int64)
        return Selection.single(arms, self.n_arms)


# ---- domain-best ------------------------------------------------------------------------------
class DomainBestRouter(BaseRouter):
    """The RM most accurate on the offline split for the item's domain.

    Accuracy of RM k on a set of labelled offline pairs = its mean score there
    (:func:`rmroute.harness.analysis.score`: 1 right, 0 wrong, 0.5 for a zero margin or an abstention),
    over every labelled pair (gold 0 = unlabelled pairs are left out). Ties go to the lowest
    arm index. Domains are compared as strings. A domain with fewer than ``min_pairs`` labelled pairs,
    an unseen domain, an item without ``"domain"`` and ``items=None`` all use the global best RM
    (accuracy over all labelled pairs). Before ``fit_offline`` the global best is arm 0.
    """

    def __init__(self, n_arms: int, dim: int, seed: int = 0, min_pairs: int = 1) -> None:
        super().__init__(n_arms, dim, seed)
        if isinstance(min_pairs, bool) or not isinstance(min_pairs, (int, np.integer)) or min_pairs < 1:
            raise ValueError(f"domain-best: min_pairs must be an int >= 1, got {min_pairs!r}")
        self.min_pairs = int(min_pairs)
        self.global_best = 0
        self.domain_best: dict[str, int] = {}
        self.fitted = False

    @staticmethod
    def _accuracy(m: np.ndarray, g: np.ndarray) -> np.ndarray:
        return score(m, g).mean(axis=0)

    def fit_offline(self, contexts, margins, gold, items=None) -> None:
        m, g = _check_offline(self, contexts, margins, gold)
        if items is not None and len(items) != m.shape[0]:
            raise ValueError(f"domain-best: fit_offline got {len(items)} items for {m.shape[0]} pairs")
        labelled = g != 0
        self.global_best = int(np.argmax(self._accuracy(m[labelled], g[labelled]))) if labelled.any() else 0
        self.domain_best = {}
        if items is not None:
            domains = np.array([str(it["domain"]) if "domain" in it else "" for it in items], dtype=object)
            has = np.array(["domain" in it for it in items], dtype=bool)
            for d in sorted(set(domains[has & labelled].tolist())):
                rows = has & labelled & (domains == d)
                if rows.sum() >= self.min_pairs:
                    self.domain_best[d] = int(np.argmax(self._accuracy(m[rows], g[rows])))
        self.fitted = True

    def _select(self, X, items):
        arms = np.full(X.shape[0], self.global_best, dtype=np.int64)
        if items is not None:
            for i, item in enumerate(items):
                if "domain" in item:
                    arms[i] = self.domain_best.get(str(item["domain"]), self.global_best)
        return Selection.single(arms, self.n_arms)

    def _state(self) -> dict[str, Any]:
        return {
            "global_best": self.global_best,
            "domains": list(self.domain_best),
            "domain_arms": list(self.domain_best.values()),
            "fitted": self.fitted,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        arms = [int(a) for a in state["domain_arms"]]
        if not all(0 <= a < self.n_arms for a in arms + [int(state["global_best"])]):
            raise ValueError(f"domain-best: state holds arms outside [0, {self.n_arms})")
        self.global_best = int(state["global_best"])
        self.domain_best = dict(zip((str(d) for d in state["domains"]), arms))
        self.fitted = bool(state["fitted"])
