"""The leaderboard's statistics: numbers over seeds and paired comparisons, knowing nothing of run files.

* :class:`Stat` (``Stat.of(values)``): per metric, over seeds, the mean, the sample standard
  deviation and a 95% percentile bootstrap interval of the mean (:func:`bootstrap_mean_ci`: exact
  bootstrap distribution for up to 8 seeds, 20,000 seeded resamples beyond). It shows how much a
  metric moves from seed to seed, not how sure a comparison is;
* :class:`Comparison` (:func:`paired_comparison`): a row against a reference over the seeds both
  ran and their test pairs, from the per-pair outcomes (``1``/``0``/``h``) and item ids: the mean
  accuracy difference, an item-level (cluster) bootstrap interval and a sign-flip p-value
  (:func:`rmroute.harness.analysis.cluster_bootstrap_diff`); :func:`adjust_holm` adds the Holm-adjusted
  p-values across a table's rows.

docs/leaderboard.md, "Statistics", gives the maths.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from rmroute.harness.analysis import CLUSTER_RESAMPLES, cluster_bootstrap_diff, decode_outcomes, holm

LEVEL = 0.95
EXACT_BOOTSTRAP_MAX_SEEDS = 8
SEED_BOOTSTRAP_RESAMPLES = 20_000
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
class Comparison:
    """A row against one reference, paired over seeds and test pairs, items as clusters.

    ``diff``, ``lo``, ``hi`` are accuracy differences (row − reference) as fractions; ``p`` is the
    sign-flip p-value and ``p_holm`` the Holm-adjusted one (set across a table's rows by
    :func:`adjust_holm`; NaN for a row outside the family, such as the oracle)."""

    reference: str
    diff: float
    lo: float
    hi: float
    p: float
    n_seeds: int
    n_items: int
    n_entries: int
    p_holm: float = float("nan")

    def fmt(self) -> str:
        """The difference and its interval in points: ``+1.2 [−0.5, +2.9]``."""
        def pts(x: float) -> str:
            return f"{100 * x + 0.0:+.1f}"  # + 0.0: no "-0.0"

        return f"{pts(self.diff)} [{pts(self.lo)}, {pts(self.hi)}]"

    def fmt_p(self) -> str:
        """The Holm-adjusted p-value: "–" when it has none, two significant digits below 0.01, else three decimals."""
        return fmt_p(self.p_holm)


def fmt_p(p: float) -> str:
    """A p-value as a cell shows it: "–" for NaN, two significant digits below 0.01, else three decimals."""
    if not math.isfinite(p):
        return "–"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


@dataclass
class SeedPair:
    """One seed of a comparison: the row's and the reference's test outcomes (``1``/``0``/``h`` per
    test pair, same pairs in the same order) and the pairs' item ids (``extra.test_items``; None for
    files without them: then each pair is its own item, its position the id, the same across seeds)."""

    seed: int
    row: str
    reference: str
    items: Sequence[int] | None = None


def paired_comparison(seeds: Sequence[SeedPair], reference: str, n_boot: int = CLUSTER_RESAMPLES,
                      level: float = LEVEL, seed: int = BOOTSTRAP_SEED) -> Comparison:
    """The row minus the reference over every (seed, pair) entry of ``seeds``, with the item-level
    bootstrap interval and sign-flip p-value of :func:`rmroute.harness.analysis.cluster_bootstrap_diff`.
    ValueError (naming the seed) when the two outcome strings of a seed differ in length, an item list
    does not match them, or some seeds have item ids and others not."""
    if not seeds:
        raise ValueError(f"no seed on which both this row and {reference} have test outcomes")
    with_ids = {s.items is not None for s in seeds}
    if len(with_ids) > 1:
        raise ValueError("extra.test_items is on some seeds' runs only: items cannot be matched across seeds")
    diffs, ids = [], []
    for s in seeds:
        a = decode_outcomes(s.row, f"extra.test_outcomes (seed {s.seed})")
        b = decode_outcomes(s.reference, f"extra.test_outcomes of {reference} (seed {s.seed})")
        if a.size != b.size:
            raise ValueError(f"seed {s.seed}: {a.size} test pairs against {b.size} for {reference}")
        items = np.arange(a.size) if s.items is None else np.asarray(s.items)
        if items.shape != a.shape:
            raise ValueError(f"seed {s.seed}: extra.test_items has {items.size} ids for {a.size} test pairs")
        diffs.append(a - b)
        ids.append(items)
    if not sum(d.size for d in diffs):
        raise ValueError("no test pairs to compare")
    res = cluster_bootstrap_diff(np.concatenate(diffs), np.concatenate(ids), n_boot=n_boot, level=level, seed=seed)
    return Comparison(reference, res.diff, res.lo, res.hi, res.p, len(seeds), res.n_items, res.n_entries)


def adjust_holm(comparisons: Sequence[Comparison]) -> None:
    """Set ``p_holm`` of each comparison: Holm across them (one table's rows against one reference)."""
    for c, adjusted in zip(comparisons, holm([c.p for c in comparisons])):
        c.p_holm = float(adjusted)
