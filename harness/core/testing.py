"""Conformance checks for plugin authors: call them from your own tests.

    from rmroute.harness.core.testing import check_router
    def test_my_router():
        check_router(MyRouter, alpha=0.5)

Each check builds the plugin through its factory, exercises the contract (shapes, dtypes,
determinism under a seed, state round trip, a frozen ``select_greedy``, NaN handling, rejection of
bad input) and raises :class:`ConformanceError` with a message that says which rule failed.

The kit keeps the host's side of the router protocol too: every ``update`` it makes covers rows of
the selection just made (a subset, in selection order, with their items where ``update`` declares
``items``), never rows the router did not select.
"""

from __future__ import annotations

import copy
import random
import types
from typing import Any, Callable, Sequence

import numpy as np

from rmroute.harness.core.errors import PluginError
from rmroute.harness.core.plugins import check_params
from rmroute.harness.core.types import Selection, takes_items


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


def _update(router: Any, X: np.ndarray, arms: np.ndarray, feedback: np.ndarray,
            items: Sequence[Any] | None) -> None:
    """``router.update`` as the host calls it: ``items=`` only where ``update`` declares it."""
    if takes_items(router.update):
        router.update(X, arms, feedback, items=items)
    else:
        router.update(X, arms, feedback)


def _run(router, n_rounds: int, batch: int, seed: int) -> list[np.ndarray]:
    """Select then learn, ``n_rounds`` times; returns each round's arms. Like the host, each update
    covers rows of the selection just made and leaves some out (here every fourth row, as the host
    leaves out unlabelled items, dropped pairs and skipped feedback), keeping the selection order."""
    decisions = []
    item_rng = np.random.default_rng(seed + 1)
    keep = np.flatnonzero(np.arange(batch) % 4 != 3)
    for X, theta in _stream(n_rounds, batch, router.dim, router.n_arms, seed):
        items = _items(batch, router.n_arms, item_rng)
        sel = router.select(X, items)
        decisions.append(sel.arms.copy())
        fb = np.einsum("bd,bd->b", X, theta[sel.arms])
        _update(router, X[keep], sel.arms[keep], fb[keep], [items[i] for i in keep])
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
    ``update`` on rows of a past selection (with their items, where it declares ``items``),
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

    _check_update_items(make, X, n_arms)

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

    # bad input (bad updates are of rows the router selected: only the arms / feedback / lengths are wrong)
    fresh = make()
    _expect_value_error(lambda: fresh.select(np.zeros((3, dim + 1))), "select with the wrong context width")
    _expect_value_error(lambda: fresh.select(np.zeros(dim)), "select with a 1-D context")
    nan_x = np.zeros((2, dim)); nan_x[1, 0] = np.nan
    _expect_value_error(lambda: fresh.select(nan_x), "select with a NaN context")
    Xg, its = X[:2], _items(2, n_arms, np.random.default_rng(2))
    got = np.asarray(fresh.select(Xg, its).arms)
    _expect_value_error(lambda: _update(fresh, Xg, np.array([got[0], n_arms]), np.zeros(2), its),
                        "update with an arm out of range")
    _expect_value_error(lambda: _update(fresh, Xg, got, np.array([0.0, np.nan]), its), "update with NaN feedback")
    _expect_value_error(lambda: _update(fresh, Xg, got[:1], np.zeros(2), its), "update with mismatched lengths")


def _check_update_items(make: Callable[..., Any], X: np.ndarray, n_arms: int) -> None:
    """For an ``update`` that declares ``items``: it takes the items of a subset of a past
    selection's rows (in selection order), takes ``items=None`` (what ``select`` may have got), and
    refuses a list of items whose length is not the rows' with ValueError."""
    router = make()
    if not takes_items(router.update):
        return
    its = _items(X.shape[0], n_arms, np.random.default_rng(4))
    arms = np.asarray(router.select(X, its).arms)
    rows = np.array([0, 2, 5])
    for given, what in (([its[i] for i in rows], "the items of its rows"), (None, "items=None")):
        try:
            router.update(X[rows], arms[rows], np.zeros(rows.size), items=given)
        except Exception as exc:  # noqa: BLE001 - any failure here breaks the protocol
            raise ConformanceError(f"update declares items but failed on {what} "
                                   f"({type(exc).__name__}: {exc})") from exc
    _expect_value_error(lambda: router.update(X[rows], arms[rows], np.zeros(rows.size), items=[its[0], its[2]]),
                        "update with 2 items for 3 rows")


def _check_select_greedy(make: Callable[..., Any], state: dict[str, Any], X: np.ndarray,
                         items: Callable[[int], Any], n_arms: int) -> None:
    """``select_greedy`` (the frozen test decision, every "(test)" column of the board) from a
    mid-stream ``state``: a valid Selection for any batch size; repeatable (two routers restored
    from one state decide alike); and, unless the router declares ``greedy_draws = True`` (a test
    decision random by design), frozen: it draws from no generator (the router's own, wherever it
    keeps them, numpy's global one or Python's ``random``), two calls on one router decide alike
    and its ``state_dict()`` is the same after it."""
    def restored():
        router = make(seed=12345)
        router.load_state_dict(copy.deepcopy(state))
        return router

    greedy = restored().select_greedy(X, items(7))
    check_selection(greedy, 7, n_arms)
    _require(_same_selection(greedy, restored().select_greedy(X, items(7))),
             "select_greedy from the same state and inputs gave different selections")
    check_selection(restored().select_greedy(X[:1], items(1)), 1, n_arms)
    check_selection(restored().select_greedy(X[:0], items(0)), 0, n_arms)

    router = restored()
    if getattr(router, "greedy_draws", False):
        return
    hint = ("the test decision must be exploit-only; a router whose test decision is random by design "
            "declares greedy_draws = True")
    state_before, draws_before, global_before = copy.deepcopy(router.state_dict()), _random_states(router), _global_random()
    first, second = router.select_greedy(X, items(7)), router.select_greedy(X, items(7))
    moved = [where for where, s in _random_states(router).items() if not _deep_equal(draws_before.get(where), s)]
    _require(not moved, f"select_greedy draws randomness: {', '.join(moved)} advanced ({hint})")
    _require(_deep_equal(global_before, _global_random()),
             f"select_greedy draws randomness: the global numpy or Python generator advanced ({hint})")
    _require(_same_selection(first, second),
             f"select_greedy draws randomness: two calls on one router gave different selections ({hint})")
    _require(_deep_equal(state_before, router.state_dict()),
             "select_greedy changed the router's state (state_dict() differs after it): the test decision is frozen")


def _random_states(obj: Any, where: str = "router", depth: int = 0,
                   seen: set[int] | None = None) -> dict[str, Any]:
    """The state of every random generator ``obj`` holds (numpy ``Generator`` / ``RandomState``,
    ``random.Random``), found through its attributes, dicts, lists and tuples (4 levels deep), by
    where it was found (``router.rng``, ``router.posterior.rng``, ...)."""
    seen = set() if seen is None else seen
    if isinstance(obj, np.random.Generator):
        return {where: obj.bit_generator.state}
    if isinstance(obj, np.random.RandomState):
        return {where: obj.get_state(legacy=False)}
    if isinstance(obj, random.Random):
        return {where: obj.getstate()}
    if depth >= 4 or id(obj) in seen or isinstance(obj, (type, types.ModuleType, np.ndarray, str, bytes)):
        return {}
    seen.add(id(obj))
    if isinstance(obj, dict):
        children = [(f"{where}[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        children = [(f"{where}[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__"):
        children = [(f"{where}.{k}", v) for k, v in vars(obj).items()]
    else:
        return {}
    out: dict[str, Any] = {}
    for name, child in children:
        out.update(_random_states(child, name, depth + 1, seen))
    return out


def _global_random() -> tuple[Any, Any]:
    """The states of numpy's global generator and Python's ``random`` module."""
    return np.random.get_state(legacy=False), random.getstate()


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
