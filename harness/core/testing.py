"""Conformance checks for plugin authors: call them from your own tests.

    from rmroute.harness.core.testing import check_router
    def test_my_router():
        check_router(MyRouter, alpha=0.5)

Each check builds the plugin through its factory, exercises the contract (shapes, dtypes,
determinism under a seed, state round trip, NaN handling, rejection of bad input) and raises
:class:`ConformanceError` with a message that says which rule failed.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from rmroute.harness.core.errors import PluginError
from rmroute.harness.core.plugins import check_params
from rmroute.harness.core.types import Selection


class ConformanceError(AssertionError):
    pass


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ConformanceError(what)


def _expect_value_error(fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except ValueError:
        return
    except Exception as exc:  # wrong kind of error is also a failure
        raise ConformanceError(f"{what}: expected ValueError, got {type(exc).__name__}: {exc}") from exc
    raise ConformanceError(f"{what}: expected ValueError, nothing was raised")


def _stream(n_rounds: int, batch: int, dim: int, n_arms: int, seed: int):
    """A fixed synthetic stream: contexts and a per-arm linear feedback signal."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n_arms, dim))
    for _ in range(n_rounds):
        X = rng.normal(size=(batch, dim))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        yield X, theta


def _items(batch: int, n_arms: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Metadata of the kind replay passes: a domain and which RMs agree with the gold label."""
    return [
        {"domain": f"d{i % 3}", "rm_correct": (rng.random(n_arms) < 0.6).tolist()} for i in range(batch)
    ]


def _run(router, n_rounds: int, batch: int, seed: int) -> list[np.ndarray]:
    decisions = []
    item_rng = np.random.default_rng(seed + 1)
    for X, theta in _stream(n_rounds, batch, router.dim, router.n_arms, seed):
        sel = router.select(X, _items(batch, router.n_arms, item_rng))
        decisions.append(sel.arms.copy())
        fb = np.einsum("bd,bd->b", X, theta[sel.arms])
        router.update(X, sel.arms, fb)
    return decisions


def check_selection(sel: Any, batch: int, n_arms: int) -> None:
    _require(isinstance(sel, Selection), f"select must return a Selection, got {type(sel).__name__}")
    arms, calls = np.asarray(sel.arms), np.asarray(sel.calls)
    _require(arms.shape == (batch,), f"Selection.arms must have shape ({batch},), got {arms.shape}")
    _require(np.issubdtype(arms.dtype, np.integer), f"Selection.arms must be integers, got {arms.dtype}")
    _require(bool(((arms >= 0) & (arms < n_arms)).all()), f"Selection.arms out of [0, {n_arms}): {arms}")
    _require(calls.shape == (batch, n_arms), f"Selection.calls must have shape ({batch}, {n_arms}), got {calls.shape}")
    _require(calls.dtype == bool, f"Selection.calls must be bool, got {calls.dtype}")
    _require(bool(calls[np.arange(batch), arms].all()), "every credited arm must be marked as called")


def check_router(
    factory: Callable[..., Any], n_arms: int = 4, dim: int = 6, needs_items: bool = False, **params: Any
) -> None:
    """Check a router factory ``factory(n_arms=, dim=, seed=, **params)`` against the contract:
    selections (also from ``select_greedy``, see :func:`_check_select_greedy`), ``combine``,
    determinism under a seed, the state round trip and the rejection of bad input.

    ``needs_items=True`` is for routers that only work with per-item metadata (the replay-only
    oracle): they are always given items, and ``select(X)`` without them must raise ValueError.
    """
    make = lambda seed=0: factory(n_arms=n_arms, dim=dim, seed=seed, **params)  # noqa: E731
    router = make()
    for attr in ("select", "select_greedy", "combine", "update", "state_dict", "load_state_dict"):
        _require(callable(getattr(router, attr, None)), f"router has no method {attr!r}")
    _require(getattr(router, "n_arms", None) == n_arms, "router.n_arms must equal the n_arms it was built with")
    _require(getattr(router, "dim", None) == dim, "router.dim must equal the dim it was built with")

    # shapes, with and without item metadata, batch of one and an empty batch
    X = np.random.default_rng(0).normal(size=(7, dim))
    items = lambda n: _items(n, n_arms, np.random.default_rng(n)) if needs_items else None  # noqa: E731
    check_selection(router.select(X, _items(7, n_arms, np.random.default_rng(0))), 7, n_arms)
    if needs_items:
        _expect_value_error(lambda: make().select(X), "select without items, for a router that needs them")
    else:
        check_selection(router.select(X), 7, n_arms)
    check_selection(router.select(X[:1], items(1)), 1, n_arms)
    check_selection(router.select(X[:0], items(0)), 0, n_arms)

    # combine: decides from the margins it paid for, ignores the rest
    sel = router.select(X, items(7))
    margins = np.random.default_rng(1).normal(size=(7, n_arms))
    paid = np.where(sel.calls, margins, np.nan)
    out = np.asarray(router.combine(sel, paid))
    _require(out.shape == (7,), f"combine must return shape (7,), got {out.shape}")
    _require(bool(np.isfinite(out).all()), "combine must be finite when every called arm gave a margin")

    # determinism: same seed, same inputs -> same decisions
    a, b = _run(make(), 6, 16, seed=3), _run(make(), 6, 16, seed=3)
    _require(all(np.array_equal(x, y) for x, y in zip(a, b)), "same seed and inputs gave different decisions")

    # state round trip: save mid-stream, load into a fresh router, continue identically
    first = make()
    _run(first, 4, 16, seed=5)
    state = first.state_dict()
    saved = copy.deepcopy(state)
    second = make(seed=12345)
    second.load_state_dict(saved)
    cont_a, cont_b = _run(first, 4, 16, seed=9), _run(second, 4, 16, seed=9)
    _require(
        all(np.array_equal(x, y) for x, y in zip(cont_a, cont_b)),
        "a router restored from state_dict() did not continue with identical decisions",
    )
    # the state must be a snapshot, not a view of live buffers
    _require(_deep_equal(state, saved), "state_dict() changed after the router kept running (it aliases live state)")

    _check_select_greedy(make, saved, X, items, n_arms)

    # bad input
    fresh = make()
    _expect_value_error(lambda: fresh.select(np.zeros((3, dim + 1))), "select with the wrong context width")
    _expect_value_error(lambda: fresh.select(np.zeros(dim)), "select with a 1-D context")
    nan_x = np.zeros((2, dim)); nan_x[1, 0] = np.nan
    _expect_value_error(lambda: fresh.select(nan_x), "select with a NaN context")
    Xg = np.zeros((2, dim))
    _expect_value_error(lambda: fresh.update(Xg, np.array([0, n_arms]), np.zeros(2)), "update with an arm out of range")
    _expect_value_error(lambda: fresh.update(Xg, np.array([0, 0]), np.array([0.0, np.nan])), "update with NaN feedback")
    _expect_value_error(lambda: fresh.update(Xg, np.array([0]), np.zeros(2)), "update with mismatched lengths")


def _check_select_greedy(make: Callable[..., Any], state: dict[str, Any], X: np.ndarray,
                         items: Callable[[int], Any], n_arms: int) -> None:
    """``select_greedy`` (the frozen test decision) from a mid-stream ``state``: a valid Selection for
    any batch size; repeatable (two routers restored from one state decide alike); and either
    exploit-only (draws nothing from ``self.rng``) or ``select`` itself (BaseRouter's default)."""
    def restored():
        router = make(seed=12345)
        router.load_state_dict(copy.deepcopy(state))
        return router

    first = restored()
    before = _generator_state(first)
    greedy = first.select_greedy(X, items(7))
    check_selection(greedy, 7, n_arms)
    _require(_same_selection(greedy, restored().select_greedy(X, items(7))),
             "select_greedy from the same state and inputs gave different selections")
    if before is not None and _generator_state(first) != before:
        _require(_same_selection(greedy, restored().select(X, items(7))),
                 "select_greedy draws from self.rng but is not select: an exploit-only decision must draw "
                 "nothing from self.rng (only BaseRouter's default, select itself, may)")
    check_selection(restored().select_greedy(X[:1], items(1)), 1, n_arms)
    check_selection(restored().select_greedy(X[:0], items(0)), 0, n_arms)


def _generator_state(router: Any) -> dict[str, Any] | None:
    rng = getattr(router, "rng", None)
    return rng.bit_generator.state if isinstance(rng, np.random.Generator) else None


def _same_selection(a: Selection, b: Selection) -> bool:
    return np.array_equal(np.asarray(a.arms), np.asarray(b.arms)) and np.array_equal(np.asarray(a.calls), np.asarray(b.calls))


def _deep_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=True)
    return a == b


PROMPTS = ["What is 2 + 3?", "Name a prime number.", "Translate 'cat' to French.", ""]
RESPONSES = ["2 + 3 = 5.", "7 is prime.", "Chat.", "An empty prompt still gets a score."]


def check_reward_model(factory: Callable[..., Any], **params: Any) -> None:
    """Check a reward-model factory: name, cost, batched scoring, determinism, bad input."""
    rm = factory(**params)
    _require(isinstance(getattr(rm, "name", None), str) and rm.name, "reward model needs a non-empty str `name`")
    cost = getattr(rm, "cost", None)
    _require(isinstance(cost, (int, float)) and cost >= 0, f"reward model `cost` must be a number >= 0, got {cost!r}")
    s = np.asarray(rm.score(PROMPTS, RESPONSES))
    _require(s.shape == (len(PROMPTS),), f"score must return shape ({len(PROMPTS)},), got {s.shape}")
    _require(np.issubdtype(s.dtype, np.floating), f"score must return floats (NaN = abstain), got {s.dtype}")
    _require(not np.isinf(s).any(), "score returned inf; abstain with NaN instead")
    again = np.asarray(factory(**params).score(PROMPTS, RESPONSES))
    _require(np.array_equal(s, again, equal_nan=True), "two instances built alike scored differently")
    single = np.asarray(rm.score(PROMPTS[1:2], RESPONSES[1:2]))
    _require(np.allclose(single, s[1:2], equal_nan=True, rtol=1e-5, atol=1e-6),
             "scoring an item alone differs from scoring it in a batch")
    empty = np.asarray(rm.score([], []))
    _require(empty.shape == (0,), f"an empty batch must score to shape (0,), got {empty.shape}")
    _expect_value_error(lambda: rm.score(PROMPTS, RESPONSES[:2]), "score with mismatched lengths")


def check_normalizer(factory: Callable[..., Any], **params: Any) -> None:
    """Check a feedback normalizer: shapes, finiteness, rejection of NaN feedback."""
    norm = factory(**params)
    rng = np.random.default_rng(0)
    for _ in range(5):
        raw, arms = rng.normal(size=8), rng.integers(0, 3, size=8)
        out = np.asarray(norm(raw, arms))
        _require(out.shape == (8,), f"normalizer must return shape (8,), got {out.shape}")
        _require(bool(np.isfinite(out).all()), "normalizer returned NaN/inf for finite feedback")
    _expect_value_error(lambda: factory(**params)(np.array([0.0, np.nan]), np.array([0, 1])), "normalizer with NaN feedback")


def check_featurizer(factory: Callable[..., Any], **params: Any) -> None:
    """Check a featurizer: (B, dim) finite float64 output, determinism, mismatched lengths rejected."""
    f = factory(**params)
    dim = getattr(f, "dim", None)
    _require(isinstance(dim, int) and dim > 0, f"featurizer needs a positive int `dim`, got {dim!r}")
    out = np.asarray(f.embed_pairs(PROMPTS, RESPONSES, RESPONSES[::-1]))
    _require(out.shape == (len(PROMPTS), dim), f"embed_pairs must return ({len(PROMPTS)}, {dim}), got {out.shape}")
    _require(bool(np.isfinite(out).all()), "embed_pairs returned NaN/inf")
    again = np.asarray(factory(**params).embed_pairs(PROMPTS, RESPONSES, RESPONSES[::-1]))
    _require(np.allclose(out, again, atol=1e-6), "two featurizers built alike gave different embeddings")
    _expect_value_error(lambda: f.embed_pairs(PROMPTS, RESPONSES[:2], RESPONSES), "embed_pairs with mismatched lengths")


CHECKS: dict[str, Callable[..., None]] = {
    "router": check_router,
    "reward_model": check_reward_model,
    "normalizer": check_normalizer,
    "featurizer": check_featurizer,
}


#: parameters the host supplies to each kind's factory (the rest need defaults to be checked blind)
SUPPLIED = {"router": {"n_arms", "dim", "seed"}}


def check_entry(entry: Any) -> tuple[str, str]:
    """Run the conformance check for a registry entry; returns (status, detail).

    status is "ok", "fail" or "skip" (no check for the kind, or the factory needs parameters that
    have no default and the entry's ``check_params`` metadata does not give them).
    """
    check = CHECKS.get(entry.kind)
    if check is None:
        return "skip", f"no conformance check for kind {entry.kind!r}"
    params = dict(entry.metadata.get("check_params", {}))
    try:  # the host supplies SUPPLIED; anything else without a default must come from check_params
        check_params(entry, {**{k: None for k in SUPPLIED.get(entry.kind, ())}, **params})
    except PluginError as exc:
        return "skip", f"needs parameters the check cannot guess ({exc}); give them as check_params metadata"
    if entry.kind == "router" and entry.metadata.get("replay_only"):
        params["needs_items"] = True
    try:
        check(entry.factory, **params)
    except ConformanceError as exc:
        return "fail", str(exc)
    return "ok", ""
