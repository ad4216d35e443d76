"""The ``train`` runner: iterative online DPO of a policy, with a router choosing the reward model.

One run per (router, seed); every run starts from the same policy and sees the same prompts. Per
iteration t (prompts taken in a fixed, seeded order from a cursor that wraps around):

1. generate ``samples_per_prompt`` responses per prompt with the generator plugin (the prompt is
   formatted with ``Policy.format_prompt``; the generation seed depends on (seed, t) only);
2. candidate pairs: every pair (i < j) of a prompt's responses, or ``pairs_per_prompt`` of them
   drawn without replacement by the run's seeded generator;
3. contexts from the featurizer (or the offline bundle); the router ``select``s the RM(s) per pair;
4. score: only the (pair, RM) cells the router pays for, through the score cache (both responses).
   An RM that raises or returns NaN on an item abstains there; a pair whose called RMs all
   abstained falls back to the router's next arm (its ranking by posterior mean or UCB where it
   has one, else the next index), and that arm is credited. Every call, fallbacks included, counts;
5. ``combine`` decides each pair; pairs with |margin| > ``tie_eps`` are kept as chosen/rejected;
6. one DPO step with TRL's ``DPOTrainer`` on the kept pairs (one batch, LoRA through peft; the
   reference is the initial policy: TRL disables the adapters). When TRL's preprocessing drops
   every kept pair (it drops a pair whose prompt alone fills ``max_length``), the step and its
   feedback are skipped: the iteration's log says why (``dpo_skipped``) and the run's metrics count
   such iterations (``skipped_steps``);
7. feedback: each kept pair's DPO loss under the updated policy (:mod:`rmroute.harness.runners.train.dpo`) goes through
   the normaliser chain to ``router.update`` for the credited arm. Raw feedback is the loss, with
   the default chain ``batch-baseline`` → ``quantile`` (r̃ = mean(loss) − loss, then rescaled:
   BayesianRouter); ``laser`` gets ``−loss`` with the default chain ``quantile`` (LASeR's reward).
   A config's ``normalizers`` replace the default chain for every router.

After every iteration the run is checkpointed (:mod:`rmroute.harness.runners.train.checkpoint`). ``resume=True`` skips
runs whose run JSON is ``ok`` and continues the others from their last checkpoint; on CPU with a
fixed seed the result equals an uninterrupted run; a checkpoint that fails its checks (a truncated or
changed file, see :mod:`rmroute.harness.runners.train.checkpoint`) fails the run with a message naming the file. A NaN
loss stops the run (status ``failed``, naming iteration and batch) and leaves the last good
checkpoint in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
from pydantic import Field, StrictInt, field_validator

from rmroute.harness.core.config import StrictModel
from rmroute.harness.core.errors import ConfigError, RmrouteError
from rmroute.harness.pipelines.policy import PolicySpec
from rmroute.harness.routing import resolve_routers, router_spec


# ---- settings --------------------------------------------------------------------------------
class LoraSettings(StrictModel):
    r: StrictInt = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


class PromptSettings(StrictModel):
    source: str = Field("suite:rmroute-pairs-v1:online", description="suite:<suite>:<split>")
    seed: StrictInt = Field(0, description="the suite's build seed")
    domains: list[str] = Field(default_factory=lambda: ["math", "chat"])
    max_chars: StrictInt | None = Field(None, ge=1, description="leave out prompts longer than this")
    shuffle_seed: StrictInt = Field(0, description="the prompt order (the same for every router and seed)")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.count(":") != 2 or not v.startswith("suite:"):
            raise ValueError("expected 'suite:<suite name>:<split>', e.g. suite:rmroute-pairs-v1:online")
        return v


class GeneratorSettings(StrictModel):
    name: str = "transformers"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainSettings(StrictModel):
    policy: PolicySpec
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    pool: str | None = Field(None, description="a pool config whose RMs are used when `reward_models` is empty")
    offline: str | None = Field(None, description="an offline-router config: contexts and prior_mean: offline")
    offline_pairs: StrictInt = Field(200, ge=1, description="offline-split pairs scored for fit_offline routers")
    iterations: StrictInt = Field(2, ge=1)
    batch_prompts: StrictInt = Field(4, ge=1)
    samples_per_prompt: StrictInt = Field(2, ge=2)
    pairs_per_prompt: StrictInt | None = Field(None, ge=1, description="None: every pair of a prompt's responses")
    tie_eps: float = Field(0.0, ge=0)
    beta: float = Field(0.1, gt=0)
    learning_rate: float = Field(5e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: StrictInt | None = Field(1024, ge=8, description="DPO sequence length cap (prompt + response tokens)")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    report_to: list[Literal["none", "tensorboard", "wandb"]] = Field(default_factory=lambda: ["none"])
    on_bad_feedback: Literal["error", "skip"] = "error"
    score_cache: str | None = Field(None, description="score cache folder (default $RMROUTE_CACHE/scores)")
    checkpoint_dir: str | None = Field(None, description="default <out>/checkpoints/<suite>/<run id>")
    loss_batch_size: StrictInt = Field(16, ge=1)
    threads: StrictInt | None = Field(None, ge=1, description="torch threads (CPU)")
    ray_num_cpus: float = Field(1.0, gt=0, description="--executor ray: CPUs reserved per (router, seed) run")
    ray_num_gpus: float = Field(0.0, ge=0, description="--executor ray: GPUs reserved per (router, seed) run")

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


#: the model `rmroute validate` checks a train config's `settings` against
SETTINGS = TrainSettings


class TrainingDiverged(RmrouteError):
    """A NaN/inf loss: the run stops; its last good checkpoint stays."""


class StopRequested(RmrouteError):
    """``stop_after`` was reached (used to simulate a killed run)."""


# ---- shared, per-config environment --------------------------------------------------------------
@dataclass
class PromptItem:
    id: str
    domain: str
    prompt: str
    reference: str | None


@dataclass
class OfflineData:
    X: np.ndarray
    margins: np.ndarray
    gold: np.ndarray
    domains: list[str]


@dataclass
class Env:
    """What every run of a config shares: RMs, prompts, featurizer, score cache, offline data."""

    settings: TrainSettings
    names: list[str]
    rms: list[Any]
    costs: np.ndarray
    prompts: list[PromptItem]
    featurize: Callable[[Sequence[str], Sequence[str], Sequence[str]], np.ndarray]
    dim: int
    cache: Any
    prior_mean: np.ndarray | None = None
    offline: OfflineData | None = None
    data_sha: str = ""


def _suite_pairs(settings: TrainSettings, split: str | None = None):
    from rmroute.harness.core.plugins import create

    _, suite, default_split = settings.prompts.source.split(":")
    return create("suite", suite, seed=settings.prompts.seed).pairs(split or default_split)


def load_prompts(settings: TrainSettings) -> list[PromptItem]:
    """Unique prompts of the source split in the configured domains, in a seeded order."""
    ps = settings.prompts
    seen: dict[str, PromptItem] = {}
    for p in _suite_pairs(settings):
        if p.domain not in ps.domains or p.prompt in seen:
            continue
        if ps.max_chars is not None and len(p.prompt) > ps.max_chars:
            continue
        ref = p.metadata.get("reference")
        seen[p.prompt] = PromptItem(id=str(p.metadata.get("item", p.id)), domain=p.domain, prompt=p.prompt,
                                    reference=None if ref is None else str(ref))
    items = list(seen.values())
    if not items:
        raise ConfigError(f"settings.prompts: no prompt of {ps.source} in domains {ps.domains}"
                          + (f" with at most {ps.max_chars} characters" if ps.max_chars else ""))
    order = np.random.default_rng([ps.shuffle_seed, 2718]).permutation(len(items))
    return [items[i] for i in order]


def config_rms(cfg) -> tuple[list[str], list[Any]]:
    """The config's ``reward_models``, built (RM constructors do not load models) and named."""
    from rmroute.harness.core.plugins import create

    rms = []
    for ref in cfg.reward_models:
        rm = create("reward_model", ref.name, **ref.params)
        if ref.label:
            rm.name = ref.label
        rms.append(rm)
    return [rm.name for rm in rms], rms


def build_rms(cfg, settings: TrainSettings) -> tuple[list[str], list[Any]]:
    """The RM pool in arm order: the config's ``reward_models``, else the pool config's."""
    if cfg.reward_models:
        return config_rms(cfg)
    if not settings.pool:
        raise ConfigError("a train config needs reward_models or settings.pool (e.g. configs/pool-cpu.yaml)")
    from rmroute.harness.pipelines.pool import build_rms as pool_rms, load_pool_config, rm_label, train_missing

    pool_cfg = load_pool_config(settings.pool)
    rm_train = _suite_pairs(settings, "rm-train")
    train_missing(pool_cfg, rm_train)
    return [rm_label(r) for r in pool_cfg.reward_models], pool_rms(pool_cfg, rm_train)


def build_env(cfg, settings: TrainSettings, need_offline: bool, log: Callable[[str], None]) -> Env:
    import hashlib

    from rmroute.harness.pipelines.score_cache import ScoreCache

    names, rms = build_rms(cfg, settings)
    prompts = load_prompts(settings)
    prior = None
    if settings.offline:
        from rmroute.harness.pipelines.offline import ensure_bundle

        bundle = ensure_bundle(settings.offline, log=log)
        bundle.check_pool(names)
        prior = np.asarray(bundle.prior_means(), dtype=np.float64)
        featurize, dim = bundle.contexts, int(prior.shape[1])
    elif cfg.featurizer is not None:
        from rmroute.harness.core.plugins import create

        feat = create("featurizer", cfg.featurizer.name, **cfg.featurizer.params)
        featurize, dim = feat.embed_pairs, int(feat.dim)
    else:
        raise ConfigError("a train config needs contexts: settings.offline (an offline-router config) or a featurizer")
    h = hashlib.sha256("\x1f".join(f"{p.id}\x1e{p.prompt}" for p in prompts).encode()).hexdigest()
    env = Env(settings=settings, names=names, rms=rms, costs=np.array([float(getattr(r, "cost", 1.0)) for r in rms]),
              prompts=prompts, featurize=lambda p, a, b: np.asarray(featurize(list(p), list(a), list(b)), dtype=np.float64),
              dim=dim, cache=ScoreCache(settings.score_cache), prior_mean=prior, data_sha=h)
    _prepare_rms(env, [{"prompt": p.prompt, "metadata": {"reference": p.reference}} for p in prompts])
    if need_offline:
        env.offline = offline_data(env, log)
    return env


def _prepare_rms(env: Env, items: list[dict[str, Any]]) -> None:
    for rm in env.rms:
        prepare = getattr(rm, "prepare", None)
        if prepare:
            prepare(items)


def offline_data(env: Env, log: Callable[[str], None]) -> OfflineData:
    """Margins of the config's RMs on (a seeded subset of) the suite's offline split, for fit_offline."""
    from rmroute.harness.pipelines.score_cache import score_pairs

    s = env.settings
    pairs = [p for p in _suite_pairs(s, "offline") if p.domain in s.prompts.domains]
    if len(pairs) > s.offline_pairs:
        idx = np.sort(np.random.default_rng([s.prompts.shuffle_seed, 31]).choice(len(pairs), s.offline_pairs, replace=False))
        pairs = [pairs[i] for i in idx]
    log(f"[train] scoring {len(pairs)} offline pairs for the routers that fit offline")
    a, b, _ = score_pairs(env.cache, env.rms, pairs, show_progress=False)
    X = env.featurize([p.prompt for p in pairs], [p.response_a for p in pairs], [p.response_b for p in pairs])
    return OfflineData(X=X, margins=a - b, gold=np.array([p.gold_sign for p in pairs]), domains=[p.domain for p in pairs])


# ---- the per-run state ---------------------------------------------------------------------------
@dataclass
class LoopState:
    iteration: int = 0
    cursor: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    """One (router, seed) run: the live policy, trainer, generator, router and feedback chain."""

    label: str
    spec: Any
    seed: int
    policy: Any
    trainer: Any
    generator: Any
    router: Any
    chain: Any
    neg_loss: bool
    state: LoopState
    last_logs: dict[str, float] = field(default_factory=dict)

    @property
    def model(self):
        return self.trainer.model


def plan(cfg, config_path) -> str:
    """What ``rmroute run --dry-run`` prints for a train config (see :mod:`rmroute.harness.runners.train.plan`)."""
    from rmroute.harness.runners.train.plan import plan as _plan

    return _plan(cfg, config_path)


# ---- the runner -------------------------------------------------------------------------------------
def run_id(label: str, seed: int, config_sha: str) -> str:
    from rmroute.harness.results import slug

    return f"train--{slug(label)}--seed{seed}--{config_sha[:10]}"


def train_one(env: Env, cfg, label: str, spec, seed: int, ckpt_dir: Path, out_dir: Path, resume: bool,
              stop_after: int | None, log: Callable[[str], None], progress=None) -> dict[str, Any]:
    """Train one (router, seed) for ``settings.iterations`` iterations; returns the run's outcome."""
    from rmroute.harness.runners.train.checkpoint import load_latest, save_checkpoint
    from rmroute.harness.runners.train.loop import build_run, restore, run_iteration, snapshot

    s = env.settings
    run = build_run(env, cfg, label, spec, seed, ckpt_dir)
    ck = load_latest(ckpt_dir) if resume else None
    if ck is not None:
        restore(run, ck)
        log(f"[train] {label} seed {seed}: resumed after iteration {ck.iteration}")
    task = progress.add_task(f"{label} s{seed}", total=s.iterations, completed=run.state.iteration) if progress else None
    while run.state.iteration < s.iterations:
        rec = run_iteration(env, run)
        run.state.log.append(rec)
        run.state.iteration += 1
        opt_state, state = snapshot(run)
        save_checkpoint(ckpt_dir, run.state.iteration, run.model, opt_state, state)
        log(_format_iteration(label, seed, rec, env.names))
        if progress is not None:
            progress.advance(task)
        if stop_after is not None and run.state.iteration >= stop_after and run.state.iteration < s.iterations:
            raise StopRequested(f"{label} seed {seed}: stopped after iteration {run.state.iteration} (stop_after)")
    return summarise(env, run, ckpt_dir)


def _format_iteration(label: str, seed: int, rec: dict[str, Any], names: list[str]) -> str:
    share = " ".join(f"{n}={rec['credited_share'][n]:.2f}" for n in names if rec["credited_share"].get(n))
    t = rec["time"]
    line = (f"[train] {label} s{seed} it{rec['iteration']}: loss {rec['dpo_loss']:.4f} -> {rec['loss_after']:.4f}, "
            f"margin {rec['reward_margin']:.4f}, kept {rec['pairs_kept']}/{rec['pairs']}, calls {rec['rm_calls']}, "
            f"share [{share}], s gen {t['generate']:.2f} route {t['route']:.3f} score {t['score']:.2f} "
            f"train {t['train']:.2f} feedback {t['feedback']:.3f}")
    return line + (f"; DPO step skipped: {rec['dpo_skipped']}" if rec.get("dpo_skipped") else "")


def summarise(env: Env, run: Run, ckpt_dir: Path) -> dict[str, Any]:
    """Metrics, RM calls and curves of a finished run (from its per-iteration log)."""
    logs = run.state.log
    calls = np.array([[r["calls_per_rm"][n] for n in env.names] for r in logs]).reshape(len(logs), len(env.names))
    finite = lambda xs: [x for x in xs if x is not None and np.isfinite(x)]  # noqa: E731
    last = logs[-1]
    metrics = {
        "final_loss": last["loss_after"],
        "final_reward_margin": last["reward_margin"],
        "mean_dpo_loss": float(np.mean(finite([r["dpo_loss"] for r in logs]) or [np.nan])),
        "pairs_total": int(sum(r["pairs"] for r in logs)),
        "pairs_kept": int(sum(r["pairs_kept"] for r in logs)),
        "rm_calls": int(calls.sum()),
        "calls_per_pair": float(calls.sum() / max(1, sum(r["pairs"] for r in logs))),
        "cost": float((calls.sum(axis=0) * env.costs).sum()),
        "abstained": int(sum(r["abstained"] for r in logs)),
        "fallbacks": int(sum(r["fallbacks"] for r in logs)),
        "feedback_skipped": int(run.chain.skipped),
        "skipped_steps": sum(1 for r in logs if r.get("dpo_skipped")),
        "iterations": len(logs),
    }
    curves = {k: [r[k] for r in logs] for k in ("dpo_loss", "loss_after", "reward_margin", "pairs_kept", "rm_calls")}
    curves["credited_share"] = {n: [r["credited_share"].get(n, 0.0) for r in logs] for n in env.names}
    curves["time"] = {k: [r["time"][k] for r in logs] for k in logs[0]["time"]}
    return {
        "metrics": metrics,
        "rm_calls": {"total": int(calls.sum()), "per_rm": dict(zip(env.names, calls.sum(axis=0).astype(int).tolist()))},
        "curves": curves,
        "iterations": logs,
        "router_state": run.router.state_dict(),
        "checkpoint": str(ckpt_dir / "iter-{:05d}".format(run.state.iteration) / "adapter"),
    }


def run(cfg, config_path, out_dir, resume: bool = False, stop_after: int | None = None,
        log: Callable[[str], None] | None = None, only: dict[str, Any] | None = None,
        executor: str = "local", address: str | None = None) -> list[Path]:
    """Train once per (router, seed) of the config; one run JSON each (status ``failed`` for a router
    that raised); returns their paths. ``stop_after`` stops every run after that many iterations
    (as if killed: no run JSON, the checkpoint stays) — for testing ``resume``. ``only``
    (``{"label", "seed"}``) runs that one (router, seed): `rmroute reproduce` uses it; ``{"entry",
    "seed"}`` runs one entry of ``cfg.routers`` (all its expansions) for one seed. ``executor="ray"``
    runs every (router entry, seed) as a Ray task (local Ray, or the cluster at ``address``; the
    results folder must be shared storage there); each task trains exactly as the local executor
    does, so the run files are identical."""
    if executor == "ray":
        return _run_ray(cfg, config_path, out_dir, resume, address)
    if executor != "local":
        raise ConfigError(f"executor must be 'local' or 'ray', got {executor!r}")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rmroute.harness.core.config import config_sha256
    from rmroute.harness.determinism import describe
    from rmroute.harness.runners.replay import _jsonable_params
    from rmroute.harness.results import (DataInfo, RouterInfo, RunRecord, code_version, finished_ok, now_iso,
                                 package_versions, write_run, confined)

    console = Console(stderr=True)
    log = log or (lambda m: console.print(m, markup=False, highlight=False))
    settings = TrainSettings.model_validate(cfg.settings)
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    sha = config_sha256(cfg)
    out_dir = Path(out_dir)
    trainable = trainable_entries(cfg, config_path, log)
    need = any(router_spec(r.name).fit_offline for _, r in trainable)
    if only and "entry" in only:
        trainable = [(i, r) for i, r in trainable if i == only["entry"]]
    cfg_routers = cfg.model_copy(update={"routers": [r for _, r in trainable]})
    env = build_env(cfg, settings, need, log)  # RMs, prompts, contexts; router specs need the RM names
    specs_all = [(spec.label, spec) for spec in resolve_routers(cfg_routers.routers, env.names)]
    code, packages = code_version(), package_versions()
    data = DataInfo(name=f"{settings.prompts.source}@seed{settings.prompts.seed}[{','.join(settings.prompts.domains)}]",
                    sha256=env.data_sha, n=len(env.prompts))
    written: list[Path] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for label, spec in specs_all:
            for seed in cfg.seeds:
                if only and (only.get("label", label), only.get("seed", seed)) != (label, seed):
                    continue
                rid = run_id(label, seed, sha)
                path = out_dir / "runs" / cfg.suite / f"{rid}.json"
                if resume and finished_ok(path):
                    written.append(path)
                    continue
                ckpt = Path(settings.checkpoint_dir) / rid if settings.checkpoint_dir else confined(out_dir, out_dir / "checkpoints" / cfg.suite / rid)
                t0 = time.perf_counter()
                status, error, out = "ok", None, None
                try:
                    out = train_one(env, cfg, label, spec, seed, ckpt, out_dir, resume, stop_after, log, progress)
                except StopRequested:
                    raise
                except Exception as exc:  # noqa: BLE001 - one router's failure must not lose the others
                    status, error = "failed", f"{type(exc).__name__}: {exc}"
                    log(f"[train] {label} seed {seed} failed: {error}")
                record = RunRecord(
                    run_id=rid, kind="train", suite=cfg.suite, status=status, error=error,
                    router=RouterInfo(name=spec.name, params=_jsonable_params(spec.params), label=label),
                    reward_models=list(env.names), data=data, seed=seed,
                    metrics=out["metrics"] if out else {}, rm_calls=out["rm_calls"] if out else {},
                    wall_s=time.perf_counter() - t0, config=cfg.model_dump(mode="json"), config_sha256=sha,
                    code=code, packages=packages, command=f"rmroute run {config_path}", created=now_iso(),
                    extra={"policy": settings.policy.model_dump(mode="json"), "checkpoint": out["checkpoint"] if out else str(ckpt),
                           "adapter": _relative_to(out["checkpoint"], path.parent) if out else None,
                           "curves": out["curves"] if out else {}, "iterations": out["iterations"] if out else [],
                           "final_router_state": _state_digest(out["router_state"]) if out else None,
                           "learns": spec.learns, "compute": describe()},
                )
                written.append(write_run(record, out_dir))
    return written


def trainable_entries(cfg, config_path, log: Callable[[str], None] = print) -> list[tuple[int, Any]]:
    """(index in cfg.routers, ref) of the routers that can train; replay-only ones are skipped with a note."""
    out = []
    for i, ref in enumerate(cfg.routers):
        if router_spec(ref.name).replay_only:
            log(f"[train] skipping router {ref.name!r}: it is replay-only (it needs gold labels, which policy samples lack)")
        else:
            out.append((i, ref))
    if not out:
        raise ConfigError(f"{config_path}: no router that can train (replay-only routers such as oracle are skipped)")
    return out


def check_config(cfg, path, tree) -> None:
    """What `rmroute validate` checks of a train config beyond its models (one ConfigError listing
    every problem): the generator is registered and its params fit; a router that can train; the RMs (``reward_models``, else ``settings.pool``,
    which must load); contexts (``settings.offline``, which must load and route over the same RMs,
    or a ``featurizer``); labels that give their own file names; every router builds with its
    params; every run id fits in a file name."""
    from rmroute.harness.core.config import Problems, check_offline_ref, check_plugin, check_routers, check_run_ids, pool_rm_names

    settings = TrainSettings.model_validate(cfg.settings)
    problems = Problems(path, tree)
    check_plugin(problems, ("settings", "generator"), "generator", settings.generator.name, settings.generator.params,
                 frozenset({"model", "tokenizer"}))
    try:
        entries = trainable_entries(cfg, path, log=lambda _: None)
    except ConfigError as exc:
        problems.add(("routers",), str(exc).removeprefix(f"{path}: "))
        entries = []
    names = None
    if cfg.reward_models:
        try:
            names = config_rms(cfg)[0]
        except Exception as exc:  # noqa: BLE001 - an RM's own check of its params, whatever it raises
            problems.add(("reward_models",), str(exc))
    elif settings.pool:
        names = pool_rm_names(problems, ("settings", "pool"), settings.pool)
    else:
        problems.add(("reward_models",), "a train config needs reward_models or settings.pool (e.g. configs/pool-cpu.yaml)")
    if settings.offline:
        check_offline_ref(problems, ("settings", "offline"), settings.offline, names)
    elif cfg.featurizer is None:
        problems.add(("settings",), "a train config needs contexts: settings.offline (an offline-router config) or a featurizer")
    if names is not None:
        labels = check_routers(problems, entries, names, bool(settings.offline))
        check_run_ids(problems, [(("routers", i), run_id(label, max(cfg.seeds), "0" * 64)) for i, label in labels])
    problems.raise_if_any()


def _ray_cell(cfg_json: dict[str, Any], config_path: str, out_dir: str, resume: bool, only: dict[str, Any],
              cwd: str) -> list[str]:
    """One Ray task: the local runner restricted to one (router entry, seed), in the driver's folder."""
    import os

    from rmroute.harness.core.config import RunConfig

    os.chdir(cwd)  # config paths (pool, offline, policy) are relative to where `rmroute run` was started
    cfg = RunConfig.model_validate(cfg_json)
    return [str(p) for p in run(cfg, config_path, out_dir, resume=resume, only=only)]


def _run_ray(cfg, config_path, out_dir, resume: bool, address: str | None) -> list[Path]:
    import os

    from rmroute.harness.runners import ray_session

    settings = TrainSettings.model_validate(cfg.settings)
    cells = [{"entry": i, "seed": seed} for i, _ in trainable_entries(cfg, config_path) for seed in cfg.seeds]
    with ray_session(address) as ray:
        task = ray.remote(num_cpus=settings.ray_num_cpus, num_gpus=settings.ray_num_gpus)(_ray_cell)
        refs = [task.remote(cfg.model_dump(mode="json"), str(config_path), str(Path(out_dir).resolve()), resume,
                            cell, os.getcwd()) for cell in cells]
        return [Path(p) for paths in ray.get(refs) for p in paths]


def _relative_to(target: str, folder: Path) -> str:
    """``target`` relative to ``folder`` (how a run JSON names its adapter, so results/ can move)."""
    import os

    return os.path.relpath(Path(target).resolve(), folder.resolve())


def _state_digest(state: dict[str, Any]) -> str:
    """sha256 of a router state (arrays by value), to compare runs without storing the state."""
    import hashlib
    import pickle

    def norm(v):
        if isinstance(v, dict):
            return {k: norm(v[k]) for k in sorted(v)}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, np.ndarray):
            return ("array", v.dtype.str, v.shape, v.tobytes())
        return v

    return hashlib.sha256(pickle.dumps(norm(state), protocol=4)).hexdigest()
