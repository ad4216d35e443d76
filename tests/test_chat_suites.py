"""alpaca-eval, arena-hard and mt-bench: metrics against hand / independent computations, the data
files, per-item failure isolation, and the three suites end to end on CPU with a tiny policy and a
tiny hf-local judge."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from rmroute.harness.core.errors import ConfigError, PluginError
from rmroute.harness.core.plugins import create
from rmroute.harness.pipelines.policy import load_policy
from rmroute.harness.core.types import EvalSuite, Judge
from rmroute.suites.chat_suites import (
    MT_BENCH_REFERENCE_CATEGORIES,
    alpaca_win_rate,
    arena_score,
    bradley_terry,
    length_controlled_win_rate,
    load_alpaca_eval,
    load_arena_hard,
    load_mt_bench,
    mt_bench_scores,
    select,
)


def sig(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# ============================================================================ independent maths ==
def liblinear_l1_fit(p: np.ndarray, features: np.ndarray, c: float) -> np.ndarray:
    """argmin |beta|_1 + C * sum_i [p_i log(1+e^{-x_i beta}) + (1-p_i) log(1+e^{x_i beta})] with scipy
    (beta = u - v, u, v >= 0), the objective sklearn's liblinear solves on alpaca_eval's duplicated rows."""
    k = features.shape[1]

    def objective(uv: np.ndarray) -> float:
        beta = uv[:k] - uv[k:]
        z = features @ beta
        return float(uv.sum() + c * np.sum(p * np.logaddexp(0, -z) + (1 - p) * np.logaddexp(0, z)))

    res = minimize(objective, np.full(2 * k, 0.1), method="L-BFGS-B", bounds=[(0, None)] * (2 * k),
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000})
    return res.x[:k] - res.x[k:]


def independent_lc(p: np.ndarray, len_policy: np.ndarray, len_ref: np.ndarray, c: float) -> float:
    d = len_ref - len_policy
    x = np.column_stack([np.tanh(d / np.std(d, ddof=1)), np.ones_like(d)])
    beta = liblinear_l1_fit(p, x, c)
    return float(100 * sig(beta[1]))  # prediction at zero length difference: sigmoid(b_0)


@pytest.fixture(scope="module")
def judgements() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    n = 60
    len_policy = rng.integers(100, 2000, size=n).astype(float)
    len_ref = rng.integers(300, 1500, size=n).astype(float)
    d = (len_ref - len_policy) / np.std(len_ref - len_policy, ddof=1)
    p = np.clip(sig(0.4 - 1.3 * np.tanh(d)) + rng.normal(0, 0.1, size=n), 0, 1)  # longer answers win more
    p[:4] = [1.0, 0.0, 0.5, 0.5]
    return {"p": p, "len_policy": len_policy, "len_ref": len_ref}


def test_win_rate_is_mean_preference_with_ties_half():
    p = np.array([1.0, 0.0, 0.5, 1.0, 0.25, np.nan])
    got = alpaca_win_rate(p)
    assert got["win_rate"] == pytest.approx(100 * (1 + 0 + 0.5 + 1 + 0.25) / 5)
    assert got["n_wins"] == 2 and got["n_draws"] == 1 and got["n_total"] == 5
    assert got["discrete_win_rate"] == pytest.approx(100 * (1 + 0 + 0.5 + 1 + 0) / 5)


def test_lc_win_rate_matches_an_independent_glm_fit(judgements):
    p, lp, lr = judgements["p"], judgements["len_policy"], judgements["len_ref"]
    lc, info = length_controlled_win_rate(p, lp, lr)
    assert info["fit"] == "cv5"
    assert lc == pytest.approx(independent_lc(p, lp, lr, info["C"]), abs=0.005)
    # the policy wins by being longer: controlling for length lowers its win rate
    assert lc < alpaca_win_rate(p)["win_rate"] - 2


def test_lc_win_rate_small_sample_and_degenerate_cases(judgements):
    p, lp, lr = (judgements[k][4:8] for k in ("p", "len_policy", "len_ref"))
    lc, info = length_controlled_win_rate(p, lp, lr)
    assert info["fit"] == "fixed-C" and info["C"] == 100
    assert lc == pytest.approx(independent_lc(p, lp, lr, 100.0), abs=0.005)
    assert math.isnan(length_controlled_win_rate(np.array([0.7, np.nan]), np.array([1.0, 2.0]), np.array([3.0, 1.0]))[0])


def test_bt_two_players_rating_difference_is_the_logit_of_the_win_share():
    outcome = np.array([1, 1, 0, 0.5, 1, 0.5, 0, 1, 1, 0.5])  # ties count half
    share = outcome.mean()
    r = bradley_terry(np.ones(10, int), np.zeros(10, int), outcome, n_players=2, l2=0.0)
    assert r[0] == 0.0
    assert r[1] == pytest.approx(math.log(share / (1 - share)), abs=1e-9)
    score, diff = arena_score(outcome)
    assert score == pytest.approx(100 * share, abs=1e-3) and diff == pytest.approx(r[1], abs=1e-4)


def test_bt_several_players_equals_an_independent_mle():
    rng = np.random.default_rng(5)
    true = np.array([0.0, 0.8, -0.5, 1.5])
    a = rng.integers(0, 4, size=300)
    b = (a + rng.integers(1, 4, size=300)) % 4
    y = np.clip(sig(true[a] - true[b]) + rng.normal(0, 0.2, size=300), 0, 1)
    w = rng.uniform(0.5, 2.0, size=300)

    def nll(theta: np.ndarray) -> float:
        r = np.concatenate([[0.0], theta])
        z = r[a] - r[b]
        return float(np.sum(w * (y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))))

    want = minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    got = bradley_terry(a, b, y, n_players=4, weights=w, anchor=0, l2=0.0)
    np.testing.assert_allclose(got, np.concatenate([[0.0], want]), atol=1e-5)
    # another anchor only shifts the ratings
    shifted = bradley_terry(a, b, y, n_players=4, weights=w, anchor=2, l2=0.0)
    np.testing.assert_allclose(shifted, got - got[2], atol=1e-8)


def test_bt_all_wins_stays_finite_and_bad_input_is_named():
    r = bradley_terry([1, 1, 1], [0, 0, 0], [1.0, 1.0, 1.0], n_players=2)
    assert np.isfinite(r).all() and sig(r[1]) > 0.999
    with pytest.raises(ValueError, match=r"player\(s\) \[2\] have no battles"):
        bradley_terry([1], [0], [1.0], n_players=3)
    with pytest.raises(ValueError, match="outcomes must lie in"):
        bradley_terry([1], [0], [np.nan], n_players=2)


def test_mt_bench_averages_by_hand():
    grades = np.array([[8, 6], [np.nan, 4], [10, np.nan], [3, 5]], dtype=float)
    got = mt_bench_scores(grades, ["math", "math", "writing", "writing"])
    assert got["score"] == pytest.approx((8 + 6 + 4 + 10 + 3 + 5) / 6)
    assert got["turn_1"] == pytest.approx((8 + 10 + 3) / 3) and got["turn_2"] == pytest.approx((6 + 4 + 5) / 3)
    assert got["score_math"] == pytest.approx(6.0) and got["score_writing"] == pytest.approx(6.0)


def test_select_first_or_seeded():
    assert select(10, 3, "first", 0) == [0, 1, 2]
    seeded = select(10, 4, "seeded", 7)
    assert seeded == sorted(seeded) and len(set(seeded)) == 4 and seeded == select(10, 4, "seeded", 7)
    assert select(5, None, "first", 0) == select(5, 9, "seeded", 0) == [0, 1, 2, 3, 4]


# ================================================================================== data files ==
def test_data_files_have_the_expected_items():
    alpaca = load_alpaca_eval()
    assert len(alpaca) == 805 and {it.other_model for it in alpaca} == {"gpt4_1106_preview"}
    arena, missing = load_arena_hard()
    assert len(arena) == 750 and missing == 0
    assert {(it.category, it.other_model) for it in arena} == {("hard_prompt", "o3-mini-2025-01-31"),
                                                              ("creative_writing", "gemini-2.0-flash-001")}
    mt = load_mt_bench()
    assert len(mt) == 80 and all(len(q.turns) == 2 for q in mt)
    with_ref = [q for q in mt if q.references]
    assert len(with_ref) == 30 and {q.category for q in with_ref} == set(MT_BENCH_REFERENCE_CATEGORIES)


# ================================================================== suites with fake components ==
@pytest.fixture(scope="module")
def policy():
    torch.set_num_threads(1)
    return load_policy({"model": "tiny"})


def echo(prompt: str) -> str:
    """A distinct, prompt-determined answer of varying length."""
    return "ans:" + hashlib.md5(prompt.encode()).hexdigest()[:6] + "x" * (len(prompt) % 7)


class EchoGenerator:
    """Answer = :func:`echo` of the prompt; raises on prompts holding ``fail_on``."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.prompts: list[str] = []
        self.fail_on = fail_on

    def generate(self, prompts: Sequence[str], n: int, seed: int, max_new_tokens: int | None = None) -> list[list[str]]:
        if self.fail_on and any(self.fail_on in p for p in prompts):
            raise RuntimeError("generator broke on this prompt")
        self.prompts.extend(prompts)
        return [[echo(p)] * n for p in prompts]

    def sync(self, model: Any) -> None:
        pass


class TableJudge:
    """compare: P(A better) from a fixed rule on the answer; grade: 1 + len(answer) % 10, NaN on
    questions holding 'NO-GRADE'; raises on questions holding ``fail_on``. Records every call."""

    name = "table"

    def __init__(self, p_of: Any = None, fail_on: str | None = None) -> None:
        self.p_of, self.fail_on = p_of, fail_on
        self.compared: list[tuple[str, str, str]] = []
        self.graded: list[tuple[str, str, str | None]] = []

    def compare(self, questions, a, b):
        if self.fail_on and any(self.fail_on in q for q in questions):
            raise RuntimeError("judge broke")
        self.compared.extend(zip(questions, a, b))
        return np.array([self.p_of(q) for q in questions])

    def grade(self, questions, answers, references):
        self.graded.extend(zip(questions, answers, references))
        return np.array([np.nan if "NO-GRADE" in q else 1.0 + len(x) % 10 for q, x in zip(questions, answers)])


def rows_of(result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(result.samples).read_text(encoding="utf-8").splitlines()]


def p_rule(question: str) -> float:
    return (len(question) % 5) / 4.0  # 0, .25, .5, .75, 1


def test_alpaca_suite_metrics_on_fixed_judgements(policy, tmp_path):
    suite = create("suite", "alpaca-eval", limit=20, n_bootstrap=30)
    assert isinstance(suite, EvalSuite) and suite.needs_judge
    judge = TableJudge(p_rule)
    result = suite.evaluate(policy, EchoGenerator(), judge, tmp_path, np.random.default_rng(0))
    items = load_alpaca_eval()[:20]
    p = np.array([p_rule(it.prompt) for it in items])
    outputs = [echo(policy.format_prompt(it.prompt)) for it in items]
    assert [c[1] for c in judge.compared] == outputs and [c[2] for c in judge.compared] == [it.other for it in items]
    assert result.metrics["win_rate"] == pytest.approx(100 * p.mean())
    lp, lr = np.array([len(o) for o in outputs], float), np.array([len(it.other) for it in items], float)
    lc_c = length_controlled_win_rate(p, lp, lr)[1]["C"]
    assert result.metrics["lc_win_rate"] == pytest.approx(independent_lc(p, lp, lr, lc_c), abs=0.005)
    assert result.flags["lc_without_gamed_baselines"] is True and result.n_items == 20
    low, high = result.ci["win_rate"]
    assert low <= result.metrics["win_rate"] <= high
    rows = rows_of(result)
    assert len(rows) == 20 and rows[3]["p_policy_better"] == pytest.approx(p[3])
    assert rows[3]["preference"] == pytest.approx(1 + p[3]) and rows[3]["reference"] == items[3].other


def test_arena_suite_score_on_fixed_judgements(policy, tmp_path):
    suite = create("suite", "arena-hard", limit=12, subset="seeded", subset_seed=3, n_bootstrap=50)
    result = suite.evaluate(policy, EchoGenerator(), TableJudge(p_rule), tmp_path, np.random.default_rng(1))
    arena = load_arena_hard()[0]
    items = [arena[i] for i in select(750, 12, "seeded", 3)]
    p = np.array([p_rule(it.prompt) for it in items])
    share = p.mean()
    assert result.metrics["score"] == pytest.approx(100 * share, abs=1e-3)
    assert result.metrics["bt_rating"] == pytest.approx(math.log(share / (1 - share)), abs=1e-3)
    for cat in {it.category for it in items}:
        sel = np.array([it.category == cat for it in items])
        assert result.metrics[f"score_{cat}"] == pytest.approx(100 * p[sel].mean(), abs=1e-2)
    assert result.ci["score"][0] <= result.metrics["score"] <= result.ci["score"][1]
    assert [r["baseline_model"] for r in rows_of(result)] == [it.other_model for it in items]


def test_mt_bench_turns_references_and_averages(policy, tmp_path):
    gen, judge = EchoGenerator(), TableJudge()
    result = create("suite", "mt-bench", n_bootstrap=20).evaluate(policy, gen, judge, tmp_path, np.random.default_rng(2))
    questions = load_mt_bench()
    assert len(judge.graded) == 160 and result.n_items == 80
    rows = {r["question_id"]: r for r in rows_of(result)}
    by_question: dict[str, list[tuple[str, str, str | None]]] = {}
    for call in judge.graded:
        by_question.setdefault(call[0], []).append(call)
    expected = np.zeros((80, 2))
    for i, q in enumerate(questions):
        a1 = echo(policy.format_messages([{"role": "user", "content": q.turns[0]}]))
        conv = [{"role": "user", "content": q.turns[0]}, {"role": "assistant", "content": a1},
                {"role": "user", "content": q.turns[1]}]
        assert policy.format_messages(conv) in gen.prompts  # turn 2 sees the turn-1 conversation
        a2 = echo(policy.format_messages(conv))
        assert rows[q.id]["outputs"] == [a1, a2]
        (g1,) = by_question[q.turns[0]]
        (g2,) = [c for c in judge.graded if c[1] == a2 and q.turns[1] in c[0] and a1 in c[0]]
        ref_expected = q.category in ("math", "reasoning", "coding")
        assert (g1[2] is not None) == ref_expected and (g2[2] is not None) == ref_expected
        if ref_expected:
            assert g1[2] == q.references[0] and q.references[1] in g2[2]
        expected[i] = [1 + len(a1) % 10, 1 + len(a2) % 10]
    assert result.metrics["score"] == pytest.approx(expected.mean())
    assert result.metrics["turn_1"] == pytest.approx(expected[:, 0].mean())
    assert result.metrics["turn_2"] == pytest.approx(expected[:, 1].mean())
    cats = np.array([q.category for q in questions])
    assert result.metrics["score_coding"] == pytest.approx(expected[cats == "coding"].mean())
    assert result.flags["nan_grades"] == 0


def test_one_failing_item_never_loses_the_others(policy, tmp_path):
    items = load_alpaca_eval()[:6]
    marker_gen, marker_judge = items[1].prompt[-10:], items[4].prompt
    judge = TableJudge(lambda q: 1.0, fail_on=marker_judge)
    result = create("suite", "alpaca-eval", limit=6, chunk_size=4, n_bootstrap=0).evaluate(
        policy, EchoGenerator(fail_on=marker_gen), judge, tmp_path, np.random.default_rng(0))
    rows = rows_of(result)
    assert rows[1]["output"] is None and rows[1]["p_policy_better"] is None
    assert rows[4]["output"] is not None and rows[4]["p_policy_better"] is None
    assert [r["p_policy_better"] for i, r in enumerate(rows) if i not in (1, 4)] == [1.0] * 4
    assert result.flags["generation_failed"] == 1 and result.flags["judge_errors"] == 1
    assert result.flags["no_verdict"] == 2 and len(result.flags["errors"]) == 2
    assert result.metrics["win_rate"] == pytest.approx(100.0)


@pytest.mark.parametrize("suite_name", ["alpaca-eval", "arena-hard", "mt-bench"])
def test_a_judge_failing_everywhere_gives_nan_not_a_crash(policy, tmp_path, suite_name):
    class Broken(TableJudge):
        def compare(self, questions, a, b):
            raise RuntimeError("judge down")

        def grade(self, questions, answers, references):
            raise RuntimeError("judge down")

    result = create("suite", suite_name, limit=2, n_bootstrap=5).evaluate(
        policy, EchoGenerator(), Broken(), tmp_path, np.random.default_rng(0))
    headline = create("suite", suite_name).headline[0]
    assert math.isnan(result.metrics[headline]) and result.flags["judge_errors"] >= 2
    assert len(rows_of(result)) == 2


def test_mt_bench_nan_grades_are_excluded_and_counted(policy, tmp_path, monkeypatch):
    import rmroute.suites.chat_suites as cs

    real = cs.load_mt_bench

    def with_ungradable(reference_model: str = "gpt-4"):
        qs = real(reference_model)
        return [cs.MTBenchQuestion(q.id, q.category, (q.turns[0] + " NO-GRADE", q.turns[1]), q.references)
                if i == 0 else q for i, q in enumerate(qs)]

    monkeypatch.setattr(cs, "load_mt_bench", with_ungradable)
    result = create("suite", "mt-bench", limit=3, n_bootstrap=0).evaluate(
        policy, EchoGenerator(), TableJudge(), tmp_path, np.random.default_rng(0))
    grades = np.array([r["grades"] for r in rows_of(result)], dtype=float)
    assert np.isnan(grades[0]).all()  # both turns of question 0 carry NO-GRADE (turn 2 repeats turn 1)
    assert result.flags["nan_grades"] == 2
    assert result.metrics["score"] == pytest.approx(np.nanmean(grades))


def test_suite_params_are_validated():
    with pytest.raises(ConfigError, match="suite 'alpaca-eval': invalid params: limit"):
        create("suite", "alpaca-eval", limit=0)
    with pytest.raises(ConfigError, match="subset"):
        create("suite", "arena-hard", subset="random")
    with pytest.raises(PluginError, match="accepted parameters"):
        create("suite", "mt-bench", limt=3)


# ===================================================================== end to end on CPU (tiny) ==
@pytest.fixture(scope="module")
def tiny_run(policy) -> dict[str, Any]:
    generator = create("generator", "transformers", model=policy.model, tokenizer=policy.tokenizer,
                       temperature=0.0, max_new_tokens=64)
    judge = create("judge", "hf-local", model={"model": "tiny", "tiny": {"seed": 1}}, batch_size=4)
    return {"generator": generator, "judge": judge}


@pytest.mark.parametrize("suite_name, headline", [("alpaca-eval", "lc_win_rate"), ("arena-hard", "score"),
                                                  ("mt-bench", "score")])
def test_end_to_end_tiny_policy_and_tiny_judge(policy, tiny_run, tmp_path, suite_name, headline):
    suite = create("suite", suite_name, limit=3, max_new_tokens=6, n_bootstrap=10)
    judge = tiny_run["judge"]
    assert isinstance(judge, Judge)
    result = suite.evaluate(policy, tiny_run["generator"], judge, tmp_path / suite_name, np.random.default_rng(0))
    assert result.suite == suite_name and result.n_items == 3
    assert np.isfinite(result.metrics[headline]) and headline in suite.headline
    assert result.flags["generation_failed"] == 0 and result.flags["no_verdict"] == 0
    assert headline in result.ci
    rows = rows_of(result)
    assert len(rows) == 3 and Path(result.samples).parent == tmp_path / suite_name
    outputs = [o for r in rows for o in (r["outputs"] if "outputs" in r else [r["output"]])]
    assert all(isinstance(o, str) for o in outputs)
    assert tiny_run["generator"].params.max_new_tokens == 64  # the suite's limit applies per call only
