"""Core types and protocols shared by the host and every plugin.

Everything is batched and numpy-first: a batch of B items is a (B, d) float64 context matrix, a
(B,) integer arm vector, a (B,) float feedback vector. Randomness always comes from a seeded
``numpy.random.Generator`` owned by the object, never from global state.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

Label = Literal["a", "b"]


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with two candidate responses and, when known, which one is gold-preferred."""

    id: str
    domain: str
    prompt: str
    response_a: str
    response_b: str
    label: Label | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"PreferencePair.id must be a non-empty string, got {self.id!r}")
        for name in ("domain", "prompt", "response_a", "response_b"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(
                    f"PreferencePair {self.id!r}: field {name!r} must be a string, "
                    f"got {type(getattr(self, name)).__name__}"
                )
        if self.label not in ("a", "b", None):
            raise ValueError(
                f"PreferencePair {self.id!r}: label must be 'a', 'b' or None, got {self.label!r}"
            )

    @property
    def gold_sign(self) -> int:
        """+1 when response A is preferred, -1 when B is, 0 when unlabelled."""
        return {"a": 1, "b": -1, None: 0}[self.label]


@dataclass
class Selection:
    """A router's decision for a batch of B items over K arms.

    ``arms[i]`` is the arm credited for item i (the one whose feedback the router learns from);
    ``calls[i, k]`` is True for every RM that item i pays for. ``calls[i, arms[i]]`` is always True.
    """

    arms: np.ndarray  # (B,) int64
    calls: np.ndarray  # (B, K) bool
    info: dict[str, np.ndarray] = field(default_factory=dict)  # optional per-item diagnostics

    @classmethod
    def single(cls, arms: np.ndarray, n_arms: int) -> "Selection":
        """One RM call per item: the credited arm."""
        arms = np.asarray(arms, dtype=np.int64)
        calls = np.zeros((arms.shape[0], n_arms), dtype=bool)
        calls[np.arange(arms.shape[0]), arms] = True
        return cls(arms=arms, calls=calls)

    @property
    def n_calls(self) -> np.ndarray:
        """(B,) number of RM calls per item."""
        return self.calls.sum(axis=1)


@runtime_checkable
class RewardModel(Protocol):
    """Scores responses. ``score`` returns a (B,) float array; NaN means the RM abstains."""

    name: str
    cost: float  # relative cost of one call, for the leaderboard's cost axis

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class Router(Protocol):
    """Chooses which RM(s) judge each item and learns from bandit feedback.

    ``items`` carries per-item metadata (``domain``; in replay the oracle's ``rm_correct`` for
    ``replay_only`` routers; in training ``prompt_id``) for routers that use it; routers that do not
    simply ignore it. docs/plugins.md, "The router protocol", says when the host calls each method.
    """

    n_arms: int
    dim: int

    def select(
        self, contexts: np.ndarray, items: Sequence[Mapping[str, Any]] | None = None
    ) -> Selection:
        """The learning-time decision for a batch (may explore, drawing from the router's seeded
        generator). Every row of an :meth:`update` is a row of a past ``select`` batch."""
        ...

    def select_greedy(
        self, contexts: np.ndarray, items: Sequence[Mapping[str, Any]] | None = None
    ) -> Selection:
        """The frozen decision replay uses on the test split (every "(test)" column of the board).
        A router that explores returns its exploit-only choice, drawing nothing from any generator
        and changing none of its state; ``BaseRouter``'s default is ``select``, which is right only
        for routers that draw nothing in ``select`` (or declare ``greedy_draws = True``)."""
        ...

    def fit_offline(
        self,
        contexts: np.ndarray,
        margins: np.ndarray,
        gold: np.ndarray,
        items: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Learn from the offline split: (N, K) per-RM margins (NaN = abstained), gold (N,) in {+1, -1}."""
        ...

    def combine(self, selection: Selection, margins: np.ndarray) -> np.ndarray:
        """Decide each pair from the (B, K) margins (NaN where not called) it paid for; (B,) margin."""
        ...

    def update(self, contexts: np.ndarray, arms: np.ndarray, feedback: np.ndarray) -> None:
        """Learn from (n,) normalized, finite feedback for the (n,) credited ``arms``.

        Each row is one row of a past :meth:`select` batch: ``contexts[j]`` is that row's context
        again. Rows come in the order they were selected (several batches in selection order where
        feedback arrives late, as in RoutedReward); a row appears at most once; rows the host has no
        feedback for are left out (see docs/plugins.md). An ``update`` that declares a parameter
        named ``items`` (``update(contexts, arms, feedback, items=None)``) is also given the rows'
        items, the same mappings ``select`` got, or None where ``select`` got None
        (:func:`update_takes_items`); the host passes it by keyword."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@functools.lru_cache(maxsize=None)
def _declares_items(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a readable signature
        return False
    p = params.get("items")
    return p is not None and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def takes_items(method: Callable[..., Any]) -> bool:
    """Whether ``method`` (a router's ``update``, or a ``BaseRouter`` subclass's ``_update``)
    declares a parameter named ``items``, so the caller may pass ``items=...``. The signature is
    read once per function (per router class for ordinary methods; a ``**kwargs`` catch-all does
    not count)."""
    return _declares_items(getattr(method, "__func__", method))


@runtime_checkable
class Featurizer(Protocol):
    """Turns (prompt, response A, response B) into a (B, dim) float64 context matrix."""

    dim: int

    def embed_pairs(
        self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]
    ) -> np.ndarray: ...


@runtime_checkable
class Normalizer(Protocol):
    """Maps raw feedback (B,) for the given arms (B,) to the router's feedback scale; may keep history."""

    def __call__(self, raw: np.ndarray, arms: np.ndarray) -> np.ndarray: ...


# ---- policy training and evaluation ----------------------------------------------------------
@runtime_checkable
class Generator(Protocol):
    """Samples responses from a policy. ``factory(model, tokenizer, **params)``: the runner supplies the
    live policy (a transformers model, possibly PEFT-wrapped) and its tokenizer.

    ``prompts`` are fully formatted prompt texts (chat template already applied by the caller);
    the result holds ``n`` completions (response text only) per prompt, in prompt order.
    ``max_new_tokens`` overrides the generator's own length limit for this call only.
    """

    def generate(self, prompts: Sequence[str], n: int, seed: int,
                 max_new_tokens: int | None = None) -> list[list[str]]: ...

    def sync(self, model: Any) -> None:
        """Called after every policy update; in-process generators share the model and do nothing."""
        ...


@runtime_checkable
class Judge(Protocol):
    """Grades policy outputs for the evaluation suites. NaN = no verdict (counted, never guessed).

    ``compare`` returns P(answer A is better than answer B) in [0, 1] per item (ties 0.5), with the
    judge's position bias cancelled (each pair judged in both orders). ``grade`` returns a 1..10
    score per item; ``references`` holds a reference answer or None per item.
    """

    name: str

    def compare(self, questions: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray: ...

    def grade(self, questions: Sequence[str], answers: Sequence[str],
              references: Sequence[str | None]) -> np.ndarray: ...


@dataclass
class SuiteResult:
    """One evaluation suite's outcome for one policy.

    ``metrics``: headline numbers (e.g. ``{"acc": 0.41}`` or ``{"lc_win_rate": 12.3, "win_rate": 10.1}``);
    ``ci``: (low, high) per metric where the suite can give one; ``flags``: facts a reader must
    see next to the numbers (e.g. ``{"lc_without_gamed_baselines": True}``); ``samples``: path of
    the per-sample log written under the ``out_dir`` the suite was given.
    """

    suite: str
    metrics: dict[str, float]
    n_items: int
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    samples: str | None = None


@runtime_checkable
class EvalSuite(Protocol):
    """An evaluation suite, registered with ``register_suites`` and metadata ``kind="eval"``.

    ``policy`` is a :class:`rmroute.harness.pipelines.policy.Policy` (model, tokenizer, device, ``format_prompt``);
    ``generator`` samples from it; ``judge`` is None for suites that need none (gsm8k, mmlu).
    """

    name: str
    needs_judge: bool

    def evaluate(self, policy: Any, generator: Generator, judge: Judge | None, out_dir: Any,
                 rng: np.random.Generator) -> SuiteResult: ...
