"""RoutedReward: routing inside TRL's GRPOTrainer, online-DPO doubled prompts, feedback maths,
ensembles' combine, abstention fallback, the score cache and bad input.

Expected values are computed by hand or in closed form here (posterior Λ = λ0·I + Σ x xᵀ/σ²,
b = Σ r·x/σ², μ = Λ⁻¹ b), never read back from the code under test.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest
import torch

from rmroute.harness.core.plugins import PluginRefError, create
from rmroute.harness.pipelines.routed_reward import RoutedReward, group_prompts, prompt_text
from rmroute.harness.routing import fallback_order

torch.set_num_threads(1)


class RecordingRM:
    """Scores from a table (default: response length); NaN / raise for chosen responses; records calls."""

    def __init__(self, name: str, table: dict[str, float] | None = None, nan_on: Sequence[str] = (),
                 raise_on: Sequence[str] = ()) -> None:
        self.name, self.cost = name, 1.0
        self.table = table or {}
        self.nan_on, self.raise_on = set(nan_on), set(raise_on)
        self.seen: list = []  # (prompt, response), or (call index, prompt, response) with an owner
        self.owner: RoutedReward | None = None  # when set, calls are tagged with len(owner.history)
        self.batches = 0

    def score(self, prompts, responses):
        self.batches += 1
        if any(r in self.raise_on for r in responses):
            raise RuntimeError(f"{self.name} cannot score this")
        if self.owner is not None:
            self.seen.extend((len(self.owner.history), p, r) for p, r in zip(prompts, responses))
        else:
            self.seen.extend(zip(prompts, responses))
        return np.array([np.nan if r in self.nan_on else self.table.get(r, float(len(r))) for r in responses])


class RecordingFeaturizer:
    """A deterministic context per (prompt, a, b); records what it was asked to embed."""

    def __init__(self, dim: int = 3) -> None:
        self.dim = dim
        self.calls: list[tuple[list[str], list[str], list[str]]] = []

    def embed_pairs(self, prompts, a, b):
        self.calls.append((list(prompts), list(a), list(b)))
        out = np.zeros((len(prompts), self.dim))
        for i, (p, x, y) in enumerate(zip(prompts, a, b)):
            out[i] = [len(p) % 7 + 1.0, len(x) + len(y), 1.0][: self.dim]
        return out


# ---- inside TRL's GRPOTrainer ------------------------------------------------------------------
@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rmroute.harness.pipelines.policy import load_policy

    pol = load_policy({"model": "tiny"}, device="cpu")
    rms = [RecordingRM("rm-a"), RecordingRM("rm-b"), RecordingRM("rm-c")]
    router = create("router", "bayesian-online", n_arms=3, dim=1, seed=0)
    reward = RoutedReward(router, rms)
    for rm in rms:
        rm.owner = reward
    prompts = ["what is two plus two?", "name a city", "why is the sky blue?", "say hi"]
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")), max_steps=2, per_device_train_batch_size=4,
        num_generations=2, max_completion_length=4, report_to=[], logging_steps=1, use_cpu=True,
        save_strategy="no", seed=0,
    )
    callback = reward.loss_callback()
    trainer = GRPOTrainer(model=pol.model, processing_class=pol.tokenizer, reward_funcs=reward, args=args,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), callbacks=[callback])
    trainer.train()
    return reward, rms, router, callback, trainer


def test_grpo_routes_each_prompt_group_to_one_rm(grpo_run):
    reward, rms, _, _, trainer = grpo_run
    assert len(reward.history) == 2  # one routed generation batch per step
    # the RMs' own logs, keyed by the call they were made in: per call, each prompt's
    # num_generations completions were all scored by exactly one RM, and it is the credited one
    for call, step in enumerate(reward.history):
        by_prompt: dict[str, list[int]] = {}
        for k, rm in enumerate(rms):
            for c, p, _ in rm.seen:
                if c == call:
                    by_prompt.setdefault(p, []).append(k)
        assert len(by_prompt) == 2 and len(step.groups) == 2
        assert all(len(ks) == 2 and len(set(ks)) == 1 for ks in by_prompt.values()), by_prompt
        assert sorted(ks[0] for ks in by_prompt.values()) == sorted(step.arms.tolist())
    assert reward.calls.sum() == 8 and reward.routed.sum() == 4
    logged = [h for h in trainer.state.log_history if "loss" in h]
    shares = {k: v for k, v in logged[0].items() if k.startswith("routed_reward/share/")}
    assert set(shares) == {f"routed_reward/share/rm-{c}" for c in "abc"}
    assert sum(shares.values()) == pytest.approx(1.0)


def test_grpo_loss_feedback_reaches_the_router(grpo_run):
    reward, _, router, callback, trainer = grpo_run
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert callback.fed == losses and len(losses) == 2  # a one-number trainer: the logged loss
    assert reward.pending == 0
    credited = np.concatenate([s.arms for s in reward.history])
    # each routed group is one observation for its credited arm, nothing for the others
    assert router.posterior.counts.tolist() == np.bincount(credited, minlength=3).tolist()


# ---- online DPO: each prompt passed twice --------------------------------------------------------
def test_online_dpo_doubled_prompts_land_on_one_rm():
    rms = [RecordingRM(f"rm{k}") for k in range(3)]
    feat = RecordingFeaturizer(dim=3)
    reward = RoutedReward(create("router", "random", n_arms=3, dim=3, seed=4), rms, featurizer=feat)
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(4)]
    first = [f"answer {i} a" for i in range(4)]
    second = [f"answer {i} bb" for i in range(4)]
    completions = [[{"role": "assistant", "content": c}] for c in first + second]
    out = reward(prompts=2 * prompts, completions=completions, completion_ids=[[1]] * 8, trainer_state=None)
    assert len(out) == 8
    step = reward.last_step
    assert step.groups == [[i, i + 4] for i in range(4)]
    # the featurizer saw each prompt's pair (conversational prompt -> its user text)
    assert feat.calls == [([f"question {i}" for i in range(4)], first, second)]
    for i, arm in enumerate(step.arms):
        rm = rms[arm]
        assert (f"question {i}", first[i]) in rm.seen and (f"question {i}", second[i]) in rm.seen
        assert out[i] == len(first[i]) and out[i + 4] == len(second[i])
        for k, other in enumerate(rms):
            if k != arm:
                assert all(p != f"question {i}" for p, _ in other.seen)
    assert reward.calls.sum() == 8


# ---- feedback through the normalizer chain ----------------------------------------------------
def test_feedback_updates_only_the_credited_arms_with_normalized_values():
    rms = [RecordingRM(f"rm{k}") for k in range(3)]
    feat = RecordingFeaturizer(dim=3)
    bay = create("router", "bayesian-online", n_arms=3, dim=3, seed=0, prior_precision=2.0, noise=0.5)
    reward = RoutedReward(bay, rms, featurizer=feat, normalizers=["batch-baseline"])
    reward(prompts=["p1", "p1", "p2 x", "p2 x", "p3 yy", "p3 yy"], completions=["a", "bb", "c", "dd", "e", "ff"])
    step = reward.last_step
    arms = step.arms.copy()
    X = step.contexts.copy()
    raw = np.array([0.9, 0.2, 0.4])
    fb = reward.feedback(raw)
    expected_fb = raw.mean() - raw  # batch-baseline: mean(r) - r
    np.testing.assert_allclose(fb, expected_fb)
    lam0, s2 = 2.0, 0.5
    for k in range(3):
        rows = arms == k
        assert bay.posterior.counts[k] == rows.sum()
        Lam = lam0 * np.eye(3) + X[rows].T @ X[rows] / s2
        b = X[rows].T @ expected_fb[rows] / s2
        np.testing.assert_allclose(bay.posterior.mean[k], np.linalg.solve(Lam, b), atol=1e-10)
    assert reward.pending == 0
    with pytest.raises(ValueError, match="no routed items are pending"):
        reward.feedback(1.0)


def _routed(reward, n_groups, calls=1):
    """Route ``calls`` batches of ``n_groups`` two-completion prompts; returns the credited arms in pending order."""
    for c in range(calls):
        prompts = [p for g in range(n_groups) for p in (f"prompt {c} {g}",) * 2]
        reward(prompts=prompts, completions=[f"a{g}" if i % 2 else f"bb{g}" for i, g in enumerate(np.repeat(range(n_groups), 2))])
    return np.concatenate([s.arms for s in reward.history[-calls:]])


def _spy(router):
    """Record every router.update(X, arms, feedback)."""
    seen, update = [], router.update

    def record(X, arms, fb):
        seen.append((np.array(arms), np.array(fb)))
        return update(X, arms, fb)

    router.update = record
    return seen


def test_per_item_losses_give_bayesian_routers_the_batch_mean_minus_pair_advantage():
    """A ``loss`` router (the default kind) with its default chain: losses per item, in pending order,
    reach the credited arms as mean − loss (then quantile: 0.5 while its 20-value warm-up lasts, so the
    batch-baseline step is checked with the chain cut to it, and the full chain by its warm-up value)."""
    rms = [RecordingRM(f"rm{k}") for k in range(3)]
    reward = RoutedReward(create("router", "random", n_arms=3, dim=1, seed=2), rms, normalizers=["batch-baseline"])
    seen = _spy(reward.router)
    arms = _routed(reward, 3, calls=2)  # two calls (gradient accumulation): 6 pending items
    losses = np.array([0.9, 0.2, 0.4, 0.7, 0.1, 0.3])
    callback = reward.loss_callback()
    callback.feed(losses)
    (got_arms, fb), = seen
    assert got_arms.tolist() == arms.tolist() and reward.pending == 0
    np.testing.assert_allclose(fb, losses.sum() / 6 - losses)
    assert callback.fed == [losses.tolist()]
    full = RoutedReward(create("router", "random", n_arms=3, dim=1, seed=2), rms)
    seen = _spy(full.router)
    _routed(full, 3)
    full.feedback_loss([0.5, 0.1, 0.3])
    assert seen[0][1].tolist() == [0.5, 0.5, 0.5]


def test_laser_chain_reduces_per_item_losses_to_one_scalar_per_batch():
    """from_config takes laser's kind (``neg-loss``) from its registry entry and its default chain:
    per batch one value, −(mean loss); raw while the history holds one value, then quantile-rescaled
    over the batch history (by hand: history [−0.5, −0.2], q20 = −0.44, q80 = −0.26)."""
    reward = RoutedReward.from_config(router={"name": "laser", "params": {"mode": "per_item"}},
                                      reward_models=["length", {"name": "length", "params": {"log": True}}])
    assert reward.loss_kind == "neg-loss"
    seen = _spy(reward.router)
    _routed(reward, 4)
    reward.feedback_loss([0.2, 0.4, 0.6, 0.8])  # batch mean 0.5
    _routed(reward, 2)
    reward.feedback_loss([0.1, 0.3])  # batch mean 0.2
    assert seen[0][1] == pytest.approx([-0.5] * 4)
    assert seen[1][1] == pytest.approx([min(max((-0.2 - -0.44) / (-0.26 - -0.44), 0.0), 1.0)] * 2)  # = 1
    _routed(reward, 2)
    reward.feedback_loss([0.4, 0.4])  # −0.4 within history [−0.5, −0.2, −0.4]: q20 = −0.46, q80 = −0.28
    assert seen[2][1] == pytest.approx([(-0.4 + 0.46) / (-0.28 + 0.46)] * 2)
    with pytest.raises(ValueError, match="expected a scalar or 2 values"):
        _routed(reward, 2)
        reward.feedback_loss([0.1, 0.2, 0.3])


def test_feedback_kind_is_checked():
    with pytest.raises(ValueError, match="feedback must be one of 'loss', 'neg-loss', got 'reward'"):
        RoutedReward(create("router", "random", n_arms=1, dim=1, seed=0), [RecordingRM("a")], feedback="reward")


def test_feedback_scalar_broadcast_and_shape_error():
    rms = [RecordingRM("a"), RecordingRM("b")]
    bay = create("router", "bayesian-online", n_arms=2, dim=1, seed=1)
    reward = RoutedReward(bay, rms, normalizers=())  # identity: the raw values reach the router
    reward(prompts=["p", "p", "q", "q"], completions=["x", "yy", "z", "ww"])
    reward(prompts=["r", "r"], completions=["x", "y"])  # accumulates: 3 pending items
    assert reward.pending == 3
    with pytest.raises(ValueError, match="expected a scalar or 3 values"):
        reward.feedback([1.0, 2.0])
    credited = np.concatenate([s.arms for s in reward.history])
    reward.feedback(-0.5)
    # constant context x = [1]: μ_k = Σ r / (λ0 + n_k) with λ0 = σ² = 1
    for k in range(2):
        n_k = int((credited == k).sum())
        assert bay.posterior.counts[k] == n_k
        np.testing.assert_allclose(bay.posterior.mean[k], [-0.5 * n_k / (1.0 + n_k)])


# ---- several RMs per item: the router's combine ---------------------------------------------------
@pytest.mark.parametrize("router_name, expected", [
    # centred margins for (A, B): RM0 ±0.5, RM1 ∓1, RM2 ±1
    ("majority-vote", [1.0, -1.0]),  # A: two RMs above the group mean, one below
    ("mean-ensemble", [(0.5 - 1 + 1) / 3, -(0.5 - 1 + 1) / 3]),  # unfitted: raw margins, mean over RMs
    ("min-ensemble", [0.5, -0.5]),  # smallest |margin| decides
])
def test_ensembles_combine_group_centred_margins(router_name, expected):
    rms = [RecordingRM("r0", {"A": 1.0, "B": 0.0}), RecordingRM("r1", {"A": 0.0, "B": 2.0}),
           RecordingRM("r2", {"A": 5.0, "B": 3.0})]
    reward = RoutedReward(create("router", router_name, n_arms=3, dim=1, seed=0), rms)
    out = reward(prompts=["q", "q"], completions=["A", "B"])
    np.testing.assert_allclose(out, expected)
    assert reward.calls.tolist() == [2, 2, 2]  # every RM paid for both completions


def test_ensemble_completion_without_any_rm_gets_zero_and_is_counted():
    rms = [RecordingRM("r0", nan_on=["B"]), RecordingRM("r1", raise_on=["B"])]
    reward = RoutedReward(create("router", "majority-vote", n_arms=2, dim=1, seed=0), rms)
    out = reward(prompts=["q", "q"], completions=["A", "B"])
    assert out[1] == 0.0 and reward.abstained == 1
    assert "cannot score" in reward.errors[0]


# ---- abstention fallback ------------------------------------------------------------------------
def test_abstaining_rm_falls_back_to_the_next_arm_for_the_whole_group():
    rm0 = RecordingRM("r0", nan_on=["bad"])
    rm1 = RecordingRM("r1", raise_on=["bad"])
    rm2 = RecordingRM("r2", {"bad": 7.0, "ok": 3.0})
    reward = RoutedReward(create("router", "single", n_arms=3, dim=1, seed=0, arm=0), [rm0, rm1, rm2])
    out = reward(prompts=["p", "p", "q", "q"], completions=["ok", "bad", "ok", "fine"])
    # group p: r0 abstains on "bad", r1 raises on it -> r2 scores both; group q: r0 answers
    assert out == [3.0, 7.0, 2.0, 4.0]
    assert reward.last_step.arms.tolist() == [2, 0]
    assert reward.last_step.fallbacks == [0] and reward.fallbacks == 1 and reward.abstained == 0
    assert reward.routed.tolist() == [1, 0, 1]


def test_no_rm_answers_gives_zero_and_counts():
    rms = [RecordingRM("r0", nan_on=["x"]), RecordingRM("r1", nan_on=["x"])]
    reward = RoutedReward(create("router", "single", n_arms=2, dim=1, seed=0, arm=1), rms)
    out = reward(prompts=["p", "p"], completions=["x", "yy"])
    assert out == [0.0, 2.0]  # the chosen RM's finite score is kept
    assert reward.abstained == 1 and reward.fallbacks == 0 and reward.last_step.arms.tolist() == [1]


def test_fallback_order_follows_the_posterior_mean():
    bay = create("router", "bayesian-online", n_arms=4, dim=2, seed=0)
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    bay.update(X, np.array([0, 1, 2, 3]), np.array([0.1, 0.9, 5.0, 0.5]))
    x = np.array([1.0, 0.0])
    # hand computation, λ0 = σ² = 1: one observation (x_k, r_k) -> μ_k = x_k r_k / (1 + |x_k|²)
    means = [0.1 / 2, 0.9 / 2, 0.0, 0.5 / 3]
    assert fallback_order(bay, x, first=1) == [3, 0, 2]
    assert sorted(range(4), key=lambda k: -means[k])[1:] == [3, 0, 2]
    rnd = create("router", "random", n_arms=4, dim=2, seed=0)
    assert fallback_order(rnd, x, first=2) == [3, 0, 1]


# ---- score cache, stats, builders, bad input ----------------------------------------------------------
def test_score_cache_scores_each_item_once(tmp_path):
    from rmroute.harness.pipelines.score_cache import ScoreCache

    rm = RecordingRM("only")
    reward = RoutedReward(create("router", "single", n_arms=1, dim=1, seed=0), [rm], score_cache=ScoreCache(tmp_path))
    a = reward(prompts=["p", "p"], completions=["x", "yyy"])
    b = reward(prompts=["p", "p"], completions=["x", "yyy"])
    assert a == b == [1.0, 3.0]
    assert len(rm.seen) == 2  # the second call came from the cache
    assert reward.shares == {"only": 1.0}


def test_from_config_builds_by_name_and_domain_reaches_router():
    reward = RoutedReward.from_config(router={"name": "domain-best"}, reward_models=["length", {"name": "length", "params": {"log": True}}])
    router = reward.router
    router.domain_best = {"math": 1}
    out = reward(prompts=["p", "p", "q", "q"], completions=["a b", "c", "d", "e f g"], domain=["math", "math", "chat", "chat"])
    assert reward.last_step.arms.tolist() == [1, 0]
    np.testing.assert_allclose(out, [np.log1p(2), np.log1p(1), 1.0, 3.0])
    assert reward.__name__ == "routed_reward"


def test_bad_input_is_named():
    rms = [RecordingRM("a"), RecordingRM("b")]
    with pytest.raises(ValueError, match="n_arms=3 but 2 reward models"):
        RoutedReward(create("router", "random", n_arms=3, dim=1, seed=0), rms)
    with pytest.raises(ValueError, match="featurizer dim 3 does not match the router's dim 1"):
        RoutedReward(create("router", "random", n_arms=2, dim=1, seed=0), rms, featurizer=RecordingFeaturizer(3))
    reward = RoutedReward(create("router", "random", n_arms=2, dim=1, seed=0), rms)
    with pytest.raises(ValueError, match="3 prompts but 2 completions"):
        reward(prompts=["a", "b", "c"], completions=["x", "y"])
    with pytest.raises(ValueError, match=r"prompts\[1\]: expected a string or a list"):
        reward(prompts=["a", 5], completions=["x", "y"])
    with pytest.raises(ValueError, match=r"reward_models\[0\]: unknown key"):
        RoutedReward.from_config(router="random", reward_models=[{"name": "length", "parms": {}}])


def test_from_config_builds_refs_like_configs_do():
    """Refs go through plugins.create_ref: params the harness sets itself are refused, naming the ref."""
    with pytest.raises(PluginRefError, match=r"router \(random\): params \['seed'\] are set by rmroute"):
        RoutedReward.from_config(router={"name": "random", "params": {"seed": 3}}, reward_models=["length"])
    with pytest.raises(PluginRefError, match=r"featurizer: expected a name or \{name, params\}, got 3"):
        RoutedReward.from_config(router="random", reward_models=["length"], featurizer=3)
    reward = RoutedReward.from_config(router={"name": "random", "label": "r"}, reward_models=["length", {"name": "length"}],
                                      seed=4)
    assert reward.router.n_arms == 2 and reward.router.seed == 4


def test_prompt_helpers():
    msgs = [{"role": "system", "content": "be nice"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert prompt_text(msgs) == "hi"
    multi = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert prompt_text(multi) == "User: a\nAssistant: b\nUser: c"
    assert group_prompts(["x", "y", "x", msgs, "y", msgs]) == [[0, 2], [1, 4], [3, 5]]


def test_adaptive_router_second_rm_combines_by_agreement():
    # threshold 1.0: the runner-up RM is always called too; signs agree -> the mean of the two margins
    rms = [RecordingRM("r0", {"A": 1.0, "B": 0.0}), RecordingRM("r1", {"A": 4.0, "B": 0.0})]
    router = create("router", "bayesian-adaptive", n_arms=2, dim=1, seed=0, threshold=1.0)
    reward = RoutedReward(router, rms)
    out = reward(prompts=["q", "q"], completions=["A", "B"])
    np.testing.assert_allclose(out, [(0.5 + 2.0) / 2, -(0.5 + 2.0) / 2])
    assert reward.calls.tolist() == [2, 2]
