"""One iteration of the training loop and the run's build / checkpoint plumbing (see rmroute.harness.runners.train.runner).

Conventions used here:

* pairs: for a prompt with responses r_0..r_{n-1}, candidate pair (i, j), i < j, has response A = r_i
  and B = r_j; ``margin_k = score_k(A) − score_k(B)``; a decided margin d > tie_eps keeps A as chosen,
  d < −tie_eps keeps B;
* RM calls: one call = one (pair, RM) cell, which scores both responses (as in replay);
* routing: :func:`rmroute.harness.routing.route` with ``on_abstain="next"`` (a pair whose called RMs
  all abstained calls the router's next arm by :func:`rmroute.harness.routing.arm_ranking`, posterior
  mean else UCB, or the following indices k+1, k+2, ... mod K, and credits it) and
  ``learn="credited"`` (each kept pair's feedback goes to its credited arm);
* shares: ``calls_per_rm`` counts calls; ``credited_share`` is the share of pairs credited to each RM.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from rmroute.harness.routing import TRAIN_FEEDBACK, Routed, build_chain, decide, feedback_cells, route, update_router
from rmroute.harness.runners.train.runner import Env, LoopState, Run, TrainingDiverged


# ---- building a run ---------------------------------------------------------------------------
def _lora_config(s):
    from peft import LoraConfig

    return LoraConfig(r=s.lora.r, lora_alpha=s.lora.alpha, lora_dropout=s.lora.dropout,
                      target_modules=list(s.lora.target_modules), bias="none", task_type="CAUSAL_LM")


def _dpo_config(s, out: Path, seed: int, batch: int):
    import torch
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=1, learning_rate=s.learning_rate,
        weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm, beta=s.beta, max_length=s.max_length,
        lr_scheduler_type="constant", warmup_steps=0, report_to=[r for r in s.report_to if r != "none"] or "none",
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


def make_trainer(policy, s, out: Path, seed: int, sink: dict):
    """A DPOTrainer that wraps the policy in a fresh LoRA adapter; its optimiser is created now so a
    checkpoint's state can be loaded into it before the first step."""
    import datasets
    from datasets import Dataset
    from trl import DPOTrainer

    datasets.disable_progress_bar()
    placeholder = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    batch = s.batch_prompts * (s.pairs_per_prompt or s.samples_per_prompt * (s.samples_per_prompt - 1) // 2)
    trainer = DPOTrainer(model=policy.model, args=_dpo_config(s, out, seed, batch), train_dataset=placeholder,
                         processing_class=policy.tokenizer, peft_config=_lora_config(s), callbacks=[_last_logs_callback(sink)])
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # the loop logs each iteration itself
        trainer.remove_callback(cb)
    trainer.create_optimizer()
    return trainer


def build_router(env: Env, spec, seed: int):
    router = spec.build(len(env.names), env.dim, seed, prior_mean=env.prior_mean)
    if spec.fit_offline:
        off = env.offline
        router.fit_offline(off.X, off.margins, off.gold, [{"domain": d} for d in off.domains])
    return router


def build_run(env: Env, cfg, label: str, spec, seed: int, ckpt_dir: Path) -> Run:
    from rmroute.harness.core.plugins import create
    from rmroute.harness.pipelines.policy import load_policy

    s = env.settings
    policy = load_policy(s.policy)
    sink: dict = {}
    trainer = make_trainer(policy, s, Path(ckpt_dir) / "trainer", seed, sink)
    generator = create("generator", s.generator.name, model=trainer.model, tokenizer=policy.tokenizer, **s.generator.params)
    router = build_router(env, spec, seed)
    neg = spec.feedback == "neg-loss"
    chain = build_chain(list(cfg.normalizers) or list(TRAIN_FEEDBACK[spec.feedback]), on_bad_feedback=s.on_bad_feedback)
    state = LoopState(rng=np.random.default_rng([seed, 7]))
    return Run(label=label, spec=spec, seed=seed, policy=policy, trainer=trainer, generator=generator,
               router=router, chain=chain, neg_loss=neg, state=state, last_logs=sink)


# ---- checkpoint state -------------------------------------------------------------------------
def _raw_optimizer(trainer):
    opt = trainer.optimizer
    while hasattr(opt, "optimizer"):  # accelerate wraps it (once per train() call)
        opt = opt.optimizer
    return opt


def snapshot(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """(optimiser state, everything else) for :func:`rmroute.harness.runners.train.checkpoint.save_checkpoint`."""
    import torch

    st = run.state
    return _raw_optimizer(run.trainer).state_dict(), {
        "cursor": st.cursor, "rng": st.rng.bit_generator.state, "log": st.log,
        "router": run.router.state_dict(), "chain": run.chain.state_dict(),
        "torch_rng": torch.get_rng_state(), "numpy_global": np.random.get_state(), "python_random": random.getstate(),
        "label": run.label, "seed": run.seed,
    }


def restore(run: Run, ck) -> None:
    """Load a checkpoint into a freshly built run."""
    import torch

    from rmroute.harness.runners.train.checkpoint import CheckpointError, load_adapter_weights, load_optimizer_state

    s = ck.state
    if s.get("label") != run.label or s.get("seed") != run.seed:
        raise CheckpointError(f"checkpoint {ck.folder} is for {s.get('label')!r} seed {s.get('seed')}, "
                              f"not {run.label!r} seed {run.seed}; delete {ck.folder.parent} or run without --resume")
    load_adapter_weights(run.model, ck.adapter_dir)
    _raw_optimizer(run.trainer).load_state_dict(load_optimizer_state(ck))
    run.router.load_state_dict(s["router"])
    run.chain.load_state_dict(s["chain"])
    run.state.rng.bit_generator.state = s["rng"]
    run.state.cursor, run.state.log, run.state.iteration = int(s["cursor"]), list(s["log"]), int(ck.iteration)
    torch.set_rng_state(s["torch_rng"])
    np.random.set_state(s["numpy_global"])
    random.setstate(s["python_random"])


# ---- one iteration ----------------------------------------------------------------------------
def _batch(env: Env, st: LoopState) -> list:
    n = len(env.prompts)
    b = env.settings.batch_prompts
    idx = [(st.cursor + i) % n for i in range(b)]
    st.cursor = (st.cursor + b) % n
    return [env.prompts[i] for i in idx]


def candidate_pairs(n: int, per_prompt: int | None, rng: np.random.Generator) -> list[tuple[int, int]]:
    """All (i, j), i < j, of n responses, or ``per_prompt`` of them drawn without replacement."""
    allp = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if per_prompt is None or per_prompt >= len(allp):
        return allp
    return [allp[k] for k in sorted(rng.choice(len(allp), per_prompt, replace=False))]


def score_cells(env: Env, prompts: list[str], a: list[str], b: list[str], cells: np.ndarray, margins: np.ndarray) -> None:
    """Fill ``margins[i, k]`` for every True ``cells[i, k]`` (score_k(a_i) − score_k(b_i), NaN = abstained)."""
    for k, rm in enumerate(env.rms):
        rows = np.flatnonzero(cells[:, k])
        if rows.size == 0:
            continue
        ps = [prompts[i] for i in rows]
        vals, _ = env.cache.score(rm, ps + ps, [a[i] for i in rows] + [b[i] for i in rows])
        margins[rows, k] = vals[:rows.size] - vals[rows.size:]


def route_and_score(env: Env, run: Run, X, items, prompts, a, b) -> tuple[Routed, np.ndarray, float, float]:
    """Select, score what was paid for, fall back where every called RM abstained, decide each pair;
    returns (the routed batch, the (B,) decision margins, seconds in routing, seconds in scoring)."""
    t_score = 0.0

    def pay(cells: np.ndarray, margins: np.ndarray) -> None:
        nonlocal t_score
        t1 = time.perf_counter()
        score_cells(env, prompts, a, b, cells, margins)
        t_score += time.perf_counter() - t1

    t0 = time.perf_counter()
    routed = route(run.router, X, items, pay, on_abstain="next")
    decision = decide(run.router, routed)
    return routed, decision, time.perf_counter() - t0 - t_score, t_score


def _dpo_prompt(policy, text: str) -> str:
    """The formatted prompt as TRL should tokenise it: without a leading BOS text when the tokenizer
    adds BOS itself (otherwise it would be doubled)."""
    tok = policy.tokenizer
    bos = tok.bos_token
    if bos and text.startswith(bos):
        ids = tok("x")["input_ids"]
        if ids and ids[0] == tok.bos_token_id:
            return text[len(bos):]
    return text


def _check_finite(value: float, what: str, it: int, batch_ids: list[str]) -> None:
    if not np.isfinite(value):
        raise TrainingDiverged(f"{what} is {value} at iteration {it} (batch prompts {batch_ids}); "
                               "the last good checkpoint is kept")


def run_iteration(env: Env, run: Run) -> dict[str, Any]:
    """One generate → route → score → train → feedback iteration; returns its log record."""
    from datasets import Dataset

    from rmroute.harness.runners.train.dpo import dpo_pair_losses

    s, st = env.settings, run.state
    it = st.iteration
    t_start = time.perf_counter()
    run.last_logs.clear()
    batch = _batch(env, st)
    batch_ids = [p.id for p in batch]
    formatted = [run.policy.format_prompt(p.prompt) for p in batch]
    t0 = time.perf_counter()
    gen_seed = int(np.random.default_rng([run.seed, it, 11]).integers(0, 2**31 - 1))
    samples = run.generator.generate(formatted, s.samples_per_prompt, gen_seed)
    t_gen = time.perf_counter() - t0

    owner, pa, pb = [], [], []
    for q, resp in enumerate(samples):
        for i, j in candidate_pairs(len(resp), s.pairs_per_prompt, st.rng):
            owner.append(q)
            pa.append(resp[i])
            pb.append(resp[j])
    raw = [batch[q].prompt for q in owner]
    t0 = time.perf_counter()
    X = env.featurize(raw, pa, pb)
    t_feat = time.perf_counter() - t0
    items = [{"domain": batch[q].domain, "prompt_id": batch[q].id} for q in owner]
    routed, decision, t_route, t_score = route_and_score(env, run, X, items, raw, pa, pb)
    arms, calls = routed.arms, routed.calls
    keep = np.flatnonzero(np.isfinite(decision) & (np.abs(decision) > s.tie_eps))

    chosen = [pa[i] if decision[i] > 0 else pb[i] for i in keep]
    rejected = [pb[i] if decision[i] > 0 else pa[i] for i in keep]
    dpo_prompts = [_dpo_prompt(run.policy, formatted[owner[i]]) for i in keep]
    t0 = time.perf_counter()
    dpo_loss = reward_margin = loss_after = float("nan")
    fb_norm: list[float] = []
    pair_losses: list[float] = []
    skipped = None  # why this iteration's DPO step (and its feedback) was skipped
    if keep.size:
        tr = run.trainer
        ds = Dataset.from_dict({"prompt": dpo_prompts, "chosen": chosen, "rejected": rejected})
        tr.train_dataset = tr._prepare_dataset(ds, run.policy.tokenizer, tr.args, "train")
        if len(tr.train_dataset) == 0:
            # TRL drops a pair whose prompt alone fills max_length: nothing of its responses is left to
            # train on or to compare, so neither the step nor the feedback would mean anything
            skipped = (f"TRL's DPO preprocessing dropped all {keep.size} kept pairs (a pair is dropped when its "
                       f"prompt alone fills max_length = {s.max_length} tokens)")
        else:
            run.last_logs.clear()
            tr.train()
            run.generator.sync(run.model)  # in-process generators share the model; vLLM reloads the adapter
            dpo_loss = float(run.last_logs.get("loss", float("nan")))
            _check_finite(dpo_loss, "the DPO training loss", it, batch_ids)
    trained = keep.size > 0 and skipped is None
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    if trained:
        pl = dpo_pair_losses(run.model, run.policy.tokenizer, dpo_prompts, chosen, rejected, s.beta,
                             s.loss_batch_size, s.max_length)
        bad = ~np.isfinite(pl.loss)
        if bad.any():
            _check_finite(float(pl.loss[bad][0]), f"the DPO loss of pair {int(keep[np.flatnonzero(bad)[0]])}", it, batch_ids)
        loss_after, reward_margin = float(pl.loss.mean()), float(pl.margin.mean())
        t_loss = time.perf_counter() - t0
        t1 = time.perf_counter()
        raw_fb = -pl.loss if run.neg_loss else pl.loss
        rows, fb_arms = feedback_cells(routed, learn="credited", rows=keep)
        fb = update_router(run.router, run.chain, X[rows], fb_arms, raw_fb)
        fb_norm, pair_losses = fb.tolist(), pl.loss.tolist()
        t_fb = time.perf_counter() - t1
    else:
        t_loss = t_fb = 0.0
    credited = arms[keep] if keep.size else arms
    abstained = int((calls & np.isnan(routed.margins)).sum())
    return {
        "iteration": it, "prompts": batch_ids, "pairs": len(owner), "pairs_kept": int(keep.size),
        "dpo_loss": dpo_loss, "loss_after": loss_after, "reward_margin": reward_margin,
        "trl_reward_margin": run.last_logs.get("rewards/margins"), "grad_norm": run.last_logs.get("grad_norm"),
        "rm_calls": int(calls.sum()), "calls_per_rm": {n: int(calls[:, k].sum()) for k, n in enumerate(env.names)},
        "credited_share": {n: float(np.mean(credited == k)) if credited.size else 0.0 for k, n in enumerate(env.names)},
        "feedback_arms": arms[keep].tolist() if trained else [], "feedback": fb_norm, "pair_losses": pair_losses,
        "abstained": abstained, "fallbacks": routed.fallback_calls, "dpo_skipped": skipped,
        "time": {"generate": t_gen, "featurize": t_feat, "route": t_route, "score": t_score, "train": t_train,
                 "loss": t_loss, "feedback": t_fb, "total": time.perf_counter() - t_start},
    }
