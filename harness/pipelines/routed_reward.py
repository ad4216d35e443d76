"""``RoutedReward``: a TRL ``reward_funcs`` callable that routes each prompt to one reward model.

For users of TRL's ``GRPOTrainer`` or (experimental) ``OnlineDPOTrainer`` who want rmroute's
routers inside their own scripts::

    reward = RoutedReward.from_config(router="bayesian-online", reward_models=["length", "lexical-overlap"])
    trainer = GRPOTrainer(model=..., reward_funcs=reward, callbacks=[reward.loss_callback()], ...)

What TRL passes (TRL 1.16): ``reward_func(prompts=..., completions=..., completion_ids=..., **kw)``
with one entry per completion. ``prompts[i]`` is a string (standard) or a list of
``{"role", "content"}`` messages (conversational); ``completions[i]`` is a string or a list holding
one assistant message. GRPO repeats each prompt ``num_generations`` times; online DPO passes
``2 * prompts`` (each prompt twice, the two copies B apart). Extra dataset columns arrive as lists
(one value per completion), plus ``trainer_state`` and, in GRPO, ``log_metric`` / ``log_extra``.

One call (one step's generation batch):

1. **Group** completions by identical prompt (first-appearance order): each group is one routed
   item, so all of a prompt's completions go to one RM. (Groups are formed within one call on one
   process; a group TRL splits across processes is routed by each process separately.)
2. **Context** per group: ``featurizer.embed_pairs([prompt], [a], [b])`` with (a, b) the two
   completions when the group has exactly two (online DPO's pair), else ``("", "")`` (the prompt
   alone). Without a featurizer every group gets the constant context ``x = 1/sqrt(d)·1`` (d =
   router dim, default 1): the router is then a non-contextual bandit. (A zero context would make
   every linear router's scores 0 and its updates ``x xᵀ = 0`` no-ops, so it could never learn.)
3. **Route**: ``router.select(contexts, items)`` (items carry ``domain`` when the dataset has such a
   column). Only the RMs in ``selection.calls`` score the group; majority vote / ensembles call
   every RM.
4. **Reward** per completion:

   * one RM called: its score (``RewardModel.score(prompt_texts, responses)``, through the score
     cache when one is given). If it abstains (NaN, or raises) on any completion of the group, the
     whole group is re-scored by the router's next-best arm that answers every completion (the
     order comes from :func:`rmroute.harness.routing.fallback_orders`), and that arm is credited; if
     none does, the first RM's finite scores are kept and the rest get 0.0. Each such fallback /
     zero is counted. (This is :func:`rmroute.harness.routing.route` with
     ``on_abstain="next-single"``.)
   * several RMs called: ``router.combine(selection, margins)`` per completion, with
     ``margins[j, k] = s_k(j) - mean_j' s_k(j')`` the completion's score minus the group mean of
     RM k (NaN where RM k abstained or was not called). For two completions this is ±half the pair
     margin, so votes and signs agree with the pair decision the router makes in replay. A
     completion with no usable RM gets 0.0, counted.

5. **Remember** each group's (context, credited arm, item) until :meth:`RoutedReward.feedback`.

Feedback: ``feedback(values)`` takes one raw value per pending item (or a scalar for all of them),
runs it through the normalizer chain (:func:`rmroute.harness.routing.build_chain`) with the pending
(credited) arms and calls ``router.update`` on the finite results
(:func:`rmroute.harness.routing.update_router`: the credited arm learns; a router whose ``update``
declares ``items`` gets the groups' items, or None unless every pending call had them); pending items
are then cleared. Items from several calls (gradient accumulation) accumulate until the next feedback.

Loss feedback follows the train runner's per-pair path: :meth:`RoutedReward.feedback_loss` takes the
policy's loss per pending item (in pending order: call order, then group order), makes it the raw
feedback of the router's kind (``loss``: the loss; ``neg-loss``: minus the loss; the keys of
:data:`rmroute.harness.routing.TRAIN_FEEDBACK`) and sends it through the chain, whose default is that
kind's (``loss``: batch-baseline → quantile, BayesianRouter's advantage mean − loss;
``neg-loss``: quantile over per-batch means, LASeR's one −(batch loss) per batch). A scalar is
accepted for trainers that report one number per step: every pending item gets it, which loses
nothing for LASeR's per-batch chain but gives BayesianRouter's batch baseline a zero advantage for
every item (it needs per-item losses). :meth:`RoutedReward.loss_callback` gives a
``transformers.TrainerCallback`` whose ``feed(losses)`` passes per-item losses (call it from your
trainer's loss computation) and which, when the trainer logs a training loss while items are still
pending, feeds that scalar (set ``logging_steps=1`` for every step).

Observability: ``calls[k]`` = completions RM k scored (its cost), ``routed[k]`` = groups credited to
RM k, :attr:`shares` = routed / total, ``abstained`` / ``fallbacks`` counters, ``last_step``
(the last call's groups, arms and selection) and, under GRPO, ``routed_reward/share/<rm>`` metrics
through TRL's ``log_metric``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from rmroute.harness.core.plugins import create_ref
from rmroute.harness.core.types import Selection
from rmroute.harness.pipelines.score_cache import ScoreCache
from rmroute.harness.routing import (TRAIN_FEEDBACK, NormalizerChain, Routed, build_chain, feedback_cells, loss_feedback, route,
                                     router_spec, rows_items, update_router)


# ---- TRL inputs -> texts ---------------------------------------------------------------------
def _content_text(content: Any) -> str:
    """A message's content as text (multimodal content lists keep their text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    raise ValueError(f"message content must be a string or a list of parts, got {type(content).__name__}")


def prompt_text(prompt: Any, index: int = 0) -> str:
    """The prompt as RMs and featurizers see it: the string itself; for messages, the user's text
    (one user turn, system messages dropped) or ``Role: content`` lines for a multi-turn prompt."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(m, Mapping) and "role" in m for m in prompt):
        turns = [m for m in prompt if m["role"] != "system"]
        if len(turns) == 1 and turns[0]["role"] == "user":
            return _content_text(turns[0].get("content", ""))
        return "\n".join(f"{str(m['role']).capitalize()}: {_content_text(m.get('content', ''))}" for m in turns)
    raise ValueError(
        f"prompts[{index}]: expected a string or a list of {{role, content}} messages, got {type(prompt).__name__}"
    )


def completion_text(completion: Any, index: int = 0) -> str:
    """A completion as text: the string, or the concatenated content of its messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and all(isinstance(m, Mapping) for m in completion):
        return "".join(_content_text(m.get("content", "")) for m in completion)
    raise ValueError(
        f"completions[{index}]: expected a string or a list of messages, got {type(completion).__name__}"
    )


def prompt_key(prompt: Any) -> str:
    """Identity of a prompt for grouping (messages compared by their JSON form)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)


def group_prompts(prompts: Sequence[Any]) -> list[list[int]]:
    """Indices of identical prompts, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(prompt_key(p), []).append(i)
    return list(groups.values())


# ---- RoutedReward ------------------------------------------------------------------------------
@dataclass
class Step:
    """What one call routed: per group, its completion indices, context and credited arm."""

    groups: list[list[int]]
    contexts: np.ndarray
    arms: np.ndarray  # credited arm per group (after any fallback)
    selection: Selection  # the router's decision, before fallbacks
    global_step: int | None = None
    fallbacks: list[int] = field(default_factory=list)  # groups that fell back


class RoutedReward:
    """Route each prompt's completions to one RM; a TRL ``reward_funcs`` callable.

    ``router``: a :class:`rmroute.harness.core.types.Router`; ``reward_models``: its K arms, in arm order;
    ``featurizer``: optional (its ``dim`` must equal the router's); ``normalizers``: feedback
    normalizer specs for :func:`rmroute.harness.routing.build_chain` (names, ``{name, params}``) or
    already-built normalizer callables, None = the default chain of ``feedback``; ``feedback``: the
    kind of loss feedback the router learns from (``loss`` or ``neg-loss``, see
    :meth:`feedback_loss`; :meth:`from_config` takes it from the router's registry entry);
    ``score_cache``: an optional
    :class:`rmroute.harness.pipelines.score_cache.ScoreCache`; ``on_bad_feedback``: the chain's NaN/inf policy
    (``error`` or ``skip``); ``history_size``: how many calls' :class:`Step` records to keep.
    """

    __name__ = "routed_reward"  # TRL names reward functions by ``__name__``

    def __init__(
        self,
        router: Any,
        reward_models: Sequence[Any],
        featurizer: Any = None,
        normalizers: Sequence[Any] | None = None,
        score_cache: Any = None,
        on_bad_feedback: str = "error",
        history_size: int = 64,
        feedback: str = "loss",
    ) -> None:
        self.router = router
        self.reward_models = list(reward_models)
        K = len(self.reward_models)
        if K == 0:
            raise ValueError("RoutedReward: reward_models is empty")
        if int(router.n_arms) != K:
            raise ValueError(f"RoutedReward: the router has n_arms={router.n_arms} but {K} reward models were given")
        for k, rm in enumerate(self.reward_models):
            if not callable(getattr(rm, "score", None)):
                raise ValueError(f"RoutedReward: reward_models[{k}] ({rm!r}) has no score(prompts, responses) method")
        if featurizer is not None and int(featurizer.dim) != int(router.dim):
            raise ValueError(
                f"RoutedReward: featurizer dim {featurizer.dim} does not match the router's dim {router.dim}"
            )
        self.featurizer = featurizer
        self.score_cache = score_cache
        if feedback not in TRAIN_FEEDBACK:
            raise ValueError(f"RoutedReward: feedback must be one of {', '.join(map(repr, TRAIN_FEEDBACK))}, got {feedback!r}")
        self.loss_kind = feedback
        if normalizers is None:
            normalizers = TRAIN_FEEDBACK[feedback]
        if all(callable(n) and not isinstance(n, (str, Mapping)) for n in normalizers):
            self.chain = NormalizerChain(list(normalizers), on_bad_feedback=on_bad_feedback)
        else:
            self.chain = build_chain(list(normalizers), on_bad_feedback=on_bad_feedback)
        self.names = [str(getattr(rm, "name", f"rm{k}")) for k, rm in enumerate(self.reward_models)]
        self.calls = np.zeros(K, dtype=np.int64)
        self.routed = np.zeros(K, dtype=np.int64)
        self.abstained = 0  # completions that got 0.0 because no RM answered
        self.fallbacks = 0  # groups re-scored by a fallback arm
        self.errors: list[str] = []  # first few RM errors, for the log
        if isinstance(history_size, bool) or not isinstance(history_size, int) or history_size < 1:
            raise ValueError(f"RoutedReward: history_size must be an int >= 1, got {history_size!r}")
        self.history_size = history_size
        self.history: list[Step] = []  # the last history_size calls' routing, for inspection
        self._pending_X: list[np.ndarray] = []
        self._pending_arms: list[np.ndarray] = []
        self._pending_items: list[list[Any] | None] = []  # per call: its rows' items (None: select got none)

    # ---- builders ----------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        router: str | Mapping[str, Any],
        reward_models: Sequence[str | Mapping[str, Any]],
        featurizer: str | Mapping[str, Any] | None = None,
        normalizers: Sequence[Any] | None = None,
        score_cache: Any = None,
        seed: int = 0,
        dim: int | None = None,
        on_bad_feedback: str = "error",
    ) -> "RoutedReward":
        """Build every part by registered name (:func:`rmroute.harness.core.plugins.create_ref`). Each of
        ``router``, ``reward_models[i]`` and ``featurizer`` is a name or ``{name, params}``. The router gets
        ``n_arms`` = number of RMs, ``dim`` = the featurizer's (else ``dim``, default 1) and
        ``seed``; its loss feedback kind is its registry entry's ``feedback`` (so ``normalizers=None``
        gives the train runner's default chain for it). ``score_cache``: None, a ScoreCache, True (the
        default cache folder) or a folder."""
        rms = [create_ref("reward_model", spec, f"reward_models[{i}]") for i, spec in enumerate(reward_models)]
        feat = None if featurizer is None else create_ref("featurizer", featurizer)
        rdim = int(feat.dim) if feat is not None else int(dim or 1)
        if feat is not None and dim is not None and int(dim) != rdim:
            raise ValueError(f"RoutedReward.from_config: dim={dim} but the featurizer's dim is {rdim}")
        r = create_ref("router", router, "router", n_arms=len(rms), dim=rdim, seed=seed)
        cache = score_cache
        if cache is True or isinstance(cache, str) or hasattr(cache, "__fspath__"):
            cache = ScoreCache(None if cache is True else cache)
        kind = router_spec(router if isinstance(router, str) else str(router["name"])).feedback
        return cls(r, rms, featurizer=feat, normalizers=normalizers, score_cache=cache, on_bad_feedback=on_bad_feedback,
                   feedback=kind)

    # ---- the TRL reward function -------------------------------------------------------------
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"RoutedReward: {len(prompts)} prompts but {len(completions)} completions")
        p_texts = [prompt_text(p, i) for i, p in enumerate(prompts)]
        c_texts = [completion_text(c, i) for i, c in enumerate(completions)]
        rewards = np.zeros(len(prompts))
        if not prompts:
            return []
        groups = group_prompts(prompts)
        X = self._contexts(groups, p_texts, c_texts)
        scores: dict[tuple[int, int], np.ndarray] = {}  # (group, arm) -> that RM's scores of the group

        def pay(cells: np.ndarray, answered: np.ndarray) -> None:
            for g, k in zip(*np.nonzero(cells)):
                idx = groups[g]
                scores[g, k] = self._score(int(k), [p_texts[i] for i in idx], [c_texts[i] for i in idx])
                answered[g, k] = 0.0 if np.isfinite(scores[g, k]).all() else np.nan  # the group is the unit

        routed = route(self.router, X, self._items(groups, kwargs), pay, on_abstain="next-single")
        selected = np.asarray(routed.selection.arms, dtype=np.int64)
        step = Step(groups=groups, contexts=X, arms=routed.arms, selection=routed.selection,
                    global_step=getattr(kwargs.get("trainer_state"), "global_step", None),
                    fallbacks=[int(g) for g in np.flatnonzero(routed.arms != selected)])
        self.fallbacks += len(step.fallbacks)
        for g, idx in enumerate(groups):
            if routed.selection.calls[g].sum() <= 1:
                rewards[idx] = self._single(scores[g, int(routed.arms[g])])
            else:
                rewards[idx] = self._combined(g, len(idx), routed, scores)
            self.routed[routed.arms[g]] += 1
        self.history = (self.history + [step])[-self.history_size:]
        rows, arms = feedback_cells(routed)
        self._pending_X.append(X[rows])
        self._pending_arms.append(arms)
        self._pending_items.append(rows_items(routed, rows))
        self._log(kwargs.get("log_metric"), routed.arms)
        return [float(r) for r in rewards]

    # ---- feedback ----------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Routed items waiting for feedback."""
        return int(sum(a.size for a in self._pending_arms))

    def feedback(self, values: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Update the router from raw feedback for the pending items (a scalar: the same value for
        all). Returns the normalized feedback (NaN where the chain skipped an item)."""
        n = self.pending
        if n == 0:
            raise ValueError("RoutedReward.feedback: no routed items are pending (call the reward function first)")
        raw = np.asarray(values, dtype=np.float64)
        if raw.ndim == 0:
            raw = np.full(n, float(raw))
        if raw.shape != (n,):
            raise ValueError(f"RoutedReward.feedback: expected a scalar or {n} values (one per pending item), got shape {raw.shape}")
        items = None if any(i is None for i in self._pending_items) else [it for i in self._pending_items for it in i]
        fb = update_router(self.router, self.chain, np.concatenate(self._pending_X), np.concatenate(self._pending_arms), raw,
                           items=items)
        self._pending_X, self._pending_arms, self._pending_items = [], [], []
        return fb

    def feedback_loss(self, losses: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Update the router from the policy's loss per pending item (or one loss for all of them):
        raw feedback = the loss (``feedback="loss"``) or minus it (``"neg-loss"``), then
        :meth:`feedback`. Returns the normalized feedback."""
        return self.feedback(loss_feedback(self.loss_kind, losses))

    def loss_callback(self) -> Any:
        """A ``transformers.TrainerCallback`` for loss feedback: ``feed(losses)`` passes per-item
        losses now; a training loss the trainer logs while items are pending is fed as one scalar."""
        return make_loss_callback(self)

    # ---- statistics --------------------------------------------------------------------------
    @property
    def shares(self) -> dict[str, float]:
        """Share of routed groups credited to each RM."""
        total = int(self.routed.sum())
        return {n: (float(r) / total if total else 0.0) for n, r in zip(self.names, self.routed)}

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(zip(self.names, self.calls.tolist())),
            "routed": dict(zip(self.names, self.routed.tolist())),
            "shares": self.shares,
            "abstained": self.abstained,
            "fallbacks": self.fallbacks,
            "errors": list(self.errors),
        }

    @property
    def last_step(self) -> Step | None:
        """The routing of the latest call (``history[-1]``)."""
        return self.history[-1] if self.history else None

    # ---- internals ---------------------------------------------------------------------------
    def _contexts(self, groups: list[list[int]], p_texts: list[str], c_texts: list[str]) -> np.ndarray:
        d = int(self.router.dim)
        if self.featurizer is None:
            return np.full((len(groups), d), 1.0 / math.sqrt(d))
        ps = [p_texts[idx[0]] for idx in groups]
        a = [c_texts[idx[0]] if len(idx) == 2 else "" for idx in groups]
        b = [c_texts[idx[1]] if len(idx) == 2 else "" for idx in groups]
        X = np.asarray(self.featurizer.embed_pairs(ps, a, b), dtype=np.float64)
        if X.shape != (len(groups), d):
            raise ValueError(f"RoutedReward: featurizer returned shape {X.shape}, expected ({len(groups)}, {d})")
        return X

    @staticmethod
    def _items(groups: list[list[int]], kwargs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        domains = kwargs.get("domain")
        n = sum(len(idx) for idx in groups)
        if not isinstance(domains, (list, tuple)) or len(domains) != n:
            return None
        return [{"domain": domains[idx[0]]} for idx in groups]

    def _score(self, k: int, prompts: list[str], responses: list[str]) -> np.ndarray:
        """RM k's scores (NaN = abstained); one failing item never loses the others' scores."""
        self.calls[k] += len(prompts)
        rm = self.reward_models[k]
        if self.score_cache is not None:
            values, report = self.score_cache.score(rm, prompts, responses)
            self._note(report.errors)
            return np.asarray(values, dtype=np.float64)
        return self._score_direct(rm, prompts, responses)

    def _score_direct(self, rm: Any, prompts: list[str], responses: list[str]) -> np.ndarray:
        try:
            values = np.asarray(rm.score(prompts, responses), dtype=np.float64)
            if values.shape != (len(prompts),):
                raise ValueError(f"{rm.name}: score returned shape {values.shape} for {len(prompts)} items")
        except Exception as exc:  # noqa: BLE001 - isolate the failing items
            if len(prompts) == 1:
                self._note([f"{getattr(rm, 'name', rm)}: {type(exc).__name__}: {exc}"])
                return np.array([np.nan])
            return np.concatenate([self._score_direct(rm, [p], [r]) for p, r in zip(prompts, responses)])
        return np.where(np.isfinite(values), values, np.nan)

    def _note(self, errors: Sequence[str]) -> None:
        for e in errors:
            if len(self.errors) < 10:
                self.errors.append(e)

    def _single(self, scores: np.ndarray) -> np.ndarray:
        """A group routed to one RM: the credited RM's scores (after any fallback); where no RM
        answered every completion, the router's own RM's finite scores and 0.0 for the rest."""
        missing = ~np.isfinite(scores)
        self.abstained += int(missing.sum())
        return np.where(missing, 0.0, scores)

    def _combined(self, g: int, n: int, routed: Routed, scores: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
        """Every called RM scored group ``g`` (``n`` completions); ``router.combine`` decides from
        group-centred margins."""
        calls = routed.calls[g]
        K = calls.size
        table = np.full((n, K), np.nan)
        for k in np.flatnonzero(calls):
            table[:, k] = scores[g, int(k)]
        with np.errstate(all="ignore"):
            centre = np.array([np.nanmean(table[:, k]) if np.isfinite(table[:, k]).any() else np.nan for k in range(K)])
        margins = table - centre
        selection = routed.selection
        row = Selection(
            arms=np.full(n, int(selection.arms[g]), dtype=np.int64),
            calls=np.repeat(calls[None, :], n, axis=0),
            info={key: np.repeat(np.asarray(v)[g:g + 1], n, axis=0) for key, v in selection.info.items()
                  if np.ndim(v) >= 1 and len(v) == len(selection.arms)},
        )
        out = np.asarray(self.router.combine(row, margins), dtype=np.float64)
        missing = ~np.isfinite(out)
        self.abstained += int(missing.sum())
        return np.where(missing, 0.0, out)

    def _log(self, log_metric: Any, arms: np.ndarray) -> None:
        if not callable(log_metric):
            return
        counts = np.bincount(arms, minlength=len(self.names))
        for name, c in zip(self.names, counts):
            log_metric(f"routed_reward/share/{name}", float(c) / max(1, arms.size))


def make_loss_callback(routed: RoutedReward) -> Any:
    """Build the TrainerCallback (transformers imported lazily)."""
    from transformers import TrainerCallback

    class RoutedLossFeedback(TrainerCallback):
        """Loss feedback for the RoutedReward's router (:meth:`RoutedReward.feedback_loss`): per-item
        losses through :meth:`feed`, else the logged training loss as one scalar. ``fed`` lists what
        was fed (a float, or a list per item)."""

        def __init__(self) -> None:
            self.fed: list[float | list[float]] = []

        def feed(self, losses: float | Sequence[float] | np.ndarray) -> np.ndarray:
            value = np.asarray(losses, dtype=np.float64)
            out = routed.feedback_loss(value)
            self.fed.append(float(value) if value.ndim == 0 else value.tolist())
            return out

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is not None and routed.pending:
                self.feed(float(loss))
            return control

    return RoutedLossFeedback()

