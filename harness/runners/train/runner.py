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
7. feedback: each kept pair's DPO loss under the policy *before* the step (a no-gradient forward
   pass, :mod:`rmroute.harness.runners.train.dpo`, made just before step 6) goes through the router's
   normalizer chain to ``router.update`` for the credited arm. ``loss`` routers (BayesianRouter)
   get the loss, default chain ``batch-baseline`` → ``quantile`` (r̃ = mean(loss) − loss, then
   rescaled); ``neg-loss`` routers (``laser``) get ``−loss``, default chain ``quantile`` with
   ``unit: batch`` (LASeR: one value per batch, −(batch loss), raw while the history holds fewer
   than two). A router entry's ``normalizers``, else the config's, replace the default chain.

After every iteration the run is checkpointed (:mod:`rmroute.harness.runners.train.checkpoint`). ``resume=True`` skips
runs whose run JSON is ``ok`` and continues the others from their last checkpoint; on CPU with a
fixed seed the result equals an uninterrupted run; a checkpoint that fails its checks (a truncated or
changed file, see :mod:`rmroute.harness.runners.train.checkpoint`) fails the run with a message naming the file. A NaN
loss stops the run (status ``failed``, naming iteration and batch) and leaves the last good
checkpoint in place.

The package, imports running one way: ``settings`` (the config's ``settings`` model) ← ``state``
(the shared environment and one run's state, checkpoint snapshots) ← ``loop`` (one iteration) and
``plan`` (``--dry-run``) ← this module (the grid over routers × seeds through
:mod:`rmroute.harness.runners.grid`: run files, ``--resume``, ``--only``, Ray).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.console import Console

from rmroute.harness.core.config import Problems, RunConfig, check_plugin, check_run_ids
from rmroute.harness.core.errors import ConfigError, RmrouteError
from rmroute.harness.determinism import describe
from rmroute.harness.pipelines.offline import check_offline_ref
from rmroute.harness.pipelines.pool import build_reward_models, pool_rm_names
from rmroute.harness.paths import config_file_ref, resolved_settings
from rmroute.harness.progress import progress_bar
from rmroute.harness.results import DataInfo, RouterInfo, confined
from rmroute.harness.routing import check_routers, resolve_routers, router_spec
from rmroute.harness.runners import grid, settings_of
from rmroute.harness.runners.train.checkpoint import load_latest, save_checkpoint
from rmroute.harness.runners.train.dist import Dist
from rmroute.harness.runners.train.loop import run_iteration
from rmroute.harness.runners.train.plan import plan  # noqa: F401 - this runner's --dry-run (runners.get_plan)
from rmroute.harness.runners.train.settings import PolicyTrainSettings
from rmroute.harness.runners.train.state import Env, Run, build_env, build_run, restore, seed_env, snapshot

#: the model `rmroute validate` checks a train config's `settings` against
SETTINGS = PolicyTrainSettings


class StopRequested(RmrouteError):
    """``stop_after`` was reached (used to simulate a killed run)."""


def train_one(env: Env, cfg, label: str, spec, seed: int, ckpt_dir: Path, resume: bool,
              stop_after: int | None, log: Callable[[str], None], progress=None, dist: Dist | None = None
              ) -> dict[str, Any] | None:
    """Train one (router, seed) for ``settings.iterations`` iterations, with the RMs listed in the
    seed's order (:func:`rmroute.harness.runners.train.state.seed_env`); returns the run's outcome
    (rank 0; the other processes of a data-parallel launch return None)."""
    dist = dist or Dist()
    s = env.settings
    pool_names = list(env.names)
    env = seed_env(env, seed)
    spec = spec.in_arm_order(pool_names, env.names)
    run = build_run(env, cfg, label, spec, seed, ckpt_dir, dist)
    ck = load_latest(ckpt_dir) if resume else None
    if ck is not None:
        restore(run, ck)
        log(f"[train] {label} seed {seed}: resumed after iteration {ck.iteration}")
    task = progress.add_task(f"{label} s{seed}", total=s.iterations, completed=run.state.iteration) if progress else None

    def record(rec: dict[str, Any]) -> None:  # rank 0: the log, the checkpoint, the progress line
        run.state.log.append(rec)
        opt_state, state = snapshot(run)
        save_checkpoint(ckpt_dir, run.state.iteration, run.model, opt_state, state)
        log(_format_iteration(label, seed, rec, env.names))
        if progress is not None:
            progress.advance(task)

    while run.state.iteration < s.iterations:
        rec = run_iteration(env, run)
        run.state.iteration += 1
        dist.on_main(lambda: record(rec))
        if stop_after is not None and run.state.iteration >= stop_after and run.state.iteration < s.iterations:
            raise StopRequested(f"{label} seed {seed}: stopped after iteration {run.state.iteration} (stop_after)")
    if not dist.is_main:
        return None
    return {**summarise(env, run, ckpt_dir), "arm_order": list(env.names)}


def _format_iteration(label: str, seed: int, rec: dict[str, Any], names: list[str]) -> str:
    share = " ".join(f"{n}={rec['credited_share'][n]:.2f}" for n in names if rec["credited_share"].get(n))
    t = rec["time"]
    line = (f"[train] {label} s{seed} it{rec['iteration']}: before the step: loss {rec['loss_before']:.4f} "
            f"(TRL {rec['dpo_loss']:.4f}), margin {rec['reward_margin']:.4f}, kept {rec['pairs_kept']}/{rec['pairs']}, calls {rec['rm_calls']}, "
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
        "final_loss": last["loss_before"],
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
    curves = {k: [r[k] for r in logs] for k in ("dpo_loss", "loss_before", "reward_margin", "pairs_kept", "rm_calls")}
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
    grid.check_executor(executor)
    if executor == "ray":
        return _run_ray(cfg, config_path, out_dir, resume, address)
    dist = Dist.from_env()
    console = Console(stderr=True)
    log = log or (lambda m: console.print(m, markup=False, highlight=False))
    if not dist.is_main:
        log = _silent  # rank 0 speaks for the launch
    settings: PolicyTrainSettings = resolved_settings(settings_of(cfg), config_path)  # pool / offline: harness.paths
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    trainable = trainable_entries(cfg, config_path, log)
    need = any(router_spec(r.name).fit_offline for _, r in trainable)
    if only and "entry" in only:
        trainable = [(i, r) for i, r in trainable if i == only["entry"]]
    cfg_routers = cfg.model_copy(update={"routers": [r for _, r in trainable]})
    with dist.main_first():  # rank 0 scores the offline pairs and trains missing RMs; the others read the caches
        env = build_env(cfg, settings, need, log)  # RMs, prompts, contexts; router specs need the RM names
    runs = grid.Grid(cfg, config_path, out_dir, "train")
    cells = runs.select([grid.Cell(spec.label, seed, prefix="train", item=spec)
                         for spec in resolve_routers(cfg_routers.routers, env.names) for seed in cfg.seeds], only)
    data = DataInfo(name=f"{settings.prompts.source}@seed{settings.prompts.seed}[{','.join(settings.prompts.domains)}]",
                    sha256=env.data_sha, n=len(env.prompts))
    # every process trains the same cells in the same order: rank 0's view of what is pending
    todo = {id(c) for c in runs.pending(cells, resume)} if dist.is_main else set()
    pending = dist.broadcast([i for i, c in enumerate(cells) if id(c) in todo] if dist.is_main else None)
    with progress_bar(console=console, transient=False, disable=not dist.is_main) as progress:
        for cell in (cells[i] for i in pending):
            label, spec, seed, rid = cell.label, cell.item, cell.seed, runs.run_id(cell)
            ckpt = (Path(settings.checkpoint_dir) / rid if settings.checkpoint_dir
                    else confined(runs.out_dir, runs.out_dir / "checkpoints" / cfg.suite / rid))
            outcome = grid.attempt(train_one, env, cfg, label, spec, seed, ckpt, resume, stop_after, log, progress, dist,
                                   reraise=(StopRequested,))
            if outcome.error:
                log(f"[train] {label} seed {seed} failed: {outcome.error}")
            if not dist.is_main:
                continue
            out = outcome.value
            runs.write(
                cell, outcome,
                router=RouterInfo(name=spec.name, params=grid.jsonable_params(spec.params), label=label),
                reward_models=list(env.names), data=data,
                metrics=out["metrics"] if out else {}, rm_calls=out["rm_calls"] if out else {},
                command=f"rmroute run {config_path}",
                extra={"policy": settings.policy.model_dump(mode="json"), "checkpoint": out["checkpoint"] if out else str(ckpt),
                       "adapter": _relative_to(out["checkpoint"], runs.folder) if out else None,
                       "curves": out["curves"] if out else {}, "iterations": out["iterations"] if out else [],
                       "final_router_state": _state_digest(out["router_state"]) if out else None,
                       "learns": spec.learns, "compute": describe(),
                       "arm_order": out["arm_order"] if out else list(env.names)},
            )
    return [runs.path(c) for c in cells] if dist.is_main else []


def _silent(_: str) -> None:
    pass


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
    settings: PolicyTrainSettings = settings_of(cfg)
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
            names = [rm.name for rm in build_reward_models(cfg.reward_models)]
        except Exception as exc:  # noqa: BLE001 - an RM's own check of its params, whatever it raises
            problems.add(("reward_models",), str(exc))
    elif settings.pool:
        pool = config_file_ref(problems, ("settings", "pool"), settings.pool, path)
        names = None if pool is None else pool_rm_names(problems, ("settings", "pool"), str(pool))
    else:
        problems.add(("reward_models",), "a train config needs reward_models or settings.pool (e.g. configs/pool-cpu.yaml)")
    if settings.offline:
        offline = config_file_ref(problems, ("settings", "offline"), settings.offline, path)
        if offline is not None:
            check_offline_ref(problems, ("settings", "offline"), str(offline), names)
    elif cfg.featurizer is None:
        problems.add(("settings",), "a train config needs contexts: settings.offline (an offline-router config) or a featurizer")
    if names is not None:
        labels = check_routers(problems, entries, names, bool(settings.offline))
        check_run_ids(problems, [(("routers", i), grid.run_id("train", label, max(cfg.seeds), "0" * 64)) for i, label in labels])
    problems.raise_if_any()


def _ray_cell(cfg_json: dict[str, Any], config_path: str, out_dir: str, resume: bool, only: dict[str, Any],
              cwd: str) -> list[str]:
    """One Ray task: the local runner restricted to one (router entry, seed), in the driver's folder.

    Safe to run again after its worker died (:func:`grid.ray_task`): each run file is written
    atomically under its cell's fixed name, so an attempt killed part-way leaves no half-written
    file and the retry replaces, never duplicates, what it wrote; the retry trains from iteration 0
    (rewriting the killed attempt's checkpoints), or with ``--resume`` from the last checkpoint;
    either way the run equals an uninterrupted one (training on CPU is deterministic)."""
    os.chdir(cwd)  # config paths (pool, offline, policy) are relative to where `rmroute run` was started
    cfg = RunConfig.model_validate(cfg_json)
    return [str(p) for p in run(cfg, config_path, out_dir, resume=resume, only=only)]


def _run_ray(cfg, config_path, out_dir, resume: bool, address: str | None) -> list[Path]:
    """Every (router entry, seed) as a Ray task writing its own run files into ``out_dir`` (shared
    storage on a cluster); waits for all of them, then raises naming the tasks that failed for good
    (the other tasks' run files are written; ``--resume`` reruns only what is missing)."""
    settings: PolicyTrainSettings = settings_of(cfg)
    cells = [{"entry": i, "seed": seed} for i, _ in trainable_entries(cfg, config_path) for seed in cfg.seeds]
    with grid.ray_session(address) as ray:
        task = grid.ray_task(ray, _ray_cell, num_cpus=settings.ray_num_cpus, num_gpus=settings.ray_num_gpus)
        refs = [task.remote(cfg.model_dump(mode="json"), str(config_path), str(Path(out_dir).resolve()), resume,
                            cell, os.getcwd()) for cell in cells]
        paths, failed = [], []
        for cell, (value, error) in zip(cells, grid.ray_results(ray, refs)):
            if error is None:
                paths += [Path(p) for p in value]
            else:
                ref = cfg.routers[cell["entry"]]
                failed.append(f"routers[{cell['entry']}] ({ref.label or ref.name}) seed {cell['seed']}: {error}")
    if failed:
        raise RmrouteError(f"{config_path}: {len(failed)} of {len(cells)} Ray task(s) failed (the others wrote their "
                           "run files; `rmroute run --resume` runs only the missing ones):\n  " + "\n  ".join(failed))
    return paths


def _relative_to(target: str, folder: Path) -> str:
    """``target`` relative to ``folder`` (how a run JSON names its adapter, so results/ can move)."""
    return os.path.relpath(Path(target).resolve(), folder.resolve())


def _state_digest(state: dict[str, Any]) -> str:
    """sha256 of a router state (arrays by value), to compare runs without storing the state."""
    def norm(v):
        if isinstance(v, dict):
            return {k: norm(v[k]) for k in sorted(v)}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, np.ndarray):
            return ("array", v.dtype.str, v.shape, v.tobytes())
        return v

    return hashlib.sha256(pickle.dumps(norm(state), protocol=4)).hexdigest()
