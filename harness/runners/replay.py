"""The replay benchmark: routers head-to-head on cached RM scores, no policy training.

For each (router, seed, scenario): routers that learn offline fit on the `offline` split (where
every RM's margin is known); the `online` split streams in a seeded order in batches; the router
selects RM(s) per pair; the pair is decided from the margins of the RMs it called (and nothing
else); the router receives feedback only for the RMs it called (1 when the RM agreed with the gold
label, else 0, through the normalizer chain); afterwards the router, frozen and greedy, decides the
`test` split. Every RM call is counted.

The core (:func:`replay_one`) is pure numpy over a :class:`ReplayData`; it routes and learns through
:mod:`rmroute.harness.routing` (no fallback on abstention, every called RM learns). :func:`run`
builds that data from the pool and the offline bundle a config names and writes one run JSON per
grid cell (:mod:`rmroute.harness.runners.grid`: run ids, ``--only``, ``--resume``, failed cells).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field, StrictInt

from rmroute.harness.analysis import correct
from rmroute.harness.core.config import Name, Problems, StrictModel, check_run_ids, slug_clashes
from rmroute.harness.core.errors import ConfigError, ScoreError
from rmroute.harness.determinism import arrays_sha256, derived_rng, describe
from rmroute.harness.pipelines.offline import check_offline_ref, context_source
from rmroute.harness.pipelines.pool import Pool, build_pool, check_abstention, load_pool_config, pairs_sha, pool_rm_names
from rmroute.harness.progress import progress_bar
from rmroute.harness.results import DataInfo, RouterInfo
from rmroute.harness.routing import (Routed, RouterSpec, check_routers, decide, feedback_cells, resolve_routers,
                                     route, update_router)
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


class Scenario(StrictModel):
    order: Literal["iid", "domain_blocks"] = "iid"
    cold_start: ColdStart | None = None
    drift: Drift | None = None


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


#: the model `rmroute validate` checks a replay config's `settings` against
SETTINGS = ReplaySettings


# ---- data -----------------------------------------------------------------------------------


@dataclass
class Split:
    X: np.ndarray  # (N, d) contexts
    margins: np.ndarray  # (N, K) score(A) - score(B), NaN = abstained
    gold: np.ndarray  # (N,) +1 / -1
    domains: list[str]

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        if self.margins.shape[0] != n or self.gold.shape != (n,) or len(self.domains) != n:
            raise ValueError(
                f"replay split: X has {n} rows, margins {self.margins.shape}, gold {self.gold.shape}, "
                f"{len(self.domains)} domains; they must agree"
            )

    def take(self, idx: np.ndarray) -> "Split":
        return Split(self.X[idx], self.margins[idx], self.gold[idx], [self.domains[i] for i in idx])


@dataclass
class ReplayData:
    names: list[str]  # RM names in arm order
    costs: np.ndarray  # (K,) cost per call
    offline: Split
    online: Split
    test: Split
    prior_mean: np.ndarray | None = None  # (K, d) offline RM embeddings, for routers that take a prior

    @property
    def n_arms(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return self.test.X.shape[1]


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
        online = Split(online.X, m, online.gold, online.domains)
        off_m = offline.margins.copy()
        off_m[:, cold] = np.nan  # it was not in the pool when the offline split was scored
        offline = Split(offline.X, off_m, offline.gold, offline.domains)
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
        online = Split(online.X, m, online.gold, online.domains)
        t = test.margins.copy()
        t[:, k] = rng.normal(0.0, scale, size=t.shape[0])
        test = Split(test.X, t, test.gold, test.domains)
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


def _decide(router, split: Split, idx: np.ndarray, replay_only: bool, right: np.ndarray,
            greedy: bool) -> tuple[Routed, np.ndarray]:
    """Route a batch and decide its pairs from the margins the router paid for, and nothing else:
    a pair whose called RMs all abstained has no decision, which counts as wrong.

    Returns the routed batch and (b,) whether each decision has the gold sign."""
    margins = split.margins[idx]

    def pay(cells: np.ndarray, paid: np.ndarray) -> None:
        paid[cells] = margins[cells]  # the cached scores: only what it paid for

    routed = route(router, split.X[idx], _items(split, idx, replay_only, right), pay, on_abstain="wrong", greedy=greedy)
    return routed, correct(decide(router, routed), split.gold[idx])


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
    router = spec.build(K, data.dim, seed, prior_mean=data.prior_mean)
    chain = spec.chain(list(normalizers), on_bad_feedback=on_bad_feedback)

    off = data.offline
    router.fit_offline(off.X, off.margins, off.gold, [{"domain": d} for d in off.domains])

    on = data.online
    right_on = correct(on.margins, on.gold)
    n = on.gold.size
    dec_right = np.zeros(n, dtype=bool)
    calls_on = np.zeros((n, K), dtype=bool)
    rewards: list[float] = []
    skipped = 0
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        routed, dec_right[idx] = _decide(router, on, idx, spec.replay_only, right_on, greedy=False)
        calls_on[idx] = routed.calls
        rows, arms = feedback_cells(routed, learn="called")
        raw = right_on[idx][rows, arms].astype(np.float64)
        rewards.extend(raw[arms == routed.arms[rows]].tolist())
        fb = update_router(router, chain, on.X[idx][rows], arms, raw)
        skipped += int((~np.isfinite(fb)).sum())

    te = data.test
    right_te = correct(te.margins, te.gold)
    m = te.gold.size
    test_right = np.zeros(m, dtype=bool)
    calls_te = np.zeros((m, K), dtype=bool)
    credited_te = np.zeros(m, dtype=np.int64)
    for start in range(0, m, batch_size):
        idx = np.arange(start, min(start + batch_size, m))
        routed, test_right[idx] = _decide(router, te, idx, spec.replay_only, right_te, greedy=True)
        calls_te[idx], credited_te[idx] = routed.calls, routed.arms

    oracle_on, oracle_te = right_on.any(axis=1), right_te.any(axis=1)
    regret = np.cumsum(oracle_on.astype(int) - dec_right.astype(int))
    per_domain = {}
    doms = np.array(te.domains)
    for d in sorted(set(te.domains)):
        sel_d = doms == d
        per_domain[d] = {
            "routing_accuracy": float(test_right[sel_d & oracle_te].sum() / max(1, (sel_d & oracle_te).sum())),
            "accuracy": float(test_right[sel_d].mean()),
            "n": int(sel_d.sum()),
            "choice_share": {data.names[k]: float(np.mean(credited_te[sel_d] == k)) for k in range(K)},
        }
    metrics = {
        "test_routing_accuracy": float(test_right[oracle_te].mean()) if oracle_te.any() else float("nan"),
        "test_accuracy": float(test_right.mean()),
        "test_oracle_accuracy": float(oracle_te.mean()),
        "test_calls_per_item": float(calls_te.sum(axis=1).mean()),
        "test_cost_per_item": float((calls_te * data.costs).sum(axis=1).mean()),
        "stream_routing_accuracy": float(dec_right[oracle_on].mean()) if oracle_on.any() else float("nan"),
        "stream_accuracy": float(dec_right.mean()),
        "stream_mean_reward": float(np.mean(rewards)) if rewards else float("nan"),
        "stream_calls_per_item": float(calls_on.sum(axis=1).mean()),
        "stream_regret": int(regret[-1]) if regret.size else 0,
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
        "test_outcomes": "".join("1" if r else "0" for r in test_right),
        "test_oracle": "".join("1" if r else "0" for r in oracle_te),
    }


# ---- the runner: config -> grid -> run files ------------------------------------------------


def check_config(cfg, path, tree) -> None:
    """What `rmroute validate` checks of a replay config beyond its models (raises one ConfigError
    listing every problem): at least one router; ``settings.pool`` is set and loads (its RM names
    are the arms); ``settings.offline``, when set, loads and routes over the same RMs; cold-start
    and drift arms are RMs of the pool; scenario names and router labels each give their own file
    names; every router builds with its params; every run id fits in a file name; contexts come
    from ``settings.offline`` or a ``featurizer``."""
    settings: ReplaySettings = settings_of(cfg)
    problems = Problems(path, tree)
    if not cfg.routers:
        problems.add(("routers",), "a replay config needs at least one router")
    names = None
    if not settings.pool:
        problems.add(("settings", "pool"), "missing: a replay run needs a pool config (e.g. configs/pool-cpu.yaml)")
    else:
        names = pool_rm_names(problems, ("settings", "pool"), settings.pool)
    if settings.offline:
        check_offline_ref(problems, ("settings", "offline"), settings.offline, names)
    elif cfg.featurizer is None:
        problems.add(("settings",), "replay needs contexts: set settings.offline (an offline-router config) or a featurizer")
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


def build_data(cfg, settings: ReplaySettings, log=print) -> tuple[ReplayData, dict[str, Any], dict[str, Any]]:
    """The pool's margins and the offline bundle's contexts, as a ReplayData (all cached on disk),
    the data info, and what every run file records of its inputs (``inputs``: sha256 per input;
    ``rm_abstention``: each RM's NaN share per split). Fails with a ScoreError naming the RM when an
    RM abstains far more than it did on the offline split (see :func:`rmroute.harness.pipelines.pool.check_abstention`)."""
    pool = build_pool(load_pool_config(settings.pool), log=log)
    rates = pool.abstention_rates()
    problems = check_abstention(rates, settings.max_abstention, settings.abstention_margin)
    if problems:
        raise ScoreError(f"{settings.pool}: " + "; ".join(problems))
    contexts, prior, inputs = _contexts(cfg, settings, pool, log)

    def split(name: str) -> Split:
        pairs = pool.splits[name]
        return Split(contexts[name], pool.margins[name], pool.gold(name), [p.domain for p in pairs])

    data = ReplayData(names=list(pool.names), costs=np.array(pool.costs), offline=split("offline"),
                      online=split("online"), test=split("test"), prior_mean=prior)
    used = [p for s in ("offline", "online", "test") for p in pool.splits[s]]
    info = {"name": f"{pool.config.benchmark.suite}@seed{pool.config.benchmark.seed}",
            "sha256": pairs_sha(used), "n": len(used)}
    splits = ("offline", "online", "test")
    inputs = {"data": info["sha256"],
              **{f"scores:{name}": arrays_sha256(*(pool.margins[s][:, k] for s in splits))
                 for k, name in enumerate(pool.names)},
              **inputs}
    return data, info, {"inputs": inputs, "rm_abstention": rates, "compute": describe()}


def _contexts(cfg, settings: ReplaySettings, pool: Pool, log) -> tuple[dict[str, np.ndarray], np.ndarray | None, dict[str, str]]:
    """Contexts per split, the prior means (or None), and the sha256 of the features and the bundle.
    The offline bundle is trained first when missing, from ``pool`` when it is the offline config's
    pool, so one run builds the pool once."""
    splits = ("offline", "online", "test")

    def embed(featurizer) -> dict[str, np.ndarray]:
        return {s: np.asarray(featurizer.embed_pairs([p.prompt for p in pool.splits[s]],
                                                     [p.response_a for p in pool.splits[s]],
                                                     [p.response_b for p in pool.splits[s]]), dtype=np.float64)
                for s in splits}

    featurizer, bundle = context_source(settings.offline, None if settings.offline else cfg.featurizer, pool.names, log, pool)
    features = embed(featurizer)
    hashes = {"features": arrays_sha256(*(features[s] for s in splits))}
    if bundle is None:
        return features, None, hashes
    ctx = {s: bundle.features_to_contexts(features[s]) for s in splits}
    hashes["offline_bundle"] = arrays_sha256(*(bundle.tensors[k] for k in sorted(bundle.tensors)))
    return ctx, np.asarray(bundle.prior_means(), dtype=np.float64), hashes


def _run_cell(spec: RouterSpec, data: ReplayData, scenario: Scenario, seed: int, settings: ReplaySettings,
              normalizers: Sequence[Any]) -> grid.Outcome:
    """One grid cell; a router that raises is a failed cell."""
    return grid.attempt(replay_one, spec, data, scenario, seed, settings.batch_size, normalizers,
                        settings.on_bad_feedback, settings.curve_points)


def _ray_cells(todo: list[grid.Cell], data, settings, normalizers, address):
    """Run the cells as Ray tasks (local Ray with 2 CPUs, or the cluster at ``address``); yields in order."""
    with grid.ray_session(address) as ray:
        task = ray.remote(num_cpus=1)(_run_cell)
        data_ref = ray.put(data)
        refs = [task.remote(c.item, data_ref, settings.scenarios[c.scenario], c.seed, settings, list(normalizers))
                for c in todo]
        yield from ray.get(refs)


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
    data, data_info, provenance = build_data(cfg, settings)
    specs = [(spec.label, spec) for spec in resolve_routers(cfg.routers, data.names)]
    runs = grid.Grid(cfg, config_path, out_dir, "replay")
    cells = runs.select([grid.Cell(label, seed, scen, item=spec) for scen in settings.scenarios
                         for label, spec in specs for seed in cfg.seeds], only)
    todo = runs.pending(cells, resume)
    if executor == "ray":
        results = _ray_cells(todo, data, settings, cfg.normalizers, address)
    else:
        results = (_run_cell(c.item, data, settings.scenarios[c.scenario], c.seed, settings, cfg.normalizers)
                   for c in todo)
    with progress_bar() as progress:
        task = progress.add_task(f"replay runs ({executor})", total=len(todo))
        for cell, outcome in zip(todo, results):
            spec, out = cell.item, outcome.value
            entry_meta = {"learns": spec.learns, "replay_only": spec.replay_only}
            runs.write(
                cell, outcome,
                router=RouterInfo(name=spec.name, params=grid.jsonable_params(spec.params), label=cell.label),
                reward_models=list(data.names), data=DataInfo(**data_info),
                metrics=out["metrics"] if out else {}, per_domain=out["per_domain"] if out else {},
                rm_calls=out["rm_calls"] if out else {},
                command=f"rmroute reproduce {runs.path(cell)}", inputs=provenance["inputs"],
                extra={**entry_meta, "rm_abstention": provenance["rm_abstention"], "compute": provenance["compute"],
                       "curves": out["curves"] if out else {},
                       "test_outcomes": out["test_outcomes"] if out else "",
                       "test_oracle": out["test_oracle"] if out else ""},
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
