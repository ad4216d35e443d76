"""A rule-based verifier for math word problems (GSM8K style).

It extracts the final number of a response and compares it with the item's reference answer:
score 1.0 when they match, 0.0 when they do not, NaN (abstain) when the item has no usable reference
(missing, NaN/inf, not a number nor a string holding one) or the response has no number. References come from the items (``metadata["reference"]``) through
:meth:`prepare`, or from the ``references`` mapping (prompt -> answer) given at construction.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from rmroute.reward_models.heuristics import check_batch

_NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_MARKERS = (
    re.compile(r"####\s*(.+)"),
    re.compile(r"\\boxed\{([^}]*)\}"),
    re.compile(r"(?:final answer|the answer is|answer:)\s*(.+)", re.IGNORECASE),
)


def parse_number(text: str) -> float | None:
    """The first number in ``text`` ("1,234", "$5", "-2.5", ".5"), or None."""
    m = _NUMBER.search(text)
    if not m:
        return None
    raw = m.group(0).replace("$", "").replace(",", "").replace(" ", "")
    try:
        return float(raw)
    except ValueError:
        return None


def final_number(response: str) -> float | None:
    """The answer a response commits to: after '####', in \\boxed{}, after 'the answer is', else its last number."""
    for marker in _MARKERS:
        hits = marker.findall(response)
        if hits:
            value = parse_number(hits[-1])
            if value is not None:
                return value
    numbers = _NUMBER.findall(response)
    return parse_number(numbers[-1]) if numbers else None


def reference_value(answer: Any) -> float | None:
    """A reference answer as a finite number: an int or float, or the final number of a string;
    None when it is not usable (NaN, inf, a boolean, another type, a string without a number)."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        value: float | None = float(answer)
    elif isinstance(answer, str):
        value = final_number(answer)
    else:
        return None
    return value if value is not None and math.isfinite(value) else None


class MathVerifierRM:
    """Exact-answer verifier: 1.0 right, 0.0 wrong, NaN without a reference or a number."""

    def __init__(self, references: Mapping[str, Any] | None = None, rel_tol: float = 1e-6, cost: float = 0.0) -> None:
        self.name = "verifier-math"
        self.cost = float(cost)
        self.rel_tol = float(rel_tol)
        self.references: dict[str, float] = {}
        for prompt, answer in (references or {}).items():
            value = reference_value(answer)
            if value is None:
                raise ValueError(f"verifier-math: reference answer {answer!r} for prompt {prompt[:60]!r} has no number "
                                 "(expected a finite number or a string holding one)")
            self.references[prompt] = value

    def prepare(self, items: Sequence[Any]) -> None:
        """Take reference answers from items (PreferencePair or dicts) carrying ``metadata['reference']``.

        An item whose reference is missing or unusable (NaN, inf, a boolean, a string without a
        number, a list...) has none: the verifier abstains on its prompt (NaN), never scores 0."""
        for item in items:
            meta = item.metadata if hasattr(item, "metadata") else item.get("metadata", {})
            prompt = item.prompt if hasattr(item, "prompt") else item["prompt"]
            if meta and meta.get("reference") is not None:
                value = reference_value(meta["reference"])
                if value is None:
                    self.references.pop(prompt, None)
                else:
                    self.references[prompt] = value

    def identity(self) -> str:
        return f"verifier-math:v1:tol{self.rel_tol}"

    def key_extra(self, prompt: str) -> str:
        """The verdict depends on the prompt's reference too, so the score cache keys on it."""
        ref = self.references.get(prompt)
        return "" if ref is None else repr(ref)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        check_batch(self.name, prompts, responses)
        out = np.full(len(prompts), np.nan)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            ref = self.references.get(p)
            got = final_number(r) if ref is not None else None
            if got is not None:
                out[i] = float(math.isclose(got, ref, rel_tol=self.rel_tol, abs_tol=self.rel_tol))
        return out
