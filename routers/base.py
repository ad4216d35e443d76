"""A base class that does the input checking, seeding and state plumbing every router needs.

Subclasses implement ``_select(X, items) -> Selection`` and, when they learn, ``_update`` and
``_state`` / ``_load_state``; a router that explores also overrides ``select_greedy``. Inputs are
validated here once, so every router rejects bad input with the same clear messages.
docs/plugins.md, "The router protocol", says when the host calls what.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np

from rmroute.harness.core.types import Selection, takes_items


def real(owner: str, name: str, value: Any, *, low: float | None = None, low_open: bool = False,
         high: float | None = None) -> float:
    """``value`` as a finite float in the given range, else a ValueError naming ``owner``, ``name``
    and what is allowed. Booleans are refused (``True`` is not 1.0); numeric strings are read
    (YAML reads ``1e-3`` as text)."""
    allowed = "a finite number" + (f" {'>' if low_open else '>='} {low:g}" if low is not None else "") + (
        f" and <= {high:g}" if high is not None else "")
    try:
        v = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        v = float("nan")
    ok = np.isfinite(v) and (low is None or (v > low if low_open else v >= low)) and (high is None or v <= high)
    if not ok:
        raise ValueError(f"{owner}: {name} must be {allowed}, got {value!r}")
    return v


class BaseRouter:
    #: True for routers that learn from feedback; the registry's ``learns`` metadata, when given,
    #: takes precedence (:func:`rmroute.harness.routing.router_spec` reads both).
    learns: bool = False
    #: True for routers whose frozen test decision is random by design (``random``; the oracle's
    #: draw among the RMs that agree with gold; the ensembles' credited-arm draw). The conformance
    #: kit then checks only that ``select_greedy`` is repeatable from one state; otherwise it fails
    #: a ``select_greedy`` that draws from any generator or changes the router's state.
    greedy_draws: bool = False

    def __init__(self, n_arms: int, dim: int, seed: int = 0) -> None:
        if not isinstance(n_arms, (int, np.integer)) or n_arms < 1:
            raise ValueError(f"{type(self).__name__}: n_arms must be a positive int, got {n_arms!r}")
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"{type(self).__name__}: dim must be a positive int, got {dim!r}")
        self.n_arms, self.dim, self.seed = int(n_arms), int(dim), int(seed)
        self.rng = np.random.default_rng(seed)

    # ---- input checks -------------------------------------------------------------------
    def _check_contexts(self, contexts: np.ndarray) -> np.ndarray:
        X = np.asarray(contexts, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}: contexts must have shape (B, {self.dim}), got {X.shape}"
            )
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{type(self).__name__}: contexts contain NaN/inf at row(s) {np.flatnonzero(bad)[:5].tolist()}"
            )
        return X

    def _check_update(self, contexts: np.ndarray, arms: np.ndarray, feedback: np.ndarray):
        X = self._check_contexts(contexts)
        a = np.asarray(arms)
        r = np.asarray(feedback, dtype=np.float64)
        if a.shape != (X.shape[0],) or r.shape != (X.shape[0],):
            raise ValueError(
                f"{type(self).__name__}: update needs arms and feedback of shape ({X.shape[0]},), "
                f"got {a.shape} and {r.shape}"
            )
        if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= self.n_arms):
            raise ValueError(
                f"{type(self).__name__}: arms must be integers in [0, {self.n_arms}), got {a[:8].tolist()}"
            )
        bad = ~np.isfinite(r)
        if bad.any():
            raise ValueError(
                f"{type(self).__name__}: feedback is NaN/inf at position(s) {np.flatnonzero(bad)[:5].tolist()}"
            )
        return X, a.astype(np.int64), r

    # ---- public API -----------------------------------------------------------------------
    def select(self, contexts: np.ndarray, items: Sequence[Mapping[str, Any]] | None = None) -> Selection:
        X = self._check_contexts(contexts)
        if items is not None and len(items) != X.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: got {len(items)} items for {X.shape[0]} contexts"
            )
        return self._select(X, items)

    def fit_offline(
        self,
        contexts: np.ndarray,
        margins: np.ndarray,
        gold: np.ndarray,
        items: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Learn from the offline split, where every RM's margin is known.

        ``margins`` is (N, K): score(A) - score(B) per RM (NaN = abstained); ``gold`` is (N,) with
        +1 when A is gold-preferred, -1 when B is. Routers without an offline stage ignore it.
        """

    def select_greedy(self, contexts: np.ndarray, items: Sequence[Mapping[str, Any]] | None = None) -> Selection:
        """The frozen decision used on the test split (replay routes it with ``greedy=True``).

        This default is :meth:`select` itself, which is right for a router whose ``select`` draws
        nothing. A router that explores overrides it with an exploit-only decision that draws
        nothing from ``self.rng`` and changes no state (``bayesian``: the posterior mean;
        ``laser``: α = 0); the conformance kit fails one that draws, unless the class declares
        ``greedy_draws = True`` (a decision random by design, as ``random``'s)."""
        return self.select(contexts, items)

    def combine(self, selection: Selection, margins: np.ndarray) -> np.ndarray:
        """Default decision: the credited arm's margin."""
        m = np.asarray(margins, dtype=np.float64)
        return m[np.arange(m.shape[0]), selection.arms]

    def update(self, contexts: np.ndarray, arms: np.ndarray, feedback: np.ndarray,
               items: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Learn from feedback for rows of past selections (see ``Router.update``): ``items`` are
        those rows' items, passed on to ``_update`` when it declares an ``items`` parameter."""
        X, a, r = self._check_update(contexts, arms, feedback)
        if items is not None and len(items) != X.shape[0]:
            raise ValueError(f"{type(self).__name__}: update got {len(items)} items for {X.shape[0]} rows")
        if X.shape[0]:
            if takes_items(self._update):
                self._update(X, a, r, items=items)
            else:
                self._update(X, a, r)

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(
            {"n_arms": self.n_arms, "dim": self.dim, "rng": self.rng.bit_generator.state, **self._state()}
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("n_arms") != self.n_arms or state.get("dim") != self.dim:
            raise ValueError(
                f"{type(self).__name__}: state is for n_arms={state.get('n_arms')}, dim={state.get('dim')}; "
                f"this router has n_arms={self.n_arms}, dim={self.dim}"
            )
        state = copy.deepcopy(dict(state))
        self.rng.bit_generator.state = state.pop("rng")
        self._load_state(state)

    # ---- for subclasses -------------------------------------------------------------------
    def _select(self, X: np.ndarray, items: Sequence[Mapping[str, Any]] | None) -> Selection:
        raise NotImplementedError

    def _update(self, X: np.ndarray, arms: np.ndarray, feedback: np.ndarray) -> None:
        """Non-learning routers ignore feedback. A subclass may declare
        ``_update(self, X, arms, feedback, items=None)`` to receive the rows' items too."""

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        """Nothing to restore beyond the generator."""
