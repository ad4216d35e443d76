"""What a train run holds: the environment every run of a config shares, and one run's live state.

* :class:`Env` (built once per config by :func:`build_env`): the RMs in arm order, the prompts in
  their seeded order, the contexts (the offline bundle's, or a featurizer's), the score cache and,
  for routers that fit offline, margins on the benchmark's offline split;
* :class:`Run` (built per (router, seed) by :func:`build_run`): the policy, its DPO trainer (a fresh
  LoRA adapter) with the optimiser and learning-rate schedule it keeps across iterations, the feed
  of pairs the trainer reads, the generator, the router, the feedback chain and the :class:`LoopState` (iteration,
  prompt cursor, the run's seeded generator, the per-iteration log);
* :func:`snapshot` / :func:`restore`: a run's state to and from a checkpoint
  (:mod:`rmroute.harness.runners.train.checkpoint` writes and checks the files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.plugins import create_benchmark, create_ref
from rmroute.harness.determinism import derived_rng
from rmroute.harness.pipelines.offline import context_source
from rmroute.harness.pipelines.policy import load_policy
from rmroute.harness.pipelines.pool import build_reward_models, load_pool_config, rm_label, train_missing, trained_dirs
from rmroute.harness.pipelines.score_cache import ScoreCache, score_pairs
from rmroute.harness.routing import TRAIN_FEEDBACK, arm_order
from rmroute.harness.runners.train.checkpoint import CheckpointError, load_adapter_weights, load_optimizer_state
from rmroute.harness.runners.train.dist import Dist, PairFeed
from rmroute.harness.runners.train.settings import PolicyTrainSettings


# ---- the environment every run of a config shares ---------------------------------------------
@dataclass
class PromptItem:
    """One training prompt: its item id, domain, text and (math) reference answer."""

    id: str
    domain: str
    prompt: str
    reference: str | None


@dataclass
class OfflineData:
    """The offline split as routers that fit offline see it: contexts, (N, K) margins, gold signs, domains."""

    X: np.ndarray
    margins: np.ndarray
    gold: np.ndarray
    domains: list[str]


@dataclass
class Env:
    """What every run of a config shares: RMs, prompts, featurizer, score cache, offline data."""

    settings: PolicyTrainSettings
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


def benchmark_pairs(settings: PolicyTrainSettings, split: str | None = None):
    """The pairs of ``split`` (default: the one ``settings.prompts.source`` names) of the prompts' benchmark."""
    _, benchmark, default_split = settings.prompts.source.split(":")
    return create_benchmark(benchmark, settings.prompts.seed).pairs(split or default_split)


def load_prompts(settings: PolicyTrainSettings) -> list[PromptItem]:
    """Unique prompts of the source split in the configured domains, in a seeded order."""
    ps = settings.prompts
    seen: dict[str, PromptItem] = {}
    for p in benchmark_pairs(settings):
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
    order = derived_rng(ps.shuffle_seed, "train-prompt-order").permutation(len(items))
    return [items[i] for i in order]


def reward_models(cfg, settings: PolicyTrainSettings) -> tuple[list[str], list[Any]]:
    """(names, RMs) in arm order: the config's ``reward_models``, else the pool config's (its
    ``trained:`` RMs trained first when missing). RM constructors do not load models."""
    if cfg.reward_models:
        rms = build_reward_models(cfg.reward_models)
        return [rm.name for rm in rms], rms
    if not settings.pool:
        raise ConfigError("a train config needs reward_models or settings.pool (e.g. configs/pool-cpu.yaml)")
    pool_cfg = load_pool_config(settings.pool)
    rm_train = benchmark_pairs(settings, "rm-train")
    train_missing(pool_cfg, rm_train)
    return [rm_label(r) for r in pool_cfg.reward_models], build_reward_models(pool_cfg.reward_models,
                                                                              trained_dirs(pool_cfg, rm_train))


def build_env(cfg, settings: PolicyTrainSettings, need_offline: bool, log: Callable[[str], None]) -> Env:
    """The config's :class:`Env`; ``need_offline``: also score the offline split (a router fits offline)."""
    names, rms = reward_models(cfg, settings)
    prompts = load_prompts(settings)
    featurizer, bundle = context_source(settings.offline, cfg.featurizer, names, log)
    if bundle is not None:
        prior = np.asarray(bundle.prior_means(), dtype=np.float64)
        featurize, dim = bundle.contexts, int(prior.shape[1])
    else:
        prior, featurize, dim = None, featurizer.embed_pairs, int(featurizer.dim)
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
    """Margins of the config's RMs on (a seeded subset of) the benchmark's offline split, for fit_offline."""
    s = env.settings
    pairs = [p for p in benchmark_pairs(s, "offline") if p.domain in s.prompts.domains]
    if len(pairs) > s.offline_pairs:
        idx = np.sort(derived_rng(s.prompts.shuffle_seed, "train-offline-pairs").choice(len(pairs), s.offline_pairs, replace=False))
        pairs = [pairs[i] for i in idx]
    log(f"[train] scoring {len(pairs)} offline pairs for the routers that fit offline")
    a, b, _ = score_pairs(env.cache, env.rms, pairs, show_progress=False)
    X = env.featurize([p.prompt for p in pairs], [p.response_a for p in pairs], [p.response_b for p in pairs])
    return OfflineData(X=X, margins=a - b, gold=np.array([p.gold_sign for p in pairs]), domains=[p.domain for p in pairs])


# ---- one run's state --------------------------------------------------------------------------
@dataclass
class LoopState:
    """Where a run is: iterations done, the prompt cursor, its seeded generator, the per-iteration log."""

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
    state: LoopState
    last_logs: dict[str, float] = field(default_factory=dict)
    feed: PairFeed | None = None
    optimizer: Any = None
    scheduler: Any = None
    dist: Dist = field(default_factory=Dist)

    @property
    def model(self):
        return self.trainer.model

    def train_step(self, prompts: list[str], chosen: list[str], rejected: list[str]) -> None:
        """One DPO step of TRL's trainer on these pairs (this process reads its block of them); the
        optimiser and learning-rate schedule carry over from the previous step."""
        self.feed.set(prompts, chosen, rejected)
        # the trainer wraps its optimiser for accelerate on every train() call: hand it the bare one
        # each time so the wrappers do not nest (the state lives in the bare optimiser)
        self.trainer.optimizer, self.trainer.lr_scheduler = self.optimizer, self.scheduler
        self.trainer.train()


def _lora_config(s: PolicyTrainSettings):
    from peft import LoraConfig

    return LoraConfig(r=s.lora.r, lora_alpha=s.lora.alpha, lora_dropout=s.lora.dropout,
                      target_modules=list(s.lora.target_modules), bias="none", task_type="CAUSAL_LM")


def _dpo_config(s: PolicyTrainSettings, out: Path, seed: int, batch: int):
    import torch
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=1, learning_rate=s.learning_rate,
        weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm, beta=s.beta, max_length=s.max_length,
        lr_scheduler_type=s.lr_scheduler, warmup_steps=s.warmup_steps,
        report_to=[r for r in s.report_to if r != "none"] or "none",
        save_strategy="no", logging_steps=1, seed=seed, disable_tqdm=True, gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
    )


def _last_logs_callback(sink: dict):
    """A TrainerCallback that keeps the metrics of the last logged step in ``sink``."""
    from transformers import TrainerCallback

    class LastLogs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                sink.clear()
                sink.update({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})

    return LastLogs()


def make_trainer(policy, s: PolicyTrainSettings, out: Path, seed: int, sink: dict, feed: PairFeed):
    """(trainer, optimiser, scheduler): TRL's DPOTrainer over ``feed``'s pairs (a ``datasets.IterableDataset``
    it tokenises through its public dataset path on every ``train()`` call), wrapping the policy in a
    fresh LoRA adapter; the optimiser (the trainer's own ``create_optimizer``) and the schedule
    (``transformers.get_scheduler`` over ``iterations`` steps) are made now, once, so they carry
    across iterations and a checkpoint's state can be loaded into them before the first step.

    ``max_steps=1``: one ``train()`` call is one optimiser step over every pair of the iteration (the
    per-device batch holds them all: ``pairs_per_iteration``)."""
    import datasets
    from transformers import get_scheduler
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import DPOTrainer

    datasets.disable_progress_bar()
    trainer = DPOTrainer(model=policy.model, args=_dpo_config(s, out, seed, s.pairs_per_iteration),
                         train_dataset=feed.dataset(), processing_class=policy.tokenizer, peft_config=_lora_config(s),
                         callbacks=[_last_logs_callback(sink)])
    for cb in (PrinterCallback, ProgressCallback):  # the loop logs each iteration itself
        trainer.remove_callback(cb)
    optimizer = trainer.create_optimizer()
    scheduler = get_scheduler(s.lr_scheduler, optimizer, num_warmup_steps=s.warmup_steps, num_training_steps=s.iterations)
    return trainer, optimizer, scheduler


def seed_env(env: Env, seed: int) -> Env:
    """``env`` as one seed's run sees it: its RMs (with their names, costs, prior means and offline
    margins) listed in that seed's order (:func:`rmroute.harness.routing.arm_order`)."""
    perm = arm_order(seed, len(env.names), env.settings.permute_arms)
    off = env.offline
    return dataclasses.replace(
        env, names=[env.names[k] for k in perm], rms=[env.rms[k] for k in perm], costs=np.asarray(env.costs)[perm],
        prior_mean=None if env.prior_mean is None else np.asarray(env.prior_mean)[perm],
        offline=None if off is None else dataclasses.replace(off, margins=off.margins[:, perm]))


def build_router(env: Env, spec, seed: int):
    """The run's router: ``prior_mean: offline`` taken from the bundle, fitted offline when it does that."""
    router = spec.build(len(env.names), env.dim, seed, prior_mean=env.prior_mean)
    if spec.fit_offline:
        off = env.offline
        router.fit_offline(off.X, off.margins, off.gold, [{"domain": d} for d in off.domains])
    return router


def build_run(env: Env, cfg, label: str, spec, seed: int, ckpt_dir: Path, dist: Dist | None = None) -> Run:
    """A fresh (router, seed) run: the policy with a new LoRA adapter, its trainer and generator, the
    router and its feedback chain (its entry's ``normalizers``, else the config's, else the chain of
    its feedback kind, :data:`rmroute.harness.routing.TRAIN_FEEDBACK`). ``dist``: this process's place
    under ``accelerate launch`` (default: one process)."""
    dist = dist or Dist()
    s = env.settings
    policy = load_policy(s.policy)
    sink: dict = {}
    feed = PairFeed(dist)
    trainer, optimizer, scheduler = make_trainer(policy, s, Path(ckpt_dir) / "trainer", seed, sink, feed)
    generator = create_ref("generator", s.generator, "settings.generator", model=trainer.model, tokenizer=policy.tokenizer)
    router = build_router(env, spec, seed)
    chain = spec.chain(list(cfg.normalizers) or list(TRAIN_FEEDBACK[spec.feedback]), on_bad_feedback=s.on_bad_feedback)
    state = LoopState(rng=derived_rng(seed, "train-run"))
    return Run(label=label, spec=spec, seed=seed, policy=policy, trainer=trainer, generator=generator,
               router=router, chain=chain, state=state, last_logs=sink, feed=feed, optimizer=optimizer,
               scheduler=scheduler, dist=dist)


# ---- checkpoint state -------------------------------------------------------------------------
def snapshot(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """(optimiser state, everything else) for :func:`rmroute.harness.runners.train.checkpoint.save_checkpoint`."""
    import torch

    st = run.state
    return run.optimizer.state_dict(), {
        "cursor": st.cursor, "rng": st.rng.bit_generator.state, "log": st.log,
        "router": run.router.state_dict(), "chain": run.chain.state_dict(), "scheduler": run.scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(), "numpy_global": np.random.get_state(), "python_random": random.getstate(),
        "label": run.label, "seed": run.seed,
    }


def restore(run: Run, ck) -> None:
    """Load a checkpoint into a freshly built run."""
    import torch

    s = ck.state
    if s.get("label") != run.label or s.get("seed") != run.seed:
        raise CheckpointError(f"checkpoint {ck.folder} is for {s.get('label')!r} seed {s.get('seed')}, "
                              f"not {run.label!r} seed {run.seed}; delete {ck.folder.parent} or run without --resume")
    if "scheduler" not in s:
        raise CheckpointError(f"checkpoint {ck.folder} has no learning-rate schedule state (written by an older "
                              f"rmroute); delete {ck.folder.parent} or run without --resume")
    load_adapter_weights(run.model, ck.adapter_dir)
    run.optimizer.load_state_dict(load_optimizer_state(ck))
    run.scheduler.load_state_dict(s["scheduler"])
    run.router.load_state_dict(s["router"])
    run.chain.load_state_dict(s["chain"])
    run.state.rng.bit_generator.state = s["rng"]
    run.state.cursor, run.state.log, run.state.iteration = int(s["cursor"]), list(s["log"]), int(ck.iteration)
    torch.set_rng_state(s["torch_rng"])
    np.random.set_state(s["numpy_global"])
    random.setstate(s["python_random"])
