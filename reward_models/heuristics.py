"""Heuristic reward models: cheap, deterministic, and biased the way real RMs are known to be."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def check_batch(name: str, prompts: Sequence[str], responses: Sequence[str]) -> None:
    """Reject mismatched or non-string batches with a message naming the RM and the item."""
    if len(prompts) != len(responses):
        raise ValueError(f"{name}: {len(prompts)} prompts but {len(responses)} responses")
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if not isinstance(p, str) or not isinstance(r, str):
            raise ValueError(
                f"{name}: item {i}: prompt and response must be strings, got "
                f"{type(p).__name__} and {type(r).__name__}"
            )


class LengthRM:
    """Score = number of whitespace-separated words in the response (optionally log-scaled)."""

    def __init__(self, log: bool = False, cost: float = 0.0) -> None:
        self.name = "length"
        self.log = bool(log)
        self.cost = float(cost)

    def identity(self) -> str:
        return f"length(log={self.log})"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        check_batch(self.name, prompts, responses)
        n = np.array([len(r.split()) for r in responses], dtype=np.float64)
        return np.log1p(n) if self.log else n
