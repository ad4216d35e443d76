"""Heuristic reward models: cheap, deterministic, and biased the way real RMs are known to be."""

from __future__ import annotations

import re
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


_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those there here what which who whom whose when where why how do does did can could should would "
    "will shall may might must i you he she we they me him her us them my your our their not no yes so than "
    "then too very just about into over under up down out".split()
)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


class LexicalOverlapRM:
    """Share of the prompt's content words that the response repeats (the relevance bias of real RMs).

    score = |W(prompt) ∩ W(response)| / |W(prompt)|, W = lower-cased alphanumeric words minus stopwords;
    NaN (abstain) when the prompt has no content words.
    """

    def __init__(self, cost: float = 0.0) -> None:
        self.name = "lexical-overlap"
        self.cost = float(cost)

    def identity(self) -> str:
        return "lexical-overlap:v1"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        check_batch(self.name, prompts, responses)
        out = np.full(len(prompts), np.nan)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            wp = content_words(p)
            if wp:
                out[i] = len(wp & content_words(r)) / len(wp)
        return out
