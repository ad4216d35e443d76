"""Statistics over RM margins on gold-labelled pairs: accuracy with CIs, headroom, oracle checks.

Two rules, used everywhere (replay, the pool report, the offline evaluation, training metrics):

* :func:`correct`: an RM, or a router's decision, is *right* on a pair when its margin
  score(A) - score(B) has the gold sign. It decides the oracle ("some RM is right") and which pairs
  routing accuracy is counted over.
* :func:`score`: what a decision *scores*: 1 right, 0 wrong, and 0.5 for a tie (margin 0) or no
  decision at all (NaN: every RM asked abstained), the expected score of a fair coin. Every accuracy
  the project reports is a mean of these scores; :func:`encode_outcomes` writes them into run files
  as one character each (``1``, ``0``, ``h``) and :func:`decode_outcomes` reads them back.

Comparisons resample *items*, not pairs (:func:`item_ids`: math and chat items give two pairs
each): :func:`cluster_bootstrap_diff` gives a paired difference with an item-level bootstrap
interval and a sign-flip p-value, :func:`holm` adjusts a family of p-values.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

Z95 = 1.959963984540054


def correct(margins: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Whether each margin has the gold sign: ``sign(margin) == gold``, so a tie (0) or NaN is wrong.

    ``margins`` is (N,) (one decision per pair) or (N, K) (one column per RM); ``gold`` is (N,) in
    {+1, -1} and applies to every column of its row. Returns bool of ``margins``' shape."""
    m = np.asarray(margins, dtype=np.float64)
    g = np.asarray(gold).reshape((-1,) + (1,) * (m.ndim - 1))
    with np.errstate(invalid="ignore"):
        return np.sign(m) == g


def score(margins: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Each margin's score against the gold sign: 1.0 right, 0.0 wrong, 0.5 for a tie (0) or NaN
    (no decision). Shapes as :func:`correct`; returns float64."""
    m = np.asarray(margins, dtype=np.float64)
    g = np.asarray(gold).reshape((-1,) + (1,) * (m.ndim - 1))
    with np.errstate(invalid="ignore"):
        s = np.sign(m) * g  # +1 right, -1 wrong, 0 tie, NaN none
    return np.where(np.isnan(s), 0.5, 0.5 * (s + 1.0))


#: the run-file character of each score (see :func:`encode_outcomes`)
OUTCOME_CHARS = {1.0: "1", 0.0: "0", 0.5: "h"}


def encode_outcomes(scores: np.ndarray) -> str:
    """Scores in {0, 0.5, 1} (from :func:`score`) as one character each: ``1``, ``0``, ``h`` (half)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    bad = ~np.isin(s, list(OUTCOME_CHARS))
    if bad.any():
        raise ValueError(f"outcomes must be 0, 0.5 or 1; got {s[bad][:5].tolist()} at {np.flatnonzero(bad)[:5].tolist()}")
    return "".join(OUTCOME_CHARS[float(v)] for v in s)


def decode_outcomes(text: str, what: str = "test_outcomes") -> np.ndarray:
    """The scores of an :func:`encode_outcomes` string; ValueError naming ``what`` on any other character."""
    lookup = {c: v for v, c in OUTCOME_CHARS.items()}
    bad = sorted(set(text) - set(lookup))
    if bad:
        raise ValueError(f"{what} may hold only '1', '0' and 'h' (a half: tie or no decision), not {bad}")
    return np.array([lookup[c] for c in text], dtype=np.float64)


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (better than the normal one near 0 and 1)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(centre - half), float(centre + half))


@dataclass
class Acc:
    acc: float
    lo: float
    hi: float
    n: int

    def fmt(self) -> str:
        if self.n == 0:
            return "-"
        return f"{100 * self.acc:.1f} [{100 * self.lo:.1f}, {100 * self.hi:.1f}]"


def accuracy(scores: np.ndarray) -> Acc:
    """Mean score (bools, or :func:`score`'s 0 / 0.5 / 1) with its Wilson interval (a half counts as
    half a success)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = int(scores.size)
    k = float(scores.sum())
    lo, hi = wilson(k, n)
    return Acc(k / n if n else float("nan"), lo, hi, n)


def group_indices(keys: Sequence[str]) -> dict[str, np.ndarray]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    return {k: np.array(v) for k, v in sorted(groups.items())}


def per_group_accuracy(right: np.ndarray, keys: Sequence[str]) -> dict[str, list[Acc]]:
    """{group: [Acc per RM]} for (N, K) right/wrong and a group key per pair."""
    return {g: [accuracy(right[idx, k]) for k in range(right.shape[1])] for g, idx in group_indices(keys).items()}


def domain_best_arms(right_offline: np.ndarray, domains_offline: Sequence[str]) -> tuple[dict[str, int], int]:
    """Per domain, the RM most often right on the offline split (ties: lowest index); plus the global best."""
    best = {d: int(np.argmax(right_offline[idx].mean(0))) for d, idx in group_indices(domains_offline).items()}
    return best, int(np.argmax(right_offline.mean(0)))


def item_ids(pairs: Sequence[Any]) -> np.ndarray:
    """(N,) per pair, the index of its item among the sorted item keys (``metadata["item"]``, else the
    pair id): pairs of one item (math and chat items give two) are one cluster for the bootstrap and
    one unit when data is split into folds."""
    keys = [str((p.metadata or {}).get("item", p.id)) for p in pairs]
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def groups_by_domain(groups: Sequence[Any], domains: Sequence[str]) -> dict[str, list[Any]]:
    """Domain -> its groups (sorted), domains sorted; a group belongs to the domain of its first
    item, so a group never straddles two domains' deals. What every split and fold of the project
    is dealt from (replay folds, a table's or a pairs file's own split, the table report's folds)."""
    first: dict[Any, str] = {}
    for g, d in zip(groups, domains):
        first.setdefault(g, d)
    return {d: sorted(g for g, dd in first.items() if dd == d) for d in sorted(set(first.values()))}


def deal_folds(by_domain: dict[str, list[Any]], n_folds: int, rng: np.random.Generator) -> dict[Any, int]:
    """Group -> fold: per domain, its groups in ``rng``'s order are dealt round-robin into ``n_folds``
    folds (so each fold gets a near-equal share of every domain)."""
    fold_of: dict[Any, int] = {}
    for gs in by_domain.values():
        for j, pos in enumerate(rng.permutation(len(gs))):
            fold_of[gs[pos]] = j % n_folds
    return fold_of


def routed_right(right: np.ndarray, arms: np.ndarray) -> np.ndarray:
    return right[np.arange(right.shape[0]), arms]


def oracle_right(right: np.ndarray) -> np.ndarray:
    return right.any(axis=1)


def shuffled_oracle(right: np.ndarray, domains: Sequence[str], rng: np.random.Generator, n_shuffles: int = 50) -> float:
    """Oracle accuracy after shuffling each RM's right/wrong record within each domain, independently.

    It keeps every RM's per-domain accuracy but destroys which items it gets right, so it shows how
    often "some RM is right" by chance alone.
    """
    groups = group_indices(domains)
    total = 0.0
    for _ in range(n_shuffles):
        shuffled = right.copy()
        for idx in groups.values():
            for k in range(right.shape[1]):
                shuffled[idx, k] = right[rng.permutation(idx), k]
        total += shuffled.any(axis=1).mean()
    return total / n_shuffles


# ---- paired comparisons over items (clusters) and the Holm correction ------------------------------

#: resamples of the cluster bootstrap and sign flips of the randomisation test
CLUSTER_RESAMPLES = 10_000
#: resamples drawn per block (bounds memory: a block holds CLUSTER_BLOCK × clusters counts)
CLUSTER_BLOCK = 500


@dataclass
class ClusterDiff:
    """A paired difference over (seed, pair) entries grouped into items: its mean ``diff``, the 95%
    percentile interval of the item bootstrap (``lo``, ``hi``), the sign-flip p-value ``p``, and the
    numbers of items (clusters) and entries it rests on."""

    diff: float
    lo: float
    hi: float
    p: float
    n_items: int
    n_entries: int


def cluster_sums(d: np.ndarray, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct item (in sorted id order): the sum of its entries' differences and their number."""
    d = np.asarray(d, dtype=np.float64).ravel()
    ids = np.asarray(items).ravel()
    if d.size != ids.size:
        raise ValueError(f"{d.size} differences but {ids.size} item ids: one id per (seed, pair) entry is needed")
    _, inverse = np.unique(ids, return_inverse=True)
    return np.bincount(inverse, weights=d), np.bincount(inverse).astype(np.float64)


def cluster_bootstrap_diff(d: np.ndarray, items: Sequence[int] | np.ndarray, n_boot: int = CLUSTER_RESAMPLES,
                           level: float = 0.95, seed: int = 0) -> ClusterDiff:
    """Mean paired difference with an item-level (cluster) bootstrap interval and a sign-flip p-value.

    ``d`` holds one score difference per (seed, pair) entry and ``items`` the id of the item each entry
    belongs to; every entry of an item, whatever its seed, moves together. With C distinct items, item c
    carrying entries summing to S_c over n_c entries, the statistic is Δ = Σ S_c / Σ n_c (the mean over
    entries). Each bootstrap replicate draws C items uniformly with replacement
    (``rng.integers(0, C)``, in blocks of ``CLUSTER_BLOCK`` replicates from ``default_rng(seed)``),
    turns the draws into counts w_c (bincount) and takes Δ* = Σ w_c S_c / Σ w_c n_c; the interval is the
    (1 − level)/2 and (1 + level)/2 quantiles of the Δ* (``inverted_cdf``: no interpolation). The
    p-value tests "no difference" by flipping the sign of each item's sum independently with
    probability 1/2 (signs drawn from the same generator after the bootstrap, in the same blocks):
    T = Σ S_c, T* = Σ ε_c S_c and p = (1 + #{|T*| ≥ |T|}) / (1 + n_boot), "≥" with a relative slack of
    1e-9 so that rounding cannot drop an equal value.
    """
    sums, sizes = cluster_sums(d, items)
    C = sums.size
    if C == 0:
        raise ValueError("no entries to compare")
    diff = float(sums.sum() / sizes.sum())
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for start in range(0, n_boot, CLUSTER_BLOCK):
        b = min(CLUSTER_BLOCK, n_boot - start)
        draws = rng.integers(0, C, size=(b, C))
        counts = np.bincount((draws + C * np.arange(b)[:, None]).ravel(), minlength=b * C).reshape(b, C)
        boots[start:start + b] = (counts @ sums) / (counts @ sizes)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [a, 1.0 - a], method="inverted_cdf")
    t = abs(float(sums.sum()))
    extreme = 0
    for start in range(0, n_boot, CLUSTER_BLOCK):
        b = min(CLUSTER_BLOCK, n_boot - start)
        signs = 2.0 * rng.integers(0, 2, size=(b, C)) - 1.0
        extreme += int(np.sum(np.abs(signs @ sums) >= t - 1e-9 * max(1.0, t)))
    return ClusterDiff(diff, float(lo), float(hi), (1 + extreme) / (1 + n_boot), C, int(sizes.sum()))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input's order. NaN entries stay NaN and do not count
    as hypotheses. With the m finite p-values sorted, p_(1) ≤ … ≤ p_(m), the adjusted value of p_(i) is
    max over j ≤ i of min(1, (m − j + 1) · p_(j)): monotone in p and capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if finite.size == 0:
        return out
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError(f"p-values must lie in [0, 1]; got {p[finite][(p[finite] < 0) | (p[finite] > 1)][:5].tolist()}")
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
