"""`rmroute offline train CONFIG` and `rmroute offline eval CONFIG [--json]` (see configs/offline-cpu.yaml).

    name: offline-cpu-v1
    pool: configs/pool-cpu.yaml              # a rmroute.harness.pipelines.pool PoolConfig (scores come from the score cache)
    featurizer: {name: pair-encoder, params: {}}
    heads: {bt: 1.0, cls: 0.0, reg: 0.0}
    seeds: [0, 1, 2, 3, 4]
    bundle_dir: $RMROUTE_CACHE/offline/offline-cpu-v1

Train: build (or load from the score cache) the pool, encode every pair of ``encode_splits`` once
through the featurizer's embedding cache, train one offline router per seed on ``train_split``
(early stopping on a validation part of it) and write one bundle per seed to
``<bundle_dir>/seed-<s>/`` plus ``<bundle_dir>/train.json``.

Eval: routing accuracy (the share of pairs where the chosen RM prefers the gold response, over
pairs where at least one RM does) on ``eval_split``, overall and per domain, for the offline
router's argmax (mean over seeds) and the baselines: every single RM, random (expected value),
majority vote (ties count 0.5), mean-ensemble (z-scored with ``train_split`` statistics),
domain-best (chosen on ``train_split``) and the oracle. Written to ``<bundle_dir>/eval.json``.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import Field, field_validator, model_validator

from rmroute.harness import analysis as A
from rmroute.harness.core.config import PluginRef, Problems, StrictModel, line_of, read_yaml_mapping, validate_model
from rmroute.harness.core.errors import ConfigError, NotBuiltError, PluginError, RmrouteError
from rmroute.harness.core.plugins import check_params, create, create_ref, get_registry
from rmroute.harness.core.types import Selection
from rmroute.harness.pipelines.offline_model import (BundleError, OfflineBundle, OfflineTrainSettings, bundle_data_sha256,
                                                     save_bundle, train_offline_router)
from rmroute.harness.pipelines.pool import Pool, build_pool, load_pool_config, pool_rm_names
from rmroute.harness.paths import expand_path, resolve_config_path
from rmroute.harness.results import atomic_write_text

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class HeadWeightsConfig(StrictModel):
    bt: float = Field(1.0, ge=0)
    cls: float = Field(0.0, ge=0)
    reg: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _one_on(self) -> "HeadWeightsConfig":
        if not (self.bt or self.cls or self.reg):
            raise ValueError("at least one head weight must be > 0")
        return self


class BalanceConfig(StrictModel):
    bt: bool = False
    cls: bool = False


class ScalesConfig(StrictModel):
    bt: float = Field(1.0, gt=0)
    cls: float = Field(1.0, gt=0)
    reg: float = Field(1.0, gt=0)


class OfflineConfig(StrictModel):
    name: str = "offline"
    description: str = ""
    pool: str = Field(description="path of a pool config (rmroute.harness.pipelines.pool); relative to this file's folder when "
                      "it is there, else to the working directory (rmroute.harness.paths)")
    featurizer: PluginRef = Field(default_factory=lambda: PluginRef(name="pair-encoder"))
    heads: HeadWeightsConfig = Field(default_factory=HeadWeightsConfig)
    route_head: str = "auto"
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    scales: ScalesConfig = Field(default_factory=ScalesConfig)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    epochs: int = Field(100, ge=1)
    patience: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    dim: int | None = Field(None, ge=1, description="d of the context x; null = the encoder's width")
    finetune_encoder: bool = False
    device: str = "cpu"
    threads: int = Field(1, ge=0, description="torch CPU threads while training; 0 = torch's default")
    train_split: str = "offline"
    eval_split: str = "test"
    encode_splits: list[str] = Field(default_factory=lambda: ["offline", "online", "test"])
    bundle_dir: str = "$RMROUTE_CACHE/offline/offline"

    @field_validator("route_head")
    @classmethod
    def _head(cls, v: str) -> str:
        if v not in ("auto", "bt", "cls", "reg"):
            raise ValueError("route_head must be auto, bt, cls or reg")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v


def load_offline_config(path: str | Path) -> tuple[Path, OfflineConfig]:
    path, data, tree = read_yaml_mapping(path, "offline router config")
    cfg = validate_model(OfflineConfig, path, data, tree)
    try:
        check_params(get_registry().get("featurizer", cfg.featurizer.name), dict(cfg.featurizer.params))
    except PluginError as exc:
        raise ConfigError(f"{path}:{line_of(tree, ('featurizer',)) or '?'}: featurizer: {exc}") from None
    if cfg.finetune_encoder:
        raise NotBuiltError(
            f"{path}: finetune_encoder: true is not built; the CPU path trains the projection and heads on "
            "a frozen encoder's cached embeddings (docs/offline-router.md)"
        )
    return path, cfg


def bundle_root(cfg: OfflineConfig) -> Path:
    return expand_path(cfg.bundle_dir)


def seed_dir(cfg: OfflineConfig, seed: int) -> Path:
    return bundle_root(cfg) / f"seed-{seed}"


def pool_path(cfg: OfflineConfig, config_path: Path) -> Path:
    """The pool config an offline config names: its ``pool`` by the path rule of
    :mod:`rmroute.harness.paths` (relative to the offline config's folder when the file is there,
    else to the working directory); the error names the file, the key and every path tried."""
    return resolve_config_path(cfg.pool, "pool", config_path)


def load_pool(cfg: OfflineConfig, config_path: Path, log: Log, built: Pool | None = None) -> Pool:
    """The built pool named by the config: ``built`` when it is that pool (a replay run passes the
    pool it has just built), else built now (scores come from the score cache when already built)."""
    pool_cfg = load_pool_config(pool_path(cfg, config_path))
    same = built is not None and built.config.model_dump() == pool_cfg.model_dump()  # what it says, wherever it was read
    pool = built if same else build_pool(pool_cfg, show_progress=False, log=log)
    for split in (cfg.train_split, cfg.eval_split):
        if split not in pool.margins:
            raise ConfigError(f"{config_path}: split {split!r} has no scores in pool {pool_cfg.name} "
                              f"(scored: {', '.join(pool.margins)})")
    return pool


def make_featurizer(cfg: OfflineConfig):
    """The featurizer the offline config names (its contexts come from it)."""
    return create_ref("featurizer", cfg.featurizer)


def featurizer_spec(cfg: OfflineConfig, featurizer: Any) -> dict[str, Any]:
    ident = getattr(featurizer, "identity", None)
    return {"name": cfg.featurizer.name, "params": dict(cfg.featurizer.params),
            "identity": ident() if callable(ident) else ident}


def encode_split(featurizer: Any, pairs: list, log: Log, split: str) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 10 or done == total:
            last[0] = time.perf_counter()
            log(f"[offline] encoding {split}: {done}/{total} new texts")

    prompts = [p.prompt for p in pairs]
    a, b = [p.response_a for p in pairs], [p.response_b for p in pairs]
    takes_progress = "progress" in inspect.signature(featurizer.embed_pairs).parameters
    feats = featurizer.embed_pairs(prompts, a, b, progress=progress) if takes_progress else featurizer.embed_pairs(prompts, a, b)
    return np.asarray(feats, dtype=np.float64), time.perf_counter() - t0


def train_settings(cfg: OfflineConfig) -> OfflineTrainSettings:
    """The offline config's training options as the trainer takes them."""
    return OfflineTrainSettings(
        dim=cfg.dim, heads=cfg.heads.model_dump(), route_head=cfg.route_head,
        bt_scale=cfg.scales.bt, cls_scale=cfg.scales.cls, reg_scale=cfg.scales.reg,
        balance_bt=cfg.balance.bt, balance_cls=cfg.balance.cls, val_fraction=cfg.val_fraction,
        epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size, lr=cfg.lr,
        weight_decay=cfg.weight_decay, device=cfg.device, threads=cfg.threads,
    )


# ---- train ------------------------------------------------------------------------------------
def offline_train(config_path: str | Path, log: Log = _stderr, pool: Pool | None = None) -> dict[str, Any]:
    """Train one offline router per seed and write the bundles; returns the summary (also in train.json).
    ``pool``: an already built pool, used when it is the one the config names (see :func:`load_pool`)."""
    path, cfg = load_offline_config(config_path)
    t_all = time.perf_counter()
    pool = load_pool(cfg, path, log, pool)
    featurizer = make_featurizer(cfg)
    spec = featurizer_spec(cfg, featurizer)

    encode_s: dict[str, float] = {}
    features: dict[str, np.ndarray] = {}
    for split in dict.fromkeys(list(cfg.encode_splits) + [cfg.train_split, cfg.eval_split]):
        if split not in pool.splits:
            raise ConfigError(f"{path}: encode_splits names {split!r}, which the benchmark lacks ({', '.join(pool.splits)})")
        features[split], encode_s[split] = encode_split(featurizer, pool.splits[split], log, split)
        log(f"[offline] features for {split}: {features[split].shape} in {encode_s[split]:.1f}s")

    split = cfg.train_split
    pairs, margins, gold = pool.splits[split], pool.margins[split], pool.gold(split)
    data_hash = bundle_data_sha256(spec["identity"] or json.dumps(spec, sort_keys=True), [p.id for p in pairs], margins, gold, pool.names)
    settings = train_settings(cfg)
    per_seed = {}
    t_train = time.perf_counter()
    for seed in cfg.seeds:
        res = train_offline_router(features[split], margins, gold, settings, seed=seed, strata=pool.domains(split))
        out = save_bundle(seed_dir(cfg, seed), res, pool.names, spec, data_hash,
                          config=cfg.model_dump(mode="json"), extra_metrics={"pool": pool.config.name})
        per_seed[str(seed)] = {"bundle": str(out), **res.metrics}
        log(f"[offline] seed {seed}: best epoch {res.metrics['best_epoch']}, val routing acc "
            f"{res.metrics['val_routing_accuracy']:.4f}, {res.metrics['train_s']:.1f}s -> {out}")
    train_s = time.perf_counter() - t_train
    summary = {
        "config": str(path), "name": cfg.name, "pool": pool.config.name, "rm_names": pool.names,
        "featurizer": spec, "data_sha256": data_hash, "seeds": per_seed,
        "timings": {"encode_s": encode_s, "encode_total_s": sum(encode_s.values()), "train_s": train_s,
                    "total_s": time.perf_counter() - t_all, "pool": pool.timings},
    }
    atomic_write_text(bundle_root(cfg) / "train.json", json.dumps(summary, indent=2, default=float) + "\n")
    return summary


# ---- eval -------------------------------------------------------------------------------------
def majority_right(margins: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N,) expected correctness of a majority vote of sign(margin): 1, 0, or 0.5 on a tie.

    The votes for the gold response are the RMs :func:`rmroute.harness.analysis.correct` counts
    right, those against it the RMs right about the other response (0 and NaN cast no vote). It
    differs from ``correct`` in one place: a tied vote counts 0.5 (the expected value of breaking the
    tie by a coin flip), where ``correct`` counts a tied margin as wrong."""
    g = np.asarray(gold)
    pro = A.correct(margins, g).sum(1)
    con = A.correct(margins, -g).sum(1)
    return np.where(pro > con, 1.0, np.where(pro == con, 0.5, 0.0))


def mean_ensemble_right(train_margins: np.ndarray, margins: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N,) correctness of the mean of per-RM z-scores (train-split statistics; rmroute.routers.baselines
    semantics): :func:`rmroute.harness.analysis.correct` of the mean z-score (NaN, no RM answered,
    counts 0), except that a mean of exactly 0 counts 0.5, as a tied majority vote does."""
    K = margins.shape[1]
    ens = create("router", "mean-ensemble", n_arms=K, dim=1)
    ens.fit_offline(None, train_margins, np.ones(train_margins.shape[0]))
    sel = Selection(arms=np.zeros(margins.shape[0], dtype=np.int64), calls=np.ones(margins.shape, dtype=bool))
    z = np.asarray(ens.combine(sel, margins), dtype=np.float64)
    return np.where(z == 0, 0.5, A.correct(z, gold).astype(float))


def _acc(outcome: np.ndarray, mask: np.ndarray) -> float:
    return float(np.mean(outcome[mask])) if mask.any() else float("nan")


def offline_eval_report(config_path: str | Path, log: Log = _stderr) -> dict[str, Any]:
    """The evaluation as a dict (see the module docstring); also written to ``<bundle_dir>/eval.json``."""
    path, cfg = load_offline_config(config_path)
    pool = load_pool(cfg, path, log)
    featurizer = make_featurizer(cfg)
    spec = featurizer_spec(cfg, featurizer)
    names, K = pool.names, len(pool.names)
    tr, ev = cfg.train_split, cfg.eval_split
    m_tr, g_tr = pool.margins[tr], pool.gold(tr)
    m_ev, g_ev = pool.margins[ev], pool.gold(ev)
    right_ev = A.correct(m_ev, g_ev)  # strict: which pairs some RM gets right (the oracle)
    score_tr, score_ev = A.score(m_tr, g_tr), A.score(m_ev, g_ev)  # the scoring rule: a tie or abstention is 0.5
    dom_tr, dom_ev = pool.domains(tr), pool.domains(ev)
    some = right_ev.any(axis=1)
    data_hash = bundle_data_sha256(spec["identity"] or json.dumps(spec, sort_keys=True), [p.id for p in pool.splits[tr]], m_tr, g_tr, names)

    feats, enc_s = encode_split(featurizer, pool.splits[ev], log, ev)
    router_outcomes, picks, stale = [], [], []
    for seed in cfg.seeds:
        folder = seed_dir(cfg, seed)
        if not (folder / "bundle.json").is_file():
            raise BundleError(f"no bundle for seed {seed} at {folder}; run `rmroute offline train {path}` first")
        bundle = OfflineBundle.load(folder, featurizer=featurizer)
        bundle.check_pool(names)
        if bundle.meta.get("data_sha256") != data_hash:
            stale.append(seed)
        arms = bundle.argmax(bundle.features_to_contexts(feats))
        router_outcomes.append(A.routed_right(score_ev, arms))
        picks.append(np.bincount(arms, minlength=K) / max(arms.size, 1))
    if stale:
        log(f"[offline] warning: bundles for seeds {stale} were trained on different data than the pool now holds")
    router = np.stack(router_outcomes)  # (S, N)

    best_by_domain, global_best = A.domain_best_arms(score_tr, dom_tr)
    db_arms = np.array([best_by_domain.get(d, global_best) for d in dom_ev], dtype=np.int64)
    methods: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, np.ndarray] = {}

    def add(name: str, outcome: np.ndarray, calls: Any, note: str = "") -> None:
        outcomes[name] = outcome
        methods[name] = {"calls_per_item": calls, "note": note}

    add("offline-router", router.mean(0), 1, f"argmax of the offline router, mean over {len(cfg.seeds)} seeds")
    for k, n in enumerate(names):
        add(f"single:{n}", score_ev[:, k], 1)
    add("random", score_ev.mean(axis=1), 1, "expected value of a uniform random RM")
    add("majority-vote", majority_right(m_ev, g_ev), "K", "ties count 0.5")
    add("mean-ensemble", mean_ensemble_right(m_tr, m_ev, g_ev), "K", f"z-scores with {tr}-split statistics")
    add("domain-best", A.routed_right(score_ev, db_arms), 1, f"best RM per domain on {tr}")
    add("oracle", right_ev.any(axis=1).astype(float), 1, "upper bound")

    domains = sorted(set(dom_ev))
    dom_idx = {d: np.array([x == d for x in dom_ev]) for d in domains}
    for name, out in outcomes.items():
        methods[name]["routing_accuracy"] = _acc(out, some)
        methods[name]["accuracy_all_pairs"] = float(out.mean()) if out.size else float("nan")
        methods[name]["per_domain"] = {d: _acc(out, some & dom_idx[d]) for d in domains}
    seed_accs = [_acc(r, some) for r in router]
    methods["offline-router"]["per_seed"] = dict(zip(map(str, cfg.seeds), seed_accs))
    methods["offline-router"]["std_over_seeds"] = float(np.std(seed_accs))
    methods["offline-router"]["per_domain_std"] = {d: float(np.std([_acc(r, some & dom_idx[d]) for r in router])) for d in domains}

    singles = {n: methods[f"single:{n}"]["routing_accuracy"] for n in names}
    best_single = max(singles, key=singles.get)
    best_single_tr = names[int(np.argmax(score_tr.mean(axis=0)))]
    items = A.item_ids(pool.splits[ev])[some]
    comparisons = {}
    for other in (f"single:{best_single}", "majority-vote", "mean-ensemble", "domain-best"):
        c = A.cluster_bootstrap_diff(outcomes["offline-router"][some] - outcomes[other][some], items)
        comparisons[other] = {"diff": c.diff, "ci95": [c.lo, c.hi], "p": c.p}
    report = {
        "config": str(path), "name": cfg.name, "pool": pool.config.name, "split": ev, "rm_names": names,
        "n_pairs": int(some.size), "n_some_right": int(some.sum()), "n_per_domain": {d: int((some & dom_idx[d]).sum()) for d in domains},
        "seeds": cfg.seeds, "methods": methods,
        "best_single_on_eval": best_single, "best_single_on_train": best_single_tr,
        "router_vs": comparisons,
        "router_pick_share": {n: float(x) for n, x in zip(names, np.mean(picks, axis=0))},
        "domain_best_arms": {d: names[k] for d, k in best_by_domain.items()},
        "stale_seeds": stale, "encode_eval_s": enc_s,
    }
    atomic_write_text(bundle_root(cfg) / "eval.json", json.dumps(report, indent=2, default=float) + "\n")
    return report


def render_eval_markdown(rep: dict[str, Any]) -> str:
    def pct(v: float) -> str:
        return "-" if np.isnan(v) else f"{100 * v:.1f}"

    methods, domains = rep["methods"], list(rep["n_per_domain"])
    order = ["offline-router", "oracle", f"single:{rep['best_single_on_eval']}", "majority-vote", "mean-ensemble",
             "domain-best", "random"] + [m for m in methods if m.startswith("single:") and m != f"single:{rep['best_single_on_eval']}"]
    r = methods["offline-router"]
    out = [
        f"Offline router `{rep['name']}` on pool `{rep['pool']}`, split `{rep['split']}`: {rep['n_some_right']} of "
        f"{rep['n_pairs']} pairs have at least one RM right. Routing accuracy in % over those pairs "
        f"(offline router: mean over seeds {rep['seeds']}, sd {100 * r['std_over_seeds']:.1f}); "
        "`all pairs` counts every pair.", "",
        "| method | RM calls/pair | routing acc | all pairs | " + " | ".join(domains) + " |",
        "|---|---|---|---|" + "---|" * len(domains),
    ]
    for name in order:
        mth = methods[name]
        label = name + (" (best single)" if name == f"single:{rep['best_single_on_eval']}" else "")
        out.append(f"| {label} | {mth['calls_per_item']} | {pct(mth['routing_accuracy'])} | {pct(mth['accuracy_all_pairs'])} | "
                   + " | ".join(pct(mth["per_domain"][d]) for d in domains) + " |")
    out += ["", "n per domain: " + ", ".join(f"{d} {n}" for d, n in rep["n_per_domain"].items()), "",
            "Offline router minus baseline (routing accuracy; 95% CI resampling items, sign-flip p):", ""]
    for other, c in rep["router_vs"].items():
        out.append(f"- vs {other}: {100 * c['diff']:+.1f} [{100 * c['ci95'][0]:+.1f}, {100 * c['ci95'][1]:+.1f}], p {c['p']:.3g}")
    out += ["", "Router picks: " + ", ".join(f"{n} {100 * s:.0f}%" for n, s in rep["router_pick_share"].items())]
    return "\n".join(out) + "\n"


def offline_eval(config_path: str | Path, as_json: bool = False, log: Log = _stderr) -> str:
    """Run the evaluation; return the text to print (JSON when ``as_json``, else a Markdown report)."""
    rep = offline_eval_report(config_path, log)
    return json.dumps(rep, indent=2, default=float) if as_json else render_eval_markdown(rep)


def ensure_bundle(config_path: str | Path, seed: int | None = None, log: Log = _stderr,
                  pool: Pool | None = None) -> OfflineBundle:
    """The offline bundle for ``seed`` (default: the config's first seed), trained first when missing,
    when it was trained from a different config, or when it routes over other RMs than ``pool`` (a
    pool whose RMs changed); training uses ``pool`` when it is the config's pool (replay passes the
    pool it has built), else builds it."""
    path, cfg = load_offline_config(config_path)
    seed = cfg.seeds[0] if seed is None else seed
    folder = seed_dir(cfg, seed)
    current = cfg.model_dump(mode="json")
    if (folder / "bundle.json").is_file():
        bundle = OfflineBundle.load(folder)
        if bundle.meta.get("config") != current:
            log(f"[offline] bundle at {folder} was trained from another config; retraining")
        elif pool is not None and list(bundle.rm_names) != list(pool.names):
            log(f"[offline] bundle at {folder} routes over {bundle.rm_names}, the pool now holds {pool.names}; retraining")
        else:
            return bundle
    offline_train(path, log, pool)
    return OfflineBundle.load(folder)


def fold_bundle(config_path: str | Path, features: np.ndarray, margins: np.ndarray, gold: np.ndarray,
                strata: Sequence[str], pair_ids: Sequence[str], rm_names: Sequence[str], seed: int,
                log: Log = _stderr) -> OfflineBundle:
    """The offline router trained on one fold's offline pairs (``features`` from the config's
    featurizer, ``margins`` in ``rm_names`` order), with the config's settings and ``seed``; cached
    under ``<bundle_dir>/folds/`` by config and data hash, so a rerun loads it."""
    path, cfg = load_offline_config(config_path)
    featurizer = make_featurizer(cfg)
    spec = featurizer_spec(cfg, featurizer)
    data_hash = bundle_data_sha256(spec["identity"] or json.dumps(spec, sort_keys=True), list(pair_ids), margins, gold,
                                   list(rm_names))
    folder = bundle_root(cfg) / "folds" / f"seed-{seed}-{data_hash[:16]}"
    current = cfg.model_dump(mode="json")
    if (folder / "bundle.json").is_file():
        bundle = OfflineBundle.load(folder, featurizer=featurizer)
        if bundle.meta.get("config") == current and bundle.meta.get("data_sha256") == data_hash:
            return bundle
    res = train_offline_router(features, margins, gold, train_settings(cfg), seed=seed, strata=list(strata))
    save_bundle(folder, res, list(rm_names), spec, data_hash, config=current, extra_metrics={"fold_seed": seed})
    log(f"[offline] fold of seed {seed}: best epoch {res.metrics['best_epoch']}, val routing acc "
        f"{res.metrics['val_routing_accuracy']:.4f} -> {folder}")
    return OfflineBundle.load(folder, featurizer=featurizer)


def context_source(offline: str | None, featurizer: Any, rm_names: Sequence[str], log: Log = _stderr,
                   pool: Pool | None = None) -> tuple[Any, OfflineBundle | None]:
    """Where a run's contexts come from: (the featurizer that gives its pair features, the offline
    bundle that projects them into contexts and supplies the prior means, or None when the features
    are the contexts). With ``offline`` (an offline-router config) the bundle is trained first when
    missing (from ``pool`` when it is the bundle's pool) and must route over ``rm_names`` in that
    order; else ``featurizer`` (a plugin ref) is built. Replay and the train runner both start here."""
    if offline:
        bundle = ensure_bundle(offline, log=log, pool=pool)
        bundle.check_pool(list(rm_names))
        return bundle.featurizer, bundle
    if featurizer is None:
        raise ConfigError("a run needs contexts: set settings.offline (an offline-router config) or a featurizer")
    return create_ref("featurizer", featurizer), None


# ---- config check (the runners' check_config) --------------------------------------------------
def check_offline_ref(problems: Problems, loc: tuple[Any, ...], offline_path: str, names: list[str] | None) -> None:
    """The offline-router config ``offline_path`` loads, and its pool has the RMs ``names`` in the
    same order (its bundle's arms are that pool's RMs; a run refuses a bundle that differs)."""
    try:
        off_path, off_cfg = load_offline_config(offline_path)
        off_pool = pool_path(off_cfg, off_path)
    except RmrouteError as exc:
        problems.add(loc, f"the offline-router config does not load: {exc}")
        return
    inner = Problems(off_path, None)
    off_names = pool_rm_names(inner, ("pool",), str(off_pool))
    if off_names is None:
        problems.add(loc, "; ".join(inner.lines))
    elif names is not None and off_names != names:
        problems.add(loc, f"its pool ({off_pool}) has the RMs {off_names}, the run's pool {names}; the offline "
                          "bundle routes over its pool's RMs in that order, so they must be the same")
