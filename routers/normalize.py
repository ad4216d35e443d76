"""The built-in feedback normalizers: raw per-item feedback (B,) -> the router's feedback scale (B,).

Every normalizer is called as ``norm(raw, arms)`` with ``raw`` a (B,) float array and ``arms`` the
(B,) integer arms the feedback belongs to. Called directly, each one rejects NaN/inf feedback with
a ValueError naming the position(s). The host's :class:`rmroute.harness.routing.NormalizerChain`
applies several in order and can instead *skip* bad positions (``on_bad_feedback="skip"``).
``routers/plugin.py`` registers them.

Normalizers with history (``quantile``, ``ema-zscore``) keep it in plain lists/arrays that
``state_dict()`` copies out and ``load_state_dict()`` copies in.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

from rmroute.harness.routing import check_feedback, positions


class BaseNormalizer:
    """Input checks (:func:`rmroute.harness.routing.check_feedback`) and state plumbing; subclasses
    implement ``_apply(raw, arms)`` on finite input."""

    #: registry name, used in error messages and to tag the state
    name = "normalizer"

    def __call__(self, raw: np.ndarray, arms: np.ndarray) -> np.ndarray:
        r, a, bad = check_feedback(self.name, raw, arms)
        if bad.any():
            raise ValueError(
                f"{self.name}: feedback is NaN/inf at position(s) {positions(bad)}; "
                "set on_bad_feedback: skip in the config to drop such items"
            )
        if r.size == 0:
            return np.zeros(0)
        return self._apply(r, a)

    def _apply(self, raw: np.ndarray, arms: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({"type": self.name, **self._state()})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("type") != self.name:
            raise ValueError(f"{self.name}: state is for normalizer {state.get('type')!r}, not {self.name!r}")
        state = copy.deepcopy(dict(state))
        state.pop("type")
        self._load_state(state)

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        """Stateless: nothing to restore."""


class IdentityNormalizer(BaseNormalizer):
    """r̃ = r (after the NaN/inf check)."""

    name = "identity"

    def _apply(self, raw, arms):
        return raw.copy()


class AffineNormalizer(BaseNormalizer):
    """r̃ = scale·r + shift: puts feedback on another scale, e.g. replay's 0/1 agreement as LASeR's
    reward sign (r − 1 = −(0/1 loss), never positive). Keeps no history."""

    name = "affine"

    def __init__(self, scale: float = 1.0, shift: float = 0.0) -> None:
        for pname, v in (("scale", scale), ("shift", shift)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise ValueError(f"affine: {pname} must be a finite number, got {v!r}")
        self.scale, self.shift = float(scale), float(shift)

    def _apply(self, raw, arms):
        return self.scale * raw + self.shift


class BatchBaselineNormalizer(BaseNormalizer):
    """r̃_j = mean_batch(r) - r_j: for per-pair losses (lower is better), as BayesianRouter does.

    A batch of one gives 0. Keeps no history.
    """

    name = "batch-baseline"

    def _apply(self, raw, arms):
        return raw.mean() - raw


class QuantileNormalizer(BaseNormalizer):
    """r̃ = clip((r - q_lo) / (q_hi - q_lo), 0, 1) over the reward history (LASeR; BayesianRouter).

    History rule: the current batch is appended to the history first, then q_lo / q_hi = the
    ``low`` / ``high`` percentiles (numpy's default linear interpolation) of the whole history,
    current batch included, and the whole batch is rescaled with those two numbers. With B = 1 this
    is exactly what both reference implementations do per reward; a batch counts as observed at
    once, so outputs do not depend on the order inside a batch.

    ``unit="batch"`` (LASeR): the batch is one observation, its mean; that one value joins the
    history, is rescaled, and every item of the batch gets it.
    ``max_history`` keeps only the most recent values (the current batch included). While the
    history holds fewer than ``warmup`` values the output is 0.5 (``during_warmup="half"``) or the
    raw value itself (``"raw"``: LASeR passes the raw reward until it has two values). When
    q_hi == q_lo the output is 1 above, 0 below and 0.5 at that value.
    """

    name = "quantile"

    def __init__(self, low: float = 20.0, high: float = 80.0, warmup: int = 20,
                 max_history: int | None = None, unit: str = "item", during_warmup: str = "half") -> None:
        for pname, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not 0 <= v <= 100:
                raise ValueError(f"quantile: {pname} must be a percentile in [0, 100], got {v!r}")
        if not low < high:
            raise ValueError(f"quantile: low must be < high, got low={low!r}, high={high!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
            raise ValueError(f"quantile: warmup must be an int >= 0, got {warmup!r}")
        if max_history is not None:
            if isinstance(max_history, bool) or not isinstance(max_history, (int, np.integer)) or max_history < 1:
                raise ValueError(f"quantile: max_history must be None or an int >= 1, got {max_history!r}")
            if max_history < warmup:
                raise ValueError(
                    f"quantile: max_history ({max_history}) must be >= warmup ({warmup}), "
                    "or the warm-up would never end"
                )
        if unit not in ("item", "batch"):
            raise ValueError(f"quantile: unit must be 'item' or 'batch', got {unit!r}")
        if during_warmup not in ("half", "raw"):
            raise ValueError(f"quantile: during_warmup must be 'half' or 'raw', got {during_warmup!r}")
        self.low, self.high = float(low), float(high)
        self.warmup = int(warmup)
        self.max_history = None if max_history is None else int(max_history)
        self.unit, self.during_warmup = unit, during_warmup
        self.history = np.zeros(0)

    def _apply(self, raw, arms):
        values = raw.mean(keepdims=True) if self.unit == "batch" else raw
        hist = np.concatenate([self.history, values])
        if self.max_history is not None:
            hist = hist[-self.max_history:]
        self.history = hist
        if hist.size < self.warmup:
            out = values.copy() if self.during_warmup == "raw" else np.full(values.shape, 0.5)
        else:
            q_lo, q_hi = np.percentile(hist, [self.low, self.high])
            if q_hi > q_lo:
                out = np.clip((values - q_lo) / (q_hi - q_lo), 0.0, 1.0)
            else:
                out = np.where(values > q_lo, 1.0, np.where(values < q_lo, 0.0, 0.5))
        return np.broadcast_to(out, raw.shape).copy()

    def _state(self):
        return {"history": self.history.tolist()}

    def _load_state(self, state):
        self.history = np.asarray(state["history"], dtype=np.float64).reshape(-1).copy()


class EmaZScoreNormalizer(BaseNormalizer):
    """Per-arm z-score against an exponential moving mean and variance (BayesianRouter's code).

    Per arm k, with statistics taken *before* the current observation r:
        var_k = max(s_k - m_k², 0),   r̃ = clip((r - m_k) / sqrt(var_k + eps), -clip, clip)
    then  m_k ← (1-α)·m_k + α·r,   s_k ← (1-α)·s_k + α·r²  (the first observation sets m_k = r,
    s_k = r²). The output is 0 while arm k has fewer than ``min_count`` earlier observations.
    Items are processed in batch order, so a batch gives the same result as feeding its items one
    at a time.
    """

    name = "ema-zscore"

    def __init__(self, alpha: float = 0.01, clip: float = 2.0, min_count: int = 5, eps: float = 1e-6) -> None:
        def num(v):
            return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))
        if not num(alpha) or not 0 < alpha <= 1:
            raise ValueError(f"ema-zscore: alpha must be in (0, 1], got {alpha!r}")
        if not num(clip) or not clip > 0:
            raise ValueError(f"ema-zscore: clip must be > 0 (inf = no clipping), got {clip!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise ValueError(f"ema-zscore: min_count must be an int >= 1, got {min_count!r}")
        if not num(eps) or not 0 < eps < np.inf:
            raise ValueError(f"ema-zscore: eps must be a finite number > 0, got {eps!r}")
        self.alpha, self.clip, self.min_count, self.eps = float(alpha), float(clip), int(min_count), float(eps)
        self.mean = np.zeros(0)
        self.sq = np.zeros(0)
        self.count = np.zeros(0, dtype=np.int64)

    def _grow(self, n: int) -> None:
        if n > self.count.size:
            extra = n - self.count.size
            self.mean = np.concatenate([self.mean, np.zeros(extra)])
            self.sq = np.concatenate([self.sq, np.zeros(extra)])
            self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])

    def _apply(self, raw, arms):
        self._grow(int(arms.max()) + 1)
        out = np.zeros(raw.shape)
        a_, lo, hi = self.alpha, -self.clip, self.clip
        mean, sq, count = self.mean, self.sq, self.count
        for i in range(raw.size):
            k, r = arms[i], raw[i]
            if count[k] == 0:
                mean[k], sq[k] = r, r * r
            else:
                if count[k] >= self.min_count:
                    var = max(sq[k] - mean[k] * mean[k], 0.0)
                    out[i] = min(max((r - mean[k]) / np.sqrt(var + self.eps), lo), hi)
                mean[k] = (1.0 - a_) * mean[k] + a_ * r
                sq[k] = (1.0 - a_) * sq[k] + a_ * r * r
            count[k] += 1
        return out

    def _state(self):
        return {"mean": self.mean.tolist(), "sq": self.sq.tolist(), "count": self.count.tolist()}

    def _load_state(self, state):
        mean = np.asarray(state["mean"], dtype=np.float64).reshape(-1)
        sq = np.asarray(state["sq"], dtype=np.float64).reshape(-1)
        count = np.asarray(state["count"], dtype=np.int64).reshape(-1)
        if not mean.shape == sq.shape == count.shape:
            raise ValueError("ema-zscore: state mean, sq and count must have the same length")
        self.mean, self.sq, self.count = mean.copy(), sq.copy(), count.copy()
