"""Routing: from a config's router entries to decided pairs and a router that learned from them.

The host's one place for what replay (:mod:`rmroute.harness.runners.replay`), the train loop
(:mod:`rmroute.harness.runners.train.loop`) and :class:`rmroute.harness.pipelines.routed_reward.RoutedReward`
do with a router:

* **resolve** the config's router entries once (:func:`resolve_routers`): ``single`` with
  ``arm: all`` expands to one entry per RM, an ``arm`` given as an RM name becomes its index, each
  entry gets its label, and its traits come from its registry metadata (:func:`router_spec`, the one
  place that reads them) into a :class:`RouterSpec`; :meth:`RouterSpec.build` builds the router,
  resolving ``prior_mean: offline``;
* **route** a batch (:func:`route`): select → the RMs each item calls → the margins of what was
  paid for → the fallback policy when every called RM abstained → the credited arm; then
  :func:`decide` (the router's ``combine``) gives each pair's decision;
* **learn** (:func:`feedback_cells`, then :func:`update_router`): which (item, arm) cells learn,
  their raw feedback through the normalizer chain (:class:`NormalizerChain`, built by
  :func:`build_chain` through the registry), and ``router.update`` on the finite values, with the
  rows' items where the router's ``update`` declares ``items`` (:func:`rows_items`).

The rules are the same for every caller: a pair whose called RMs all abstained calls the router's
next-ranked RM (``on_abstain="next"``; RoutedReward, which decides per completion, does so only for
items routed to one RM: ``"next-single"``), and only each item's credited arm learns.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from rmroute.harness.core.config import PluginRef, Problems, slug_clashes
from rmroute.harness.core.plugins import create_ref, get_registry
from rmroute.harness.core.types import Selection, takes_items
from rmroute.harness.determinism import derived_rng

# ---- router specs -------------------------------------------------------------------------------

#: the raw feedback a router learns from in training, and the default normalizer chain for it
#: (a router entry's ``normalizers``, else the config's, replace the default): the pair's DPO loss
#: (lower is better; the batch baseline turns it into an advantage, then quantile: BayesianRouter)
#: or minus the loss, one scalar per batch (its mean) rescaled by quantiles of the batch history,
#: the raw value passed while that history is shorter than two (LASeR)
TRAIN_FEEDBACK: dict[str, tuple[Any, ...]] = {
    "loss": ("batch-baseline", "quantile"),
    "neg-loss": ({"name": "quantile", "params": {"unit": "batch", "warmup": 2, "during_warmup": "raw"}},),
}


def loss_feedback(kind: str, losses: Any) -> np.ndarray:
    """The raw feedback of a :data:`TRAIN_FEEDBACK` kind from policy losses: the loss itself
    (``loss``) or minus it (``neg-loss``). The train loop and RoutedReward both use it."""
    if kind not in TRAIN_FEEDBACK:
        raise ValueError(f"feedback kind must be one of {', '.join(map(repr, TRAIN_FEEDBACK))}, got {kind!r}")
    raw = np.asarray(losses, dtype=np.float64)
    return -raw if kind == "neg-loss" else raw


@dataclass(frozen=True)
class RouterSpec:
    """One router a run grid runs: its registry name, factory, params (``arm`` as an index) and label,
    with the traits its registry entry declares (metadata, see :func:`router_spec`).

    ``learns``: learns from feedback; ``replay_only``: needs the gold-derived ``rm_correct`` (the
    oracle), so training skips it; ``fit_offline``: has an offline stage worth scoring the offline
    split for in training (replay fits every router: the default ``fit_offline`` ignores it);
    ``feedback``: its training feedback, a key of :data:`TRAIN_FEEDBACK`; ``calls_per_item``: what
    ``rmroute plugins`` shows (1, ``"K"``, ``"1..2"``); ``expands_arm_all``: ``arm: all`` runs one
    entry per RM.
    """

    name: str
    factory: Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""  # default: the name
    learns: bool = False
    replay_only: bool = False
    fit_offline: bool = False
    feedback: str = "loss"
    calls_per_item: int | str | None = None
    expands_arm_all: bool = False
    normalizers: tuple[Any, ...] | None = None  # the entry's own feedback chain (None: the run's default)
    context: str | None = None  # the entry's contexts in replay (None: the run's default)

    def chain(self, default: Sequence[Any], on_bad_feedback: str = "error") -> "NormalizerChain":
        """This router's feedback chain: its entry's ``normalizers``, else ``default`` (refs)."""
        return build_chain(list(default if self.normalizers is None else self.normalizers), on_bad_feedback)

    def in_arm_order(self, pool_names: Sequence[str], names: Sequence[str]) -> "RouterSpec":
        """This spec with an ``arm`` index given in the pool's order (``pool_names``) moved to the
        run's arm order (``names``, a permutation of them)."""
        arm = self.params.get("arm")
        if isinstance(arm, (int, np.integer)) and not isinstance(arm, bool) and 0 <= arm < len(pool_names):
            return dataclasses.replace(self, params={**self.params, "arm": list(names).index(pool_names[arm])})
        return self

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def build(self, n_arms: int, dim: int, seed: int, prior_mean: np.ndarray | None = None) -> Any:
        """The router, built with ``n_arms``, ``dim``, ``seed`` and its params; ``prior_mean: offline``
        becomes ``prior_mean`` (the offline bundle's (K, d) RM embeddings), which must then be given."""
        params = dict(self.params)
        if isinstance(params.get("prior_mean"), str):
            if params["prior_mean"] != "offline" or prior_mean is None:
                raise ValueError(f"router {self.name}: prior_mean {params['prior_mean']!r} needs an offline bundle (settings.offline)")
            params["prior_mean"] = prior_mean
        return self.factory(n_arms=n_arms, dim=dim, seed=seed, **params)


def router_spec(name: str, params: Mapping[str, Any] | None = None, label: str | None = None,
                normalizers: Sequence[Any] | None = None, context: str | None = None) -> RouterSpec:
    """The registered router ``name`` as a :class:`RouterSpec`: the one place that reads router
    traits from registry metadata (``learns`` defaults to the factory's ``learns`` attribute, the
    others to False / ``"loss"``). Raises :class:`rmroute.harness.core.errors.PluginError` for an
    unknown name and ValueError for a ``feedback`` that is not a key of :data:`TRAIN_FEEDBACK`."""
    entry = get_registry().get("router", name)
    meta = entry.metadata
    feedback = meta.get("feedback", "loss")
    if feedback not in TRAIN_FEEDBACK:
        raise ValueError(f"router {name}: metadata feedback must be one of {', '.join(map(repr, TRAIN_FEEDBACK))}, "
                         f"got {feedback!r} (plugin {entry.plugin})")
    return RouterSpec(
        name=name, factory=entry.factory, params=dict(params or {}), label=label or name,
        learns=bool(meta.get("learns", getattr(entry.factory, "learns", False))),
        replay_only=bool(meta.get("replay_only")), fit_offline=bool(meta.get("fit_offline")), feedback=feedback,
        calls_per_item=meta.get("calls_per_item"), expands_arm_all=bool(meta.get("expands_arm_all")),
        normalizers=None if normalizers is None else tuple(normalizers), context=context,
    )


def arm_order(seed: int, n_arms: int, permute: bool = True) -> np.ndarray:
    """The order a run lists the pool's RMs in: a seeded permutation of ``range(n_arms)`` (the same
    for replay and training), or the pool's own order when ``permute`` is False. A router that breaks
    ties by index then favours an RM drawn per seed, not the one a config lists first."""
    return derived_rng(seed, "arm-order").permutation(n_arms) if permute else np.arange(n_arms)


def expand_routers(routers: Sequence[Any], names: Sequence[str]) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(entry index, label, router name, params) per router a run grid runs, from the config's
    router entries (``PluginRef``s) and the RM names in arm order: ``arm: all`` on a router
    registered with ``expands_arm_all`` (``single``) expands to one entry per RM (label
    ``<name>:<rm>``), an ``arm`` given as an RM name becomes its index, and the label is the entry's
    ``label``, else ``<name>:<arm>`` when an arm is given, else the name. `rmroute validate` checks
    the labels with it."""
    out = []
    for i, ref in enumerate(routers):
        params = dict(ref.params)
        arm = params.get("arm")
        if arm == "all" and router_spec(ref.name).expands_arm_all:
            out.extend((i, f"{ref.name}:{rm}", ref.name, {**params, "arm": k}) for k, rm in enumerate(names))
            continue
        if isinstance(arm, str):
            if arm not in names:
                raise ValueError(f"router {ref.name}: arm {arm!r} is not in the pool ({', '.join(names)})")
            params["arm"] = list(names).index(arm)
        label = ref.label or (f"{ref.name}:{arm}" if arm is not None else ref.name)
        out.append((i, label, ref.name, params))
    return out


def resolve_routers(routers: Sequence[Any], names: Sequence[str]) -> list[RouterSpec]:
    """One :class:`RouterSpec` per router a run grid runs (see :func:`expand_routers`), in order,
    with each entry's own ``normalizers`` and ``context`` where it sets them."""
    return [router_spec(name, params, label, getattr(routers[i], "normalizers", None), getattr(routers[i], "context", None))
            for i, label, name, params in expand_routers(routers, names)]


def check_routers(problems: Problems, entries: Sequence[tuple[int, PluginRef]], names: list[str],
                  has_offline: bool) -> list[tuple[int, str]]:
    """Expand each router entry as the runners do (:func:`expand_routers`), check that
    every label gives its own file name, and build each router once (``n_arms`` = the pool's RMs, a
    small ``dim``, seed 0) so that its own checks of the values run now. Returns (entry index, label)."""
    labels: list[tuple[int, str]] = []
    for i, ref in entries:
        try:
            rows = expand_routers([ref], names)
        except ValueError as exc:
            problems.add(("routers", i, "params", "arm"), str(exc))
            continue
        for _, label, name, params in rows:
            labels.append((i, label))
            problem = _router_problem(router_spec(name).factory, name, params, len(names), has_offline)
            if problem:
                problems.add(("routers", i, "params"), problem)
                break
    for first, a, i, b in slug_clashes(labels):
        if first == i:
            why = f"gives the label {b!r} twice"
        else:
            why = (f"gives the label {b!r}, which routers[{first}] (line {problems.line(('routers', first))}) "
                   f"already gives" + ("" if a == b else f" as {a!r} (the same file name)"))
        problems.add(("routers", i), f"{why}; each label is one run file: give the entries distinct `label`s")
    return labels


#: the context width routers are built with at validate time (the real one comes from the bundle)
_CHECK_DIM = 4


def _router_problem(factory, name: str, params: dict[str, Any], n_arms: int, has_offline: bool) -> str | None:
    """Why ``factory(n_arms, dim, seed=0, **params)`` fails, or None. ``prior_mean: offline`` stands
    for the offline bundle's RM embeddings, so it needs ``settings.offline``."""
    params, dim = dict(params), _CHECK_DIM
    prior = params.get("prior_mean")
    if isinstance(prior, str):
        if prior != "offline":
            return f"prior_mean must be 'offline' (the offline bundle's RM embeddings) or {n_arms} vectors, got {prior!r}"
        if not has_offline:
            return "prior_mean: offline needs settings.offline (an offline-router config)"
        params["prior_mean"] = np.zeros((n_arms, dim))
    elif isinstance(prior, list) and prior and isinstance(prior[0], list):
        dim = len(prior[0]) or dim
    try:
        factory(n_arms=n_arms, dim=dim, seed=0, **params)
    except ValueError as exc:  # the router's own check of its values (built-ins name the router)
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a plugin's check may raise anything
        return f"router {name!r}: {type(exc).__name__}: {exc}"
    return None


# ---- one routed batch ---------------------------------------------------------------------------

#: What happens to an item whose called RMs all abstained (every paid-for margin NaN):
#: ``"next"`` (replay and training): it calls the router's next-best arm (:func:`arm_ranking`, else
#: the next index), again until one answers or every RM was called; the last arm called is credited.
#: ``"wrong"``: nothing; its decision is NaN (scored 0.5 by :func:`rmroute.harness.analysis.score`).
#: ``"next-single"`` (RoutedReward): the same, only for items the router sent to one RM (ensembles
#: decide per completion instead), and an item no RM answered keeps the router's own arm credited.
OnAbstain = Literal["wrong", "next", "next-single"]

#: ``pay(cells, margins)``: fill ``margins[i, k]`` for every True ``cells[i, k]`` (NaN = abstained);
#: the caller scores, looks up or counts those calls
Pay = Callable[[np.ndarray, np.ndarray], None]


@dataclass
class Routed:
    """One routed batch of B items over K RMs."""

    selection: Selection  # the router's own choice, before any fallback
    arms: np.ndarray  # (B,) credited arm
    calls: np.ndarray  # (B, K) every RM paid for, fallbacks included
    margins: np.ndarray  # (B, K) what the paid-for RMs returned; NaN where abstained or not called
    items: Sequence[Mapping[str, Any]] | None = None  # what select got (None when it got none)

    @property
    def answered(self) -> np.ndarray:
        """(B,) some called RM gave a margin."""
        return _answered(self.calls, self.margins)

    @property
    def fallback_calls(self) -> int:
        """RM calls made by the fallback policy."""
        return int((self.calls & ~np.asarray(self.selection.calls, dtype=bool)).sum())


def arm_ranking(router: Any, contexts: np.ndarray) -> np.ndarray | None:
    """(B, K) arms best-first by the router's exploit-only value: the posterior mean μ_kᵀx
    (``predictive``) where the router has one, else ``ucb``; ties go to the lower index. None for
    routers with neither (their fallback is the next index)."""
    for attr in ("predictive", "ucb"):
        fn = getattr(router, attr, None)
        if callable(fn):
            out = fn(contexts)
            value = out[0] if isinstance(out, tuple) else out
            return np.argsort(-np.asarray(value), axis=1, kind="stable")
    return None


def fallback_orders(router: Any, contexts: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(B, K) per item, the arms in the order a fallback tries them: :func:`arm_ranking` where the
    router has one, else the arms after ``first[i]`` in index order, wrapping around (arms already
    called are skipped when the order is used)."""
    ranked = arm_ranking(router, contexts)
    if ranked is not None:
        return ranked
    K = int(router.n_arms)
    return (np.asarray(first, dtype=np.int64)[:, None] + np.arange(1, K + 1)[None, :]) % K


def fallback_order(router: Any, context: np.ndarray, first: int) -> list[int]:
    """One context's view of :func:`fallback_orders`: the arms to try after ``first`` abstains, best first."""
    ctx = np.asarray(context, dtype=np.float64).reshape(1, -1)
    return [int(k) for k in fallback_orders(router, ctx, np.array([first]))[0] if int(k) != first]


def route(router: Any, contexts: np.ndarray, items: Sequence[Mapping[str, Any]] | None, pay: Pay, *,
          on_abstain: OnAbstain, greedy: bool = False) -> Routed:
    """Route one batch: the router selects (``select_greedy`` when ``greedy``: the frozen test
    decision), ``pay`` returns the margins of the RMs each item calls, and ``on_abstain`` says what
    happens where every called RM abstained (see :data:`OnAbstain`)."""
    if on_abstain not in ("wrong", "next", "next-single"):
        raise ValueError(f"on_abstain must be 'wrong', 'next' or 'next-single', got {on_abstain!r}")
    sel = (router.select_greedy if greedy else router.select)(contexts, items)
    arms = np.asarray(sel.arms, dtype=np.int64).copy()
    calls = np.asarray(sel.calls, dtype=bool).copy()
    margins = np.full(calls.shape, np.nan)
    pay(calls, margins)
    if on_abstain == "next":
        _fall_back(router, contexts, arms, calls, margins, pay, eligible=np.ones(arms.shape, dtype=bool))
    elif on_abstain == "next-single":
        _fall_back(router, contexts, arms, calls, margins, pay, eligible=calls.sum(axis=1) <= 1)
        unanswered = ~_answered(calls, margins)
        arms[unanswered] = np.asarray(sel.arms, dtype=np.int64)[unanswered]
    return Routed(sel, arms, calls, margins, items)


def _answered(calls: np.ndarray, margins: np.ndarray) -> np.ndarray:
    """(B,) some called RM gave a margin."""
    return np.any(calls & ~np.isnan(margins), axis=1)


def _fall_back(router: Any, contexts: np.ndarray, arms: np.ndarray, calls: np.ndarray, margins: np.ndarray,
               pay: Pay, eligible: np.ndarray) -> None:
    """Where an eligible item's called RMs all abstained and some RM is still uncalled, call the next
    arm in the router's order (computed once, from the router's state after selection) and credit
    it; repeat until every such item has an answer or has called every RM. Updates in place."""
    K = calls.shape[1]
    order = None
    for _ in range(K - 1):
        dead = np.flatnonzero(eligible & ~_answered(calls, margins) & ~calls.all(axis=1))
        if dead.size == 0:
            break
        if order is None:
            order = fallback_orders(router, contexts, arms)
        new = np.zeros_like(calls)
        for i in dead:
            k = next(int(k) for k in order[i] if not calls[i, k])
            new[i, k] = True
            arms[i] = k
        calls |= new
        pay(new, margins)


def decide(router: Any, routed: Routed) -> np.ndarray:
    """(B,) each pair's decision margin: ``router.combine`` over the credited arms, every call and
    the paid-for margins (NaN elsewhere); its sign is the decision, NaN = none."""
    sel = Selection(arms=routed.arms, calls=routed.calls, info=routed.selection.info)
    return np.asarray(router.combine(sel, np.where(routed.calls, routed.margins, np.nan)), dtype=np.float64)


# ---- learning -----------------------------------------------------------------------------------
def feedback_cells(routed: Routed, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(items, arms): the (item, arm) cells that learn: each item's credited arm, and only it (one
    rule for every caller and every router: a router that paid for a second RM learns nothing about
    that RM). ``rows`` keeps only those items (default: every item), in ``rows`` order."""
    items = np.arange(routed.arms.size) if rows is None else np.asarray(rows, dtype=np.int64)
    return items, routed.arms[items]


def rows_items(routed: Routed, rows: np.ndarray) -> list[Mapping[str, Any]] | None:
    """The items ``select`` got for ``rows`` of a routed batch (None when it got none), for
    :func:`update_router`."""
    return None if routed.items is None else [routed.items[int(i)] for i in rows]


def update_router(router: Any, chain: Callable[[np.ndarray, np.ndarray], np.ndarray], contexts: np.ndarray,
                  arms: np.ndarray, raw: np.ndarray, items: Sequence[Mapping[str, Any]] | None = None) -> np.ndarray:
    """Raw feedback per cell (``contexts`` (n, d), ``arms`` (n,), ``raw`` (n,); ``items`` the n rows'
    items, as ``select`` got them, or None) through the normalizer ``chain``, then ``router.update`` on
    the cells whose normalized feedback is finite (the chain returns NaN where it skipped bad
    feedback), in the order given, with ``items=`` those cells' items when the router's ``update``
    declares an ``items`` parameter (routers without one are called as before). Returns the
    normalized feedback."""
    fb = np.asarray(chain(raw, arms), dtype=np.float64)
    keep = np.isfinite(fb)
    if items is not None and len(items) != keep.size:
        raise ValueError(f"update_router: {len(items)} items for {keep.size} feedback rows")
    if keep.any():
        if takes_items(router.update):
            router.update(contexts[keep], arms[keep], fb[keep],
                          items=None if items is None else [it for it, k in zip(items, keep) if k])
        else:
            router.update(contexts[keep], arms[keep], fb[keep])
    return fb


# ---- the normalizer chain -----------------------------------------------------------------------

#: what a chain does with NaN/inf raw feedback (the config's ``on_bad_feedback``)
ON_BAD_FEEDBACK = ("error", "skip")


def positions(mask: np.ndarray, limit: int = 10) -> str:
    """The True positions of ``mask`` for an error message (the first ``limit``, then a count)."""
    idx = np.flatnonzero(mask)
    shown = idx[:limit].tolist()
    more = f" and {idx.size - limit} more" if idx.size > limit else ""
    return f"{shown}{more}"


def check_feedback(name: str, raw: Any, arms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a normalizer's input (shapes, integer arms >= 0); return (raw float64 (B,), arms int64
    (B,), mask of NaN/inf raw values (B,)). ``name`` starts every error message."""
    r = np.asarray(raw, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name}: raw feedback must be a 1-D array (B,), got shape {r.shape}")
    a = np.asarray(arms)
    if a.shape != r.shape:
        raise ValueError(f"{name}: arms must have the same shape as raw feedback {r.shape}, got {a.shape}")
    if a.size:
        if a.dtype == bool or not (
            np.issubdtype(a.dtype, np.integer)
            or (np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and (a == np.round(a)).all())
        ):
            raise ValueError(f"{name}: arms must be integers, got {a[:8].tolist()}")
        if a.min() < 0:
            raise ValueError(f"{name}: arms must be >= 0, got {a[a < 0][:8].tolist()}")
    return r, a.astype(np.int64), ~np.isfinite(r)


class NormalizerChain:
    """Applies ``steps`` (normalizers, ``step(raw, arms) -> (B,)``) in order; handles NaN/inf
    feedback once, up front.

    ``on_bad_feedback="error"``: NaN/inf raw feedback raises ValueError naming the position(s)
    (nothing is updated). ``"skip"``: bad positions are removed before the first step, so no step's
    statistics see them; they come back as NaN, their positions are in ``last_skipped`` and
    ``skipped`` counts them over the chain's lifetime (it is part of the state). A step that turns
    finite input into NaN/inf is a bug and raises ValueError naming the step. No steps = identity.
    """

    name = "chain"

    def __init__(self, steps: Sequence[Callable[[np.ndarray, np.ndarray], np.ndarray]] = (),
                 on_bad_feedback: str = "error") -> None:
        if on_bad_feedback not in ON_BAD_FEEDBACK:
            raise ValueError(
                f"on_bad_feedback must be one of {', '.join(map(repr, ON_BAD_FEEDBACK))}, got {on_bad_feedback!r}"
            )
        for i, step in enumerate(steps):
            if not callable(step):
                raise ValueError(f"normalizer chain step {i} is not callable: {step!r}")
        self.steps = list(steps)
        self.on_bad_feedback = on_bad_feedback
        self.skipped = 0
        self.last_skipped = np.zeros(0, dtype=np.int64)

    def __call__(self, raw: np.ndarray, arms: np.ndarray) -> np.ndarray:
        r, a, bad = check_feedback(self.name, raw, arms)
        if bad.any() and self.on_bad_feedback == "error":
            raise ValueError(
                f"feedback is NaN/inf at position(s) {positions(bad)}; "
                "set on_bad_feedback: skip to drop such items"
            )
        good = np.flatnonzero(~bad)
        x, ag = r[good], a[good]
        if x.size:
            for i, step in enumerate(self.steps):
                y = np.asarray(step(x, ag), dtype=np.float64)
                if y.shape != x.shape:
                    raise ValueError(
                        f"normalizer chain step {i} ({_step_name(step)}) returned shape {y.shape} for input {x.shape}"
                    )
                nonfinite = ~np.isfinite(y)
                if nonfinite.any():
                    raise ValueError(
                        f"normalizer chain step {i} ({_step_name(step)}) returned NaN/inf for finite feedback "
                        f"at position(s) {positions(np.isin(np.arange(r.size), good[nonfinite]))}"
                    )
                x = y
        out = np.full(r.shape, np.nan)
        out[good] = x
        self.last_skipped = np.flatnonzero(bad)
        self.skipped += int(bad.sum())
        return out

    def state_dict(self) -> dict[str, Any]:
        steps = [s.state_dict() if callable(getattr(s, "state_dict", None)) else None for s in self.steps]
        return copy.deepcopy({"type": self.name, "skipped": self.skipped, "steps": steps})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("type") != self.name or len(state.get("steps", ())) != len(self.steps):
            raise ValueError(
                f"chain: state is for {state.get('type')!r} with {len(state.get('steps', ()))} step(s); "
                f"this chain has {len(self.steps)}"
            )
        for step, s in zip(self.steps, state["steps"]):
            if s is not None:
                step.load_state_dict(s)
        self.skipped = int(state["skipped"])


def _step_name(step: Any) -> str:
    return getattr(step, "name", None) or getattr(step, "__name__", None) or type(step).__name__


def build_chain(specs: Sequence[Any] = (), on_bad_feedback: str = "error") -> NormalizerChain:
    """Build a chain from config entries, each a plugin ref (a name, ``{"name": ..., "params": {...}}``
    or a config ``PluginRef``), built through the plugin registry
    (:func:`rmroute.harness.core.plugins.create_ref`; a malformed entry is a ValueError naming
    ``normalizers[i]``)."""
    steps = [create_ref("normalizer", spec, f"normalizers[{i}]") for i, spec in enumerate(specs)]
    return NormalizerChain(steps, on_bad_feedback=on_bad_feedback)
