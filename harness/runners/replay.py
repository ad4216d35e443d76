"""The replay benchmark: routers head-to-head on cached RM scores, no policy training.

For each (router, seed, scenario): the seed picks the data split (with ``settings.folds``: the
items are cut into folds once, seed s tests fold s mod F, and the other items split into offline
and online, all by item so the two pairs of one item never straddle splits) and the order in
which the pool's RMs are listed (``settings.permute_arms``); the offline router is trained on that
seed's offline split; routers that learn offline fit on the offline split (where every RM's
margin is known); the online split streams in a seeded order in batches; the router selects
RM(s) per pair; the pair is decided from the margins of the RMs it called, and where every
called RM abstained the router's next-ranked RM is called (the extra call counted, as in
training); the credited RM learns from the scenario's feedback (``gold``: the label; ``budget``:
the label on a seeded share of items; ``consensus``: agreement with the majority of m other RMs,
whose calls are counted) through the router's normalizer chain; afterwards the router, frozen and
greedy, decides the ``test`` split. Every decision is scored by
:func:`rmroute.harness.analysis.score` (1 right, 0 wrong, 0.5 tie or no decision) and every RM call
is counted.

The core (:func:`replay_one`) is pure numpy over a :class:`ReplayData`; it routes and learns through
:mod:`rmroute.harness.routing`. :func:`run` builds one ReplayData per seed from the pool and the
offline config (:func:`build_base`, :func:`seed_data`) and writes one run JSON per grid cell
(:mod:`rmroute.harness.runners.grid`: run ids, ``--only``, ``--resume``, failed cells).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field, StrictInt

from rmroute.harness.analysis import correct, deal_folds, encode_outcomes, groups_by_domain, item_ids, score
from rmroute.harness.core.config import Name, Problems, StrictModel, check_run_ids, slug_clashes
from rmroute.harness.core.errors import ConfigError, ScoreError
from rmroute.harness.core.plugins import create_ref
from rmroute.harness.determinism import arrays_sha256, derived_rng, describe
from rmroute.harness.pipelines.offline import check_offline_ref, context_source, encode_split, fold_bundle, load_offline_config
from rmroute.harness.pipelines.pool import Pool, build_pool, check_abstention, load_pool_config, pairs_sha, pool_rm_names
from rmroute.harness.paths import config_file_ref, resolved_settings
from rmroute.harness.progress import progress_bar
from rmroute.harness.results import DataInfo, RouterInfo
from rmroute.harness.routing import (Routed, RouterSpec, arm_order, check_routers, decide, feedback_cells, resolve_routers,
                                     route, rows_items, update_router)
from rmroute.harness.runners import grid, settings_of

# ---- config ---------------------------------------------------------------------------------


class ColdStart(StrictModel):
    """One RM joins halfway: before ``join_at`` (share of the stream) it is absent (abstains),
    it has no offline margins and no prior."""

    arm: str
    join_at: float = Field(0.5, gt=0, lt=1)


class Drift(StrictModel):
    """From ``start_at`` (share of the stream) one RM's margins turn to Gaussian noise of its own
    scale, for the rest of the stream and on the test split."""

    arm: str
    start_at: float = Field(0.5, ge=0, lt=1)


class Feedback(StrictModel):
    """What a router learns from online. ``gold``: the gold label (a supervised contextual bandit:
    an upper bound no RLHF run has); ``budget``: the gold label on a seeded ``share`` of the stream
    only (a human labelling budget); ``consensus``: no label: whether the credited RM agrees with the
    majority sign of ``m`` other RMs drawn per item (their calls are counted; a tied or empty vote
    gives 0.5)."""

    mode: Literal["gold", "budget", "consensus"] = "gold"
    share: float = Field(0.1, gt=0, le=1, description="budget: share of stream items with a label")
    m: StrictInt = Field(3, ge=1, description="consensus: how many other RMs vote")


class Scenario(StrictModel):
    order: Literal["iid", "domain_blocks"] = "iid"
    cold_start: ColdStart | None = None
    drift: Drift | None = None
    feedback: Feedback = Field(default_factory=Feedback)


class ReplaySettings(StrictModel):
    pool: str | None = Field(None, description="a pool config (rmroute.harness.pipelines.pool): benchmark + RMs + cached scores")
    offline: str | None = Field(None, description="an offline-router config; its bundle gives contexts and priors")
    batch_size: StrictInt = Field(32, ge=1)
    on_bad_feedback: Literal["error", "skip"] = "error"
    max_abstention: float | None = Field(
        None, ge=0, le=1, description="fail when an RM's NaN share on a split exceeds this; null = the default "
        "rule: more than its offline-split share + abstention_margin, or every item")
    abstention_margin: float = Field(0.1, ge=0, le=1)
    scenarios: dict[Name, Scenario] = Field(default_factory=lambda: {"iid": Scenario()}, min_length=1,
                                            description="name -> scenario; names are slugged in file names")
    curve_points: StrictInt = Field(200, ge=2)
    folds: StrictInt | None = Field(
        None, ge=2, description="cut the offline+online+test items into this many folds (by item, stratified by "
        "domain); seed s tests fold s mod folds and the offline router is trained per fold; null = the "
        "benchmark's own splits for every seed")
    offline_share: float | None = Field(
        None, gt=0, lt=1, description="with folds: the share of the non-test items that go to the offline split; "
        "null = the benchmark's own offline / (offline + online) ratio")
    permute_arms: bool = Field(True, description="list the pool's RMs in a seeded order per seed (recorded in the run)")


#: the model `rmroute validate` checks a replay config's `settings` against
SETTINGS = ReplaySettings

#: why a replay config's top-level ``data`` is refused (only `rmroute score` reads ``data``)
DATA_IN_REPLAY = ("a replay run reads no `data`: its pairs come from the pool config (settings.pool); put your "
                  "own pairs in that pool config's `pairs:` (docs/data.md, \"Your own pairs\") and drop `data`")

#: the context kinds a router entry can ask for (``context``): see :class:`rmroute.harness.core.config.RouterRef`
CONTEXTS = ("offline", "pair", "prompt")


# ---- data -----------------------------------------------------------------------------------


@dataclass
class Split:
    """One split's pairs: contexts of each kind (an array alone is the ``offline`` kind), margins,
    gold signs, domains and item ids (default: each pair its own item)."""

    contexts: dict[str, np.ndarray] | np.ndarray  # kind -> (N, d_kind) contexts
    margins: np.ndarray  # (N, K) score(A) - score(B), NaN = abstained
    gold: np.ndarray  # (N,) +1 / -1
    domains: list[str]
    items: np.ndarray | None = None  # (N,) global item id (the cluster: pairs of one item share it)

    def __post_init__(self) -> None:
        n = self.margins.shape[0]
        if not isinstance(self.contexts, dict):
            self.contexts = {"offline": np.asarray(self.contexts)}
        self.items = np.arange(n) if self.items is None else np.asarray(self.items, dtype=np.int64)
        bad = {k: x.shape for k, x in self.contexts.items() if x.shape[0] != n}
        if bad or self.gold.shape != (n,) or len(self.domains) != n or self.items.shape != (n,):
            raise ValueError(
                f"replay split: margins have {n} rows, contexts {bad or 'ok'}, gold {self.gold.shape}, "
                f"{len(self.domains)} domains, items {self.items.shape}; they must agree"
            )

    def take(self, idx: np.ndarray) -> "Split":
        return Split({k: x[idx] for k, x in self.contexts.items()}, self.margins[idx], self.gold[idx],
                     [self.domains[i] for i in idx], self.items[idx])

    def with_margins(self, margins: np.ndarray) -> "Split":
        return dataclasses.replace(self, margins=margins)


@dataclass
class ReplayData:
    names: list[str]  # RM names in arm order
    costs: np.ndarray  # (K,) cost per call
    offline: Split
    online: Split
    test: Split
    prior_mean: np.ndarray | None = None  # (K, d) offline RM embeddings (for ``offline`` contexts)
    default_context: str = "offline"  # the contexts of a router entry that names none
    fold: dict[str, int] = field(default_factory=lambda: {"index": 0, "n_folds": 1})
    arm_order: list[str] = field(default_factory=list)  # = names; the permutation this seed used
    inputs: dict[str, str] = field(default_factory=dict)  # sha256 of this seed's inputs

    def __post_init__(self) -> None:
        self.arm_order = list(self.arm_order or self.names)

    @property
    def n_arms(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        """The width of the default contexts."""
        return self.test.contexts[self.default_context].shape[1]


# ---- scenario transforms ----------------------------------------------------------------------


def _arm(data: ReplayData, name: str, what: str) -> int:
    if name not in data.names:
        raise ValueError(f"scenario {what}: arm {name!r} is not in the pool ({', '.join(data.names)})")
    return data.names.index(name)


def apply_scenario(data: ReplayData, scenario: Scenario, order: np.ndarray, seed: int) -> ReplayData:
    """The data as this scenario sees it, with the online split in stream ``order``."""
    data = copy.copy(data)
    online = data.online.take(order)
    offline, test = data.offline, data.test
    n = len(order)
    if scenario.cold_start is not None:
        cold = _arm(data, scenario.cold_start.arm, "cold_start")
        join = int(round(scenario.cold_start.join_at * n))
        m = online.margins.copy()
        m[:join, cold] = np.nan  # absent: a call to it abstains
        online = online.with_margins(m)
        off_m = offline.margins.copy()
        off_m[:, cold] = np.nan  # it was not in the pool when the offline split was scored
        offline = offline.with_margins(off_m)
        if data.prior_mean is not None:
            prior = data.prior_mean.copy()
            prior[cold] = 0.0
            data.prior_mean = prior
    if scenario.drift is not None:
        k = _arm(data, scenario.drift.arm, "drift")
        rng = derived_rng(seed, "replay-drift")
        scale = float(np.nanstd(data.online.margins[:, k])) or 1.0
        start = int(round(scenario.drift.start_at * n))
        m = online.margins.copy()
        m[start:, k] = rng.normal(0.0, scale, size=n - start)
        online = online.with_margins(m)
        t = test.margins.copy()
        t[:, k] = rng.normal(0.0, scale, size=t.shape[0])
        test = test.with_margins(t)
    data.offline, data.online, data.test = offline, online, test
    return data


def stream_order(domains: Sequence[str], scenario: Scenario, rng: np.random.Generator) -> np.ndarray:
    n = len(domains)
    if scenario.order == "iid":
        return rng.permutation(n)
    names = sorted(set(domains))
    blocks = [names[i] for i in rng.permutation(len(names))]
    idx = np.arange(n)
    doms = np.array(domains)
    return np.concatenate([rng.permutation(idx[doms == d]) for d in blocks])


# ---- one run --------------------------------------------------------------------------------


def _items(split: Split, idx: np.ndarray, replay_only: bool, right: np.ndarray) -> list[dict[str, Any]]:
    if replay_only:
        return [{"domain": split.domains[i], "rm_correct": right[i].tolist()} for i in idx]
    return [{"domain": split.domains[i]} for i in idx]


def _route(router, X: np.ndarray, split: Split, idx: np.ndarray, replay_only: bool, right: np.ndarray,
           greedy: bool) -> tuple[Routed, np.ndarray]:
    """Route a batch and decide its pairs from the margins the router paid for, and nothing else;
    where every called RM abstained the router's next-ranked RM is called (``on_abstain="next"``, as
    in training). Returns the routed batch and (b,) each decision margin (NaN: no RM answered)."""
    margins = split.margins[idx]

    def pay(cells: np.ndarray, paid: np.ndarray) -> None:
        paid[cells] = margins[cells]  # the cached scores: only what it paid for

    routed = route(router, X[idx], _items(split, idx, replay_only, right), pay, on_abstain="next", greedy=greedy)
    return routed, decide(router, routed)


def consensus_sign(margins: np.ndarray, credited: np.ndarray, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per item, ``m`` RMs other than its credited one, drawn uniformly without replacement (all others
    when fewer), vote sign(margin) (NaN: no vote). Returns the majority sign per item (0 on a tie or
    no vote) and the (B, K) cells that were asked."""
    B, K = margins.shape
    asked = np.zeros((B, K), dtype=bool)
    keys = rng.random((B, K))
    keys[np.arange(B), credited] = np.inf  # never the credited RM
    take = min(m, K - 1)
    if take > 0:
        picked = np.argsort(keys, axis=1, kind="stable")[:, :take]
        asked[np.arange(B)[:, None], picked] = True
    votes = np.where(asked, np.nan_to_num(np.sign(margins), nan=0.0), 0.0).sum(axis=1)
    return np.sign(votes), asked


def _downsample(curve: np.ndarray, points: int) -> list[float]:
    if curve.size <= points:
        return curve.astype(float).tolist()
    idx = np.unique(np.linspace(0, curve.size - 1, points).round().astype(int))
    return curve[idx].astype(float).tolist()


def replay_one(
    spec: RouterSpec,
    data: ReplayData,
    scenario: Scenario,
    seed: int,
    batch_size: int = 32,
    normalizers: Sequence[Any] = (),
    on_bad_feedback: str = "error",
    curve_points: int = 200,
) -> dict[str, Any]:
    """Run one router on one seed and scenario; returns metrics, per-domain metrics, calls and curves."""
    rng = derived_rng(seed, "replay-stream")
    order = stream_order(data.online.domains, scenario, rng)
    data = apply_scenario(data, scenario, order, seed)
    K = data.n_arms
    kind = spec.context or data.default_context
    if kind not in data.offline.contexts:
        raise ConfigError(f"router {spec.label}: context {kind!r} is not available in this run "
                          f"(available: {', '.join(sorted(data.offline.contexts))})")
    if kind != "offline" and isinstance(spec.params.get("prior_mean"), str):
        raise ConfigError(f"router {spec.label}: prior_mean: offline lives in the offline router's context space; "
                          f"it needs context: offline, not {kind!r}")
    off, on, te = data.offline, data.online, data.test
    X_off, X_on, X_te = off.contexts[kind], on.contexts[kind], te.contexts[kind]
    router = spec.build(K, X_te.shape[1], seed, prior_mean=data.prior_mean if kind == "offline" else None)
    chain = spec.chain(list(normalizers), on_bad_feedback=on_bad_feedback)
    router.fit_offline(X_off, off.margins, off.gold, [{"domain": d} for d in off.domains])

    fb_mode = scenario.feedback
    right_on = correct(on.margins, on.gold)
    n = on.gold.size
    labelled = np.ones(n, dtype=bool)
    if fb_mode.mode == "budget":
        labelled[:] = False
        labelled[derived_rng(seed, "replay-label-budget").permutation(n)[:int(round(fb_mode.share * n))]] = True
    vote_rng = derived_rng(seed, "replay-consensus")
    dec_score = np.zeros(n)
    calls_on = np.zeros((n, K), dtype=bool)
    rewards: list[float] = []
    skipped = 0
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        routed, decision = _route(router, X_on, on, idx, spec.replay_only, right_on, greedy=False)
        dec_score[idx] = score(decision, on.gold[idx])
        calls_on[idx] = routed.calls
        target = on.gold[idx]
        if fb_mode.mode == "consensus":
            target, asked = consensus_sign(on.margins[idx], routed.arms, fb_mode.m, vote_rng)
            calls_on[idx] |= asked  # the voters are paid for (already-called RMs cost nothing more)
        rows, arms = feedback_cells(routed, rows=np.flatnonzero(labelled[idx]))
        if rows.size == 0:
            continue
        credited_margin = routed.margins[rows, arms]
        raw = score(credited_margin, target[rows])
        rewards.extend(score(decision[rows], target[rows]).tolist())  # the reward of the combined decision
        fb = update_router(router, chain, X_on[idx][rows], arms, raw, items=rows_items(routed, rows))
        skipped += int((~np.isfinite(fb)).sum())

    right_te = correct(te.margins, te.gold)
    m = te.gold.size
    test_score = np.zeros(m)
    calls_te = np.zeros((m, K), dtype=bool)
    credited_te = np.zeros(m, dtype=np.int64)
    for start in range(0, m, batch_size):
        idx = np.arange(start, min(start + batch_size, m))
        routed, decision = _route(router, X_te, te, idx, spec.replay_only, right_te, greedy=True)
        test_score[idx] = score(decision, te.gold[idx])
        calls_te[idx], credited_te[idx] = routed.calls, routed.arms

    oracle_on, oracle_te = right_on.any(axis=1), right_te.any(axis=1)
    regret = np.cumsum(oracle_on.astype(float) - dec_score)
    per_domain = {}
    doms = np.array(te.domains)
    for d in sorted(set(te.domains)):
        sel_d = doms == d
        per_domain[d] = {
            "routing_accuracy": float(test_score[sel_d & oracle_te].sum() / max(1, (sel_d & oracle_te).sum())),
            "accuracy": float(test_score[sel_d].mean()),
            "n": int(sel_d.sum()),
            "choice_share": {data.names[k]: float(np.mean(credited_te[sel_d] == k)) for k in range(K)},
        }
    metrics = {
        "test_routing_accuracy": float(test_score[oracle_te].mean()) if oracle_te.any() else float("nan"),
        "test_accuracy": float(test_score.mean()),
        "test_oracle_accuracy": float(oracle_te.mean()),
        "test_calls_per_item": float(calls_te.sum(axis=1).mean()),
        "test_cost_per_item": float((calls_te * data.costs).sum(axis=1).mean()),
        "stream_routing_accuracy": float(dec_score[oracle_on].mean()) if oracle_on.any() else float("nan"),
        "stream_accuracy": float(dec_score.mean()),
        "stream_mean_reward": float(np.mean(rewards)) if rewards else float("nan"),
        "stream_calls_per_item": float(calls_on.sum(axis=1).mean()),
        "stream_regret": float(regret[-1]) if regret.size else 0.0,
        "stream_feedback_items": int(len(rewards)),
        "feedback_skipped": skipped,
    }
    return {
        "metrics": metrics,
        "per_domain": per_domain,
        "rm_calls": {
            "stream_total": int(calls_on.sum()), "test_total": int(calls_te.sum()),
            "stream_per_rm": {data.names[k]: int(calls_on[:, k].sum()) for k in range(K)},
            "test_per_rm": {data.names[k]: int(calls_te[:, k].sum()) for k in range(K)},
        },
        "curves": {
            "regret": _downsample(regret, curve_points),
            "regret_x": _downsample(np.arange(1, n + 1), curve_points),
        },
        "test_outcomes": encode_outcomes(test_score),
        "test_oracle": "".join("1" if r else "0" for r in oracle_te),
        "test_items": te.items.astype(int).tolist(),
        "offline_accuracy": {data.names[k]: float(v) for k, v in enumerate(score(off.margins, off.gold).mean(axis=0))}
        if off.gold.size else {},
        "context": kind,
    }


# ---- the runner: config -> grid -> run files ------------------------------------------------


def check_config(cfg, path, tree) -> None:
    """What `rmroute validate` checks of a replay config beyond its models (raises one ConfigError
    listing every problem): at least one router; ``settings.pool`` is set and loads (its RM names
    are the arms); ``settings.offline``, when set, loads and routes over the same RMs; cold-start
    and drift arms are RMs of the pool; scenario names and router labels each give their own file
    names; no top-level ``data`` (a replay reads its pairs from the pool); every router builds with its params; a router with ``prior_mean: offline`` sees the
    offline contexts; every run id fits in a file name; contexts come from ``settings.offline`` or a
    ``featurizer``."""
    settings: ReplaySettings = settings_of(cfg)
    problems = Problems(path, tree)
    if not cfg.routers:
        problems.add(("routers",), "a replay config needs at least one router")
    if cfg.data:
        problems.add(("data",), DATA_IN_REPLAY)
    names = None
    pool, offline = (config_file_ref(problems, ("settings", key), getattr(settings, key), path)
                     for key in ("pool", "offline"))
    if not settings.pool:
        problems.add(("settings", "pool"), "missing: a replay run needs a pool config (e.g. configs/pool-cpu.yaml)")
    elif pool is not None:
        names = pool_rm_names(problems, ("settings", "pool"), str(pool))
    if settings.offline:
        if offline is not None:
            check_offline_ref(problems, ("settings", "offline"), str(offline), names)
    elif cfg.featurizer is None:
        problems.add(("settings",), "replay needs contexts: set settings.offline (an offline-router config) or a featurizer")
    for i, ref in enumerate(cfg.routers):
        kind = ref.context or ("offline" if settings.offline else "pair")
        if kind == "offline" and not settings.offline:
            problems.add(("routers", i, "context"), "context: offline needs settings.offline (an offline-router config)")
        elif kind != "offline" and isinstance(ref.params.get("prior_mean"), str):
            problems.add(("routers", i, "context"), f"prior_mean: offline lives in the offline router's context space; "
                                                    f"it needs context: offline, not {kind!r}")
    for _, first, _, name in slug_clashes([(s, s) for s in settings.scenarios]):
        problems.add(("settings", "scenarios", name), f"scenario {name!r} gives the same file names as scenario "
                                                      f"{first!r}; rename one")
    if names is not None:
        for scen_name, scen in settings.scenarios.items():
            for what in ("cold_start", "drift"):
                part = getattr(scen, what)
                if part is not None and part.arm not in names:
                    problems.add(("settings", "scenarios", scen_name, what, "arm"),
                                 f"{part.arm!r} is not an RM of the pool {settings.pool} ({', '.join(names)})")
        labels = check_routers(problems, list(enumerate(cfg.routers)), names, bool(settings.offline))
        check_run_ids(problems, [(("routers", i), grid.run_id(scen, label, max(cfg.seeds), "0" * 64))
                                 for scen in settings.scenarios for i, label in labels])
    problems.raise_if_any()


@dataclass
class Base:
    """What every seed's data is cut from: the pool's offline + online + test pairs (in that order)
    with their margins, the features of each context kind, and where each pair came from."""

    pool: Pool
    pairs: list  # PreferencePair, offline + online + test
    margins: np.ndarray  # (N, K) in pool order
    gold: np.ndarray
    domains: list[str]
    items: np.ndarray  # (N,) global item id: pairs sharing metadata["item"] (else their own id) share it
    splits: dict[str, np.ndarray]  # the benchmark's own offline / online / test indices
    features: dict[str, np.ndarray]  # "pair": the featurizer's pair features; "prompt": prompt embeddings
    contexts: dict[str, np.ndarray]  # the same, unit-normalised: the ``pair`` / ``prompt`` contexts of every seed
    bundle: Any  # the offline config's bundle (benchmark splits), or None
    inputs: dict[str, str]
    provenance: dict[str, Any]


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Each row of ``X`` scaled to unit length (an all-zero row stays zero)."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def build_base(cfg, settings: ReplaySettings, log=print) -> Base:
    """The pool's margins, the pair (and, when a router asks, prompt) features and the offline
    bundle's provenance, all cached on disk. Fails with a ScoreError naming the RM when an RM
    abstains far more than it did on the offline split (see
    :func:`rmroute.harness.pipelines.pool.check_abstention`)."""
    pool = build_pool(load_pool_config(settings.pool), log=log)
    rates = pool.abstention_rates()
    problems = check_abstention(rates, settings.max_abstention, settings.abstention_margin)
    if problems:
        raise ScoreError(f"{settings.pool}: " + "; ".join(problems))
    split_names = ("offline", "online", "test")
    pairs = [p for s in split_names for p in pool.splits[s]]
    sizes = [len(pool.splits[s]) for s in split_names]
    bounds = np.cumsum([0] + sizes)
    splits = {s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(split_names)}
    margins = np.concatenate([pool.margins[s] for s in split_names])
    featurizer, bundle = context_source(settings.offline, None if settings.offline else cfg.featurizer, pool.names, log, pool)
    features = {"pair": encode_split(featurizer, pairs, log, "pair contexts")[0]}
    inputs = {"data": pairs_sha(pairs),
              **{f"scores:{name}": arrays_sha256(*(pool.margins[s][:, k] for s in split_names))
                 for k, name in enumerate(pool.names)},
              "features": arrays_sha256(*(features["pair"][splits[s]] for s in split_names))}
    if any(r.context == "prompt" for r in getattr(cfg, "routers", None) or ()):
        params = _featurizer_params(settings, cfg)
        prompt_enc = create_ref("featurizer", {"name": "prompt-encoder", "params": params}, "prompt contexts")
        features["prompt"] = encode_split(prompt_enc, pairs, log, "prompt contexts")[0]
        inputs["prompt_features"] = arrays_sha256(features["prompt"])
    ties = {name: {s: float((pool.margins[s][:, k] == 0).mean()) if pool.margins[s].shape[0] else 0.0
                   for s in pool.margins} for k, name in enumerate(pool.names)}
    return Base(pool=pool, pairs=pairs, margins=margins, gold=np.array([p.gold_sign for p in pairs]),
                domains=[p.domain for p in pairs], items=item_ids(pairs), splits=splits, features=features,
                contexts={k: unit_rows(v) for k, v in features.items()},
                bundle=bundle, inputs=inputs,
                provenance={"rm_abstention": rates, "rm_ties": ties, "compute": describe()})


def _featurizer_params(settings: ReplaySettings, cfg) -> dict[str, Any]:
    """The params of the featurizer the run's pair features come from (the offline config's, else
    the config's own), so prompt contexts use the same encoder."""
    if settings.offline:
        _, off = load_offline_config(settings.offline)
        return dict(off.featurizer.params)
    return dict(cfg.featurizer.params)


def fold_indices(base: Base, n_folds: int, seed: int, offline_share: float | None) -> dict[str, np.ndarray]:
    """The offline / online / test pair indices of ``seed``'s fold: items are dealt into ``n_folds``
    folds (per domain, in an order seeded by ``seed // n_folds``: seeds 0..F-1 are the F folds of
    one assignment, seeds F..2F-1 of the next, so seeds vary the split as well as the stream), seed
    s tests fold s mod n_folds, and the other items go to offline (``offline_share`` of each domain's items,
    default the benchmark's ratio) or online in an order drawn from the run's seed."""
    share = offline_share
    if share is None:
        n_off, n_on = base.splits["offline"].size, base.splits["online"].size
        share = n_off / max(1, n_off + n_on)
    by_domain = groups_by_domain(base.items.tolist(), base.domains)
    # cross-fitting: every F seeds a new assignment
    fold_of = deal_folds(by_domain, n_folds, derived_rng(seed // n_folds, "replay-folds"))
    test_fold = seed % n_folds
    split_rng = derived_rng(seed, "replay-fold-split")
    offline_items: set[int] = set()
    for d, its in by_domain.items():
        rest = [i for i in its if fold_of[i] != test_fold]
        pick = split_rng.permutation(len(rest))[:int(round(share * len(rest)))]
        offline_items.update(rest[j] for j in pick)
    where = np.array(["test" if fold_of[i] == test_fold else "offline" if i in offline_items else "online"
                      for i in base.items.tolist()])
    return {s: np.flatnonzero(where == s) for s in ("offline", "online", "test")}


def seed_data(base: Base, settings: ReplaySettings, seed: int, log=print) -> ReplayData:
    """One seed's :class:`ReplayData`: its split (the benchmark's, or its fold), the offline bundle
    for that split (trained per fold, cached), its contexts of every kind and its arm order."""
    pool = base.pool
    if settings.folds:
        idx = fold_indices(base, settings.folds, seed, settings.offline_share)
        fold = {"index": seed % settings.folds, "n_folds": settings.folds}
    else:
        idx, fold = base.splits, {"index": 0, "n_folds": 1}
    contexts = dict(base.contexts)
    inputs = dict(base.inputs)
    prior = None
    bundle = base.bundle
    if bundle is not None and settings.folds:
        off = idx["offline"]
        bundle = fold_bundle(settings.offline, base.features["pair"][off], base.margins[off], base.gold[off],
                             [base.domains[i] for i in off], [base.pairs[i].id for i in off], pool.names, seed, log)
    if bundle is not None:
        contexts["offline"] = bundle.features_to_contexts(base.features["pair"])
        prior = np.asarray(bundle.prior_means(), dtype=np.float64)
        inputs["offline_bundle"] = arrays_sha256(*(bundle.tensors[k] for k in sorted(bundle.tensors)))
    K = len(pool.names)
    perm = arm_order(seed, K, settings.permute_arms)
    margins = base.margins[:, perm]

    def split(name: str) -> Split:
        ix = idx[name]
        return Split({k: v[ix] for k, v in contexts.items()}, margins[ix], base.gold[ix],
                     [base.domains[i] for i in ix], base.items[ix])

    names = [pool.names[k] for k in perm]
    costs = np.array(pool.costs, dtype=np.float64) if len(pool.costs) else np.ones(K)
    return ReplayData(names=names, costs=costs[perm], offline=split("offline"), online=split("online"),
                      test=split("test"), prior_mean=None if prior is None else prior[perm],
                      default_context="offline" if bundle is not None else "pair", fold=fold, arm_order=names,
                      inputs=inputs)


def _run_cell(spec: RouterSpec, data: ReplayData, scenario: Scenario, seed: int, settings: ReplaySettings,
              normalizers: Sequence[Any]) -> grid.Outcome:
    """One grid cell; a router that raises is a failed cell."""
    return grid.attempt(replay_one, spec, data, scenario, seed, settings.batch_size, normalizers,
                        settings.on_bad_feedback, settings.curve_points)


def _ray_cells(todo: list[grid.Cell], data: dict[int, ReplayData], settings, normalizers, address):
    """Run the cells as Ray tasks, one CPU each (local Ray with 2 CPUs, or the cluster at
    ``address``); yields their outcomes in order. A task only computes and returns (the driver
    writes the run files), so Ray's retry of a task whose worker died (:func:`grid.ray_task`) gives
    the same outcome; a task that failed for good is a failed cell naming Ray's error."""
    with grid.ray_session(address) as ray:
        task = grid.ray_task(ray, _run_cell, num_cpus=1)
        refs_by_seed = {seed: ray.put(d) for seed, d in data.items()}
        refs = [task.remote(c.item, refs_by_seed[c.seed], settings.scenarios[c.scenario], c.seed, settings, list(normalizers))
                for c in todo]
        for outcome, error in grid.ray_results(ray, refs):
            yield outcome if error is None else grid.Outcome("failed", error, None, 0.0)


@dataclass
class Prepared:
    """What a replay grid runs on: the pool's RM names (in the config's order), the data info and
    provenance every run file records, and ``for_seed(seed)``: that seed's :class:`ReplayData`."""

    names: list[str]
    info: dict[str, Any]
    provenance: dict[str, Any]
    for_seed: Any  # Callable[[int], ReplayData]


def build_data(cfg, settings: ReplaySettings, log=print) -> Prepared:
    """The run's :class:`Prepared` data: :func:`build_base` now, :func:`seed_data` per seed on first use."""
    base = build_base(cfg, settings, log)
    cache: dict[int, ReplayData] = {}

    def for_seed(seed: int) -> ReplayData:
        if seed not in cache:
            cache[seed] = seed_data(base, settings, seed, log)
        return cache[seed]

    info = {"name": base.pool.data_name,
            "sha256": base.inputs["data"], "n": len(base.pairs)}
    return Prepared(list(base.pool.names), info, base.provenance, for_seed)


def run(cfg, config_path, out_dir, resume: bool = False, only: dict[str, Any] | None = None,
        executor: str = "local", address: str | None = None) -> list[Path]:
    """Run the config's grid (router × seed × scenario), one run JSON each; returns their paths.

    ``resume`` skips cells whose run file is already there, self-consistent and ok; ``only`` restricts the grid
    to one cell (``{"label", "seed", "scenario"}``; used by `rmroute reproduce`). ``executor="ray"``
    runs the cells as Ray tasks (local Ray, or the cluster at ``address``); every cell is
    deterministic, so the results are identical to the local executor's.
    """
    grid.check_executor(executor)
    settings: ReplaySettings = settings_of(cfg)
    if not settings.pool:
        raise ConfigError(f"{config_path}: settings.pool is missing: a replay run needs a pool config (e.g. configs/pool-cpu.yaml)")
    if cfg.data:
        raise ConfigError(f"{config_path}: data: {DATA_IN_REPLAY}")
    settings = resolved_settings(settings, config_path)  # settings.pool / offline by the path rule (harness.paths)
    prepared = build_data(cfg, settings)
    pool_names = prepared.names
    specs = [(spec.label, spec) for spec in resolve_routers(cfg.routers, pool_names)]
    runs = grid.Grid(cfg, config_path, out_dir, "replay")
    cells = runs.select([grid.Cell(label, seed, scen, item=spec) for scen in settings.scenarios
                         for label, spec in specs for seed in cfg.seeds], only)
    todo = runs.pending(cells, resume)
    data = {seed: prepared.for_seed(seed) for seed in sorted({c.seed for c in todo})}
    # what runs: each spec with its `arm` moved to its seed's arm order (the run file records the config's)
    moved = [dataclasses.replace(c, item=c.item.in_arm_order(pool_names, data[c.seed].names)) for c in todo]
    if executor == "ray":
        results = _ray_cells(moved, data, settings, cfg.normalizers, address)
    else:
        results = (_run_cell(c.item, data[c.seed], settings.scenarios[c.scenario], c.seed, settings, cfg.normalizers)
                   for c in moved)
    with progress_bar() as progress:
        task = progress.add_task(f"replay runs ({executor})", total=len(todo))
        for cell, outcome in zip(todo, results):
            spec, out, d = cell.item, outcome.value, data[cell.seed]
            scen = settings.scenarios[cell.scenario]
            extra = {"learns": spec.learns, "replay_only": spec.replay_only, **prepared.provenance,
                     "fold": d.fold, "arm_order": d.arm_order, "feedback": scen.feedback.model_dump(mode="json")}
            if out:
                extra.update({k: out[k] for k in ("curves", "test_outcomes", "test_oracle", "test_items",
                                                  "offline_accuracy", "context")})
            runs.write(
                cell, outcome,
                router=RouterInfo(name=spec.name, params=grid.jsonable_params(spec.params), label=cell.label),
                reward_models=pool_names, data=DataInfo(**prepared.info),
                metrics=out["metrics"] if out else {}, per_domain=out["per_domain"] if out else {},
                rm_calls=out["rm_calls"] if out else {},
                command=f"rmroute reproduce {runs.path(cell)}", inputs=d.inputs, extra=extra,
            )
            progress.advance(task)
    return [runs.path(c) for c in cells]


def plan(cfg, config_path) -> str:
    """What `rmroute run --dry-run` prints for a replay config (nothing is loaded or scored)."""
    settings: ReplaySettings = settings_of(cfg)
    routers = [r.label or r.name for r in cfg.routers]
    n = len(routers) * len(cfg.seeds) * len(settings.scenarios)
    return "\n".join([
        f"replay {config_path}: {len(routers)} router entr(ies) × {len(cfg.seeds)} seed(s) × "
        f"{len(settings.scenarios)} scenario(s) = {n} runs (`single` with arm: all expands to one per RM)",
        f"  pool {settings.pool} (RMs trained/scored on first use, cached)",
        f"  offline router {settings.offline or '(none: featurizer contexts)'}",
        f"  routers: {', '.join(routers)}",
        f"  scenarios: {', '.join(settings.scenarios)}; seeds: {cfg.seeds}",
    ])
