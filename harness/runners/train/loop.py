"""One iteration of the training loop: generate, route, score, train, feed back (see
:mod:`rmroute.harness.runners.train.runner` for the whole run, :mod:`rmroute.harness.runners.train.state`
for what it holds).

Conventions used here:

* pairs: for a prompt with responses r_0..r_{n-1}, candidate pair (i, j), i < j, has response A = r_i
  and B = r_j; ``margin_k = score_k(A) − score_k(B)``; a decided margin d > tie_eps keeps A as chosen,
  d < −tie_eps keeps B;
* RM calls: one call = one (pair, RM) cell, which scores both responses (as in replay);
* routing: :func:`rmroute.harness.routing.route` with ``on_abstain="next"`` (a pair whose called RMs
  all abstained calls the router's next arm by :func:`rmroute.harness.routing.arm_ranking`, posterior
  mean else UCB, or the following indices k+1, k+2, ... mod K, and credits it), as replay does; each
  kept pair's feedback goes to its credited arm (:func:`rmroute.harness.routing.feedback_cells`);
* shares: ``calls_per_rm`` counts calls; ``credited_share`` is the share of pairs credited to each RM;
* losses, all from forward passes over the kept pairs *before* the iteration's DPO step:
  ``pair_losses`` (each pair's DPO loss, :func:`rmroute.harness.runners.train.dpo.dpo_pair_losses`, no
  gradient, eval mode: the router's raw feedback), ``loss_before`` and ``reward_margin`` (their means
  and the mean β·Δ), ``dpo_loss`` (the loss TRL logs for the step: the same pairs and weights, its own
  training forward pass). No loss is measured after the step (it would cost the four forward passes
  of ``dpo_pair_losses`` again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rmroute.harness.core.errors import RmrouteError
from rmroute.harness.determinism import derived_rng
from rmroute.harness.routing import Routed, decide, feedback_cells, loss_feedback, route, rows_items, update_router
from rmroute.harness.runners.train import dpo
from rmroute.harness.runners.train.state import Env, LoopState, Run


class TrainingDiverged(RmrouteError):
    """A NaN/inf loss: the run stops; its last good checkpoint stays."""


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


def generation_seed(seed: int, it: int, chunk: int) -> int:
    """The seed of generation chunk ``chunk`` of iteration ``it``: chunk 0 keeps the one-call seed of
    earlier rmroute versions (``train-generation``), later chunks have their own stream."""
    rng = (derived_rng(seed, "train-generation", it) if chunk == 0
           else derived_rng(seed, "train-generation-chunk", it, chunk))
    return int(rng.integers(0, 2**31 - 1))


def generate_batch(env: Env, run: Run, formatted: list[str], it: int) -> list[list[str]]:
    """``samples_per_prompt`` responses per prompt: the prompts are cut into chunks of
    ``generation_chunk`` (default: all of them in one process, an equal share per process), chunk j
    generated with :func:`generation_seed` (j) by process ``j mod N`` and gathered in prompt order. The
    same chunks give the same samples whatever the number of processes."""
    s, dist = env.settings, run.dist
    size = s.generation_chunk or -(-len(formatted) // dist.world)
    chunks = [formatted[i:i + size] for i in range(0, len(formatted), size)]
    try:
        mine = ("ok", {j: run.generator.generate(chunks[j], s.samples_per_prompt, generation_seed(run.seed, it, j))
                       for j in range(dist.rank, len(chunks), dist.world)})
    except Exception as exc:  # noqa: BLE001 - every process must learn of it, or the others wait forever
        if dist.world == 1:
            raise
        mine = ("error", f"process {dist.rank}: {type(exc).__name__}: {exc}")
    parts: dict[int, list[list[str]]] = {}
    for tag, value in dist.gather(mine):
        if tag == "error":
            raise RmrouteError(f"generation failed at iteration {it}: {value}")
        parts.update(value)
    return [responses for j in range(len(chunks)) for responses in parts[j]]


@dataclass
class Pairs:
    """The iteration's kept pairs as every process needs them: DPO prompt, chosen, rejected, and
    whether TRL's preprocessing keeps each (:func:`rmroute.harness.runners.train.dpo.trl_keeps`)."""

    prompts: list[str]
    chosen: list[str]
    rejected: list[str]
    trainable: np.ndarray


@dataclass
class Decided:
    """What rank 0 decides in an iteration: candidate pairs, contexts, the routed batch, kept pairs."""

    owner: list[int]
    X: np.ndarray
    routed: Routed
    decision: np.ndarray
    keep: np.ndarray
    pairs: Pairs
    seconds: dict[str, float]


def decide_pairs(env: Env, run: Run, batch: list, formatted: list[str], samples: list[list[str]]) -> Decided:
    """Candidate pairs, contexts, routing, scoring and the decision of each pair (rank 0 only)."""
    s, st = env.settings, run.state
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
    keep = np.flatnonzero(np.isfinite(decision) & (np.abs(decision) > s.tie_eps))
    chosen = [pa[i] if decision[i] > 0 else pb[i] for i in keep]
    rejected = [pb[i] if decision[i] > 0 else pa[i] for i in keep]
    prompts = [_dpo_prompt(run.policy, formatted[owner[i]]) for i in keep]
    trainable = dpo.trl_keeps(run.policy.tokenizer, prompts, chosen, rejected, s.max_length)
    return Decided(owner=owner, X=X, routed=routed, decision=decision, keep=keep,
                   pairs=Pairs(prompts, chosen, rejected, trainable),
                   seconds={"featurize": t_feat, "route": t_route, "score": t_score})


def pair_losses(env: Env, run: Run, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """(loss, β·Δ) of every kept pair under the policy before the step: each process computes its block,
    all blocks are gathered in pair order."""
    s, dist = env.settings, run.dist
    mine = dist.mine(len(pairs.prompts))
    pl = dpo.dpo_pair_losses(run.model, run.policy.tokenizer, pairs.prompts[mine.start:mine.stop],
                             pairs.chosen[mine.start:mine.stop], pairs.rejected[mine.start:mine.stop], s.beta,
                             s.loss_batch_size, s.max_length)
    blocks = dist.gather((pl.loss, pl.margin))
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def skip_reason(pairs: Pairs, world: int, max_length: int | None) -> str | None:
    """Why the iteration's DPO step (and its feedback) is skipped, or None."""
    n, trainable = len(pairs.prompts), int(pairs.trainable.sum())
    if n and trainable == 0:
        # nothing of a dropped pair's responses is left to train on or to compare, so neither the step
        # nor the feedback would mean anything
        return (f"TRL's DPO preprocessing dropped all {n} kept pairs (a pair is dropped when its "
                f"prompt alone fills max_length = {max_length} tokens)")
    if n and trainable < world:
        return f"{trainable} trainable pair(s) for {world} processes: a process would have none to step on"
    return None


def run_iteration(env: Env, run: Run) -> dict[str, Any]:
    """One generate → route → score → per-pair losses → train → feedback iteration; returns its log
    record (on rank 0; the other processes of a data-parallel launch return ``{"iteration": t}``)."""
    s, st, dist = env.settings, run.state, run.dist
    it = st.iteration
    t_start = time.perf_counter()
    run.last_logs.clear()
    batch = _batch(env, st)
    batch_ids = [p.id for p in batch]
    formatted = [run.policy.format_prompt(p.prompt) for p in batch]
    t0 = time.perf_counter()
    samples = generate_batch(env, run, formatted, it)
    t_gen = time.perf_counter() - t0

    decided = dist.on_main(lambda: decide_pairs(env, run, batch, formatted, samples), share=lambda d: d.pairs)
    pairs: Pairs = decided.pairs if dist.is_main else decided
    dpo_loss = reward_margin = loss_before = float("nan")
    fb_norm: list[float] = []
    losses: list[float] = []
    trained_pairs = 0
    skipped = skip_reason(pairs, dist.world, s.max_length)
    t_train = t_loss = t_fb = 0.0
    if len(pairs.prompts) and skipped is None:
        # the feedback: each kept pair's DPO loss under the policy the step starts from (BayesianRouter's
        # rule: the forward pass before the step, not the loss the step has just lowered)
        t0 = time.perf_counter()
        loss, margin = pair_losses(env, run, pairs)
        bad = ~np.isfinite(loss)
        if bad.any():
            _check_finite(float(loss[bad][0]), f"the DPO loss of kept pair {int(np.flatnonzero(bad)[0])}", it, batch_ids)
        loss_before, reward_margin = float(loss.mean()), float(margin.mean())
        t_loss = time.perf_counter() - t0
        t0 = time.perf_counter()
        run.last_logs.clear()
        t = np.flatnonzero(pairs.trainable)
        t = t[:t.size - t.size % dist.world]  # equal blocks (see rmroute.harness.runners.train.dist)
        trained_pairs = int(t.size)
        run.train_step([pairs.prompts[i] for i in t], [pairs.chosen[i] for i in t], [pairs.rejected[i] for i in t])
        run.generator.sync(run.model)  # in-process generators share the model; vLLM reloads the adapter
        dpo_loss = float(run.last_logs.get("loss", float("nan")))
        _check_finite(dpo_loss, "the DPO training loss", it, batch_ids)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        fb_norm = dist.on_main(lambda: feed_back(run, decided, loss), share=lambda _: [])
        losses = loss.tolist()
        t_fb = time.perf_counter() - t0
    if not dist.is_main:
        return {"iteration": it}
    routed, keep, arms, calls = decided.routed, decided.keep, decided.routed.arms, decided.routed.calls
    trained = keep.size > 0 and skipped is None
    credited = arms[keep] if keep.size else arms
    abstained = int((calls & np.isnan(routed.margins)).sum())
    return {
        "iteration": it, "prompts": batch_ids, "pairs": len(decided.owner), "pairs_kept": int(keep.size),
        "pairs_trained": trained_pairs, "dpo_loss": dpo_loss, "loss_before": loss_before, "reward_margin": reward_margin,
        "trl_reward_margin": run.last_logs.get("rewards/margins"), "grad_norm": run.last_logs.get("grad_norm"),
        "rm_calls": int(calls.sum()), "calls_per_rm": {n: int(calls[:, k].sum()) for k, n in enumerate(env.names)},
        "credited_share": {n: float(np.mean(credited == k)) if credited.size else 0.0 for k, n in enumerate(env.names)},
        "feedback_arms": arms[keep].tolist() if trained else [], "feedback": fb_norm, "pair_losses": losses,
        "abstained": abstained, "fallbacks": routed.fallback_calls, "dpo_skipped": skipped,
        "time": {"generate": t_gen, **decided.seconds, "train": t_train,
                 "loss": t_loss, "feedback": t_fb, "total": time.perf_counter() - t_start},
    }


def feed_back(run: Run, decided: Decided, loss: np.ndarray) -> list[float]:
    """The kept pairs' losses through the router's chain to ``router.update`` for their credited arms
    (rank 0); returns the normalised feedback."""
    raw_fb = loss_feedback(run.spec.feedback, loss)
    rows, fb_arms = feedback_cells(decided.routed, rows=decided.keep)
    fb = update_router(run.router, run.chain, decided.X[rows], fb_arms, raw_fb, items=rows_items(decided.routed, rows))
    return fb.tolist()
