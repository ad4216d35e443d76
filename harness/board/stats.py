"""The leaderboard's statistics: numbers over seeds and paired tests, knowing nothing of run files.

* :class:`Stat` (``Stat.of(values)``): per metric, over seeds, the mean, the sample standard
  deviation and a 95% percentile bootstrap interval of the mean (:func:`bootstrap_mean_ci`: exact
  bootstrap distribution for up to 8 seeds, 20,000 seeded resamples beyond);
* :class:`Paired` (:func:`paired_test`): a row against its baseline, over seeds *and* test items: the
  per-item test outcomes (``extra.test_outcomes``) of the seeds both routers ran; a two-way bootstrap
  (seeds and items resampled with replacement, items as clusters across seeds) gives the 95% interval
  of the accuracy difference and a two-sided p-value.

docs/leaderboard.md, "Statistics", gives the maths.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

LEVEL = 0.95
EXACT_BOOTSTRAP_MAX_SEEDS = 8
SEED_BOOTSTRAP_RESAMPLES = 20_000
PAIRED_BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def finite_values(values: Iterable[Any]) -> list[float]:
    """The finite numbers among ``values``, as floats (booleans, non-numbers, NaN and ±inf left out)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out.append(float(v))
    return out


def _quantile_inverted_cdf(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` of the total."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    k = int(np.searchsorted(cum, q * cum[-1] - 1e-12 * cum[-1], side="left"))
    return float(values[order][min(k, len(order) - 1)])


def bootstrap_mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds.

    Up to ``EXACT_BOOTSTRAP_MAX_SEEDS`` values the bootstrap distribution is enumerated exactly
    (every multiset of n draws with its multinomial weight), so the interval needs no random numbers;
    beyond, ``SEED_BOOTSTRAP_RESAMPLES`` resamples from a generator seeded with ``BOOTSTRAP_SEED``.
    The bounds are the (1-level)/2 and (1+level)/2 quantiles of that distribution, each the smallest
    resampled mean whose cumulative probability reaches the level (no interpolation). With fewer than
    two values there is no interval: (nan, nan).
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2:
        return (float("nan"), float("nan"))
    a = (1.0 - level) / 2.0
    if n <= EXACT_BOOTSTRAP_MAX_SEEDS:
        means, weights = [], []
        fact = math.factorial(n)
        for combo in itertools.combinations_with_replacement(range(n), n):
            counts = np.bincount(combo, minlength=n)
            means.append(float(np.dot(counts, x)) / n)
            weights.append(fact // math.prod(math.factorial(int(c)) for c in counts))
        m, w = np.asarray(means), np.asarray(weights, dtype=np.float64)
        return (_quantile_inverted_cdf(m, w, a), _quantile_inverted_cdf(m, w, 1.0 - a))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boots = x[rng.integers(0, n, size=(SEED_BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    lo, hi = np.quantile(boots, [a, 1.0 - a], method="inverted_cdf")
    return (float(lo), float(hi))


@dataclass
class Stat:
    """A metric over seeds: mean, sample std (nan for one value), bootstrap CI (nan below two)."""

    mean: float
    std: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: Iterable[Any]) -> "Stat":
        """The Stat of the finite numbers among ``values`` (anything else is left out)."""
        xs = finite_values(values)
        if not xs:
            return cls(float("nan"), float("nan"), float("nan"), float("nan"), 0)
        std = statistics.stdev(xs) if len(xs) > 1 else float("nan")
        lo, hi = bootstrap_mean_ci(xs)
        return cls(statistics.fmean(xs), std, lo, hi, len(xs))

    def fmt(self) -> str:
        """``mean ± std`` as a table cell shows it: "–" without values, the mean alone for one."""
        if self.n == 0:
            return "–"
        if self.n == 1:
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} ± {self.std:.2g}"

    def fmt_ci(self) -> str:
        """The bootstrap interval as ``[lo, hi]``; "–" below two values."""
        if self.n < 2:
            return "–"
        return f"[{self.lo:.4g}, {self.hi:.4g}]"


@dataclass
class Paired:
    """Row minus baseline, paired over the seeds both ran and the test items."""

    baseline: str
    diff: float
    lo: float
    hi: float
    p: float
    n_seeds: int
    n_items: int

    def fmt(self) -> str:
        """The signed difference with its interval: ``+0.0123 [+0.0040, +0.0210]``."""
        return f"{self.diff:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}]"

    def fmt_p(self) -> str:
        """The p-value: two significant digits below 0.01, else three decimals."""
        return f"{self.p:.2g}" if self.p < 0.01 else f"{self.p:.3f}"


def outcomes_matrix(outcomes: Sequence[str]) -> np.ndarray:
    """(seeds, items) 0/1 from the runs' ``test_outcomes`` strings ('1' = right)."""
    if not outcomes:
        return np.zeros((0, 0))
    n = len(outcomes[0])
    if any(len(s) != n for s in outcomes):
        raise ValueError("test_outcomes strings of different lengths cannot be paired")
    bad = {c for s in outcomes for c in s} - {"0", "1"}
    if bad:
        raise ValueError(f"test_outcomes may hold only '0' and '1', not {sorted(bad)}")
    return np.array([[c == "1" for c in s] for s in outcomes], dtype=np.float64).reshape(len(outcomes), n)


def paired_test(
    a: Sequence[str], b: Sequence[str], n_boot: int = PAIRED_BOOTSTRAP_RESAMPLES,
    level: float = LEVEL, seed: int = BOOTSTRAP_SEED, baseline: str = "",
) -> Paired:
    """Paired two-way bootstrap of the accuracy difference a − b.

    ``a[s]`` and ``b[s]`` are the per-item outcome strings of the two routers on the same seed s
    (same test items, same order). The statistic is the mean of the (seeds × items) matrix of
    differences, i.e. the mean over seeds of the per-seed accuracy difference. Each of ``n_boot``
    replicates resamples seeds (rows) and items (columns, one draw shared by every seed, so an item
    stays paired with itself across seeds) with replacement. The interval is the percentile interval;
    the two-sided p-value is ``min(1, 2·min(P*(Δ* ≤ 0), P*(Δ* ≥ 0)))`` with the +1 correction
    ``(count + 1) / (n_boot + 1)``, i.e. the smallest level at which the bootstrap interval excludes 0.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired test needs outcome strings for the same seeds ({len(a)} vs {len(b)})")
    A, B = outcomes_matrix(list(a)), outcomes_matrix(list(b))
    if A.shape != B.shape:
        raise ValueError(f"paired test: {A.shape[1]} vs {B.shape[1]} test items")
    D = A - B
    S, N = D.shape
    if N == 0:
        raise ValueError("paired test: no test items")
    # Items with the same column of differences across seeds are exchangeable: resampling N items
    # with replacement is a multinomial draw over the distinct columns (at most 3**S of them), with
    # probabilities their shares. Same distribution as drawing item indices, far less work.
    patterns, counts = np.unique(D.T, axis=0, return_counts=True)  # (P, S), (P,)
    rng = np.random.default_rng(seed)
    seed_w = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot) / S  # (B, S) resampled seed weights
    item_w = rng.multinomial(N, counts / N, size=n_boot)  # (B, P) resampled item counts per column
    boots = np.einsum("bs,ps,bp->b", seed_w, patterns, item_w) / N
    a_ = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [a_, 1.0 - a_], method="inverted_cdf")
    le = (int(np.sum(boots <= 0)) + 1) / (n_boot + 1)
    ge = (int(np.sum(boots >= 0)) + 1) / (n_boot + 1)
    return Paired(baseline, float(D.mean()), float(lo), float(hi), min(1.0, 2.0 * min(le, ge)), S, N)
