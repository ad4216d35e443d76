"""Statistics over RM margins on gold-labelled pairs: accuracy with CIs, headroom, oracle checks.

The one correctness rule (:func:`correct`): an RM, or a router's decision, is *right* on a pair when
its margin score(A) - score(B) has the gold sign; a zero margin (tie) or NaN (abstention) is not
right. Routing accuracy is counted over pairs where at least one RM is right.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

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


def accuracy(right: np.ndarray) -> Acc:
    right = np.asarray(right, dtype=bool)
    n = int(right.size)
    k = int(right.sum())
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


def paired_bootstrap_diff(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float, float]:
    """Mean of a - b (per-item 0/1 outcomes on the same items) and its 95% bootstrap interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    idx = rng.integers(0, d.size, size=(n, d.size))
    boots = d[idx].mean(axis=1)
    return float(d.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))
