"""Built-in evaluation suites and judges (registered through the same hooks as third-party plugins).

Suites (``kind="eval"``): ``alpaca-eval``, ``arena-hard``, ``mt-bench`` (:mod:`rmroute.suites.chat_suites`).
Judges: ``hf-local``, ``openai-compatible``, ``rm-judge`` (:mod:`rmroute.suites.judges`). Importing
this plugin stays cheap: those modules import torch and alpaca_eval only when a suite or judge runs.
"""

from __future__ import annotations

from typing import Any

from rmroute.harness.core.hookspecs import Register, hookimpl
from rmroute.suites.chat_suites import AlpacaEvalSuite, ArenaHardSuite, MTBenchSuite
from rmroute.suites.judges import HFLocalJudge, OpenAICompatibleJudge, RMJudge

_SUITE_PARAMS = ("limit (None: all), subset ('first' | 'seeded'), subset_seed, max_new_tokens "
                 "(overrides the generator's), n_bootstrap (default 200), chunk_size")


def alpaca_eval(limit: int | None = None, subset: str = "first", subset_seed: int = 0,
                max_new_tokens: int | None = None, n_bootstrap: int = 200, chunk_size: int = 64) -> Any:
    return AlpacaEvalSuite(limit=limit, subset=subset, subset_seed=subset_seed, max_new_tokens=max_new_tokens,
                           n_bootstrap=n_bootstrap, chunk_size=chunk_size)


def arena_hard(limit: int | None = None, subset: str = "first", subset_seed: int = 0,
               max_new_tokens: int | None = None, n_bootstrap: int = 200, chunk_size: int = 64) -> Any:
    return ArenaHardSuite(limit=limit, subset=subset, subset_seed=subset_seed, max_new_tokens=max_new_tokens,
                          n_bootstrap=n_bootstrap, chunk_size=chunk_size)


def mt_bench(limit: int | None = None, subset: str = "first", subset_seed: int = 0,
             max_new_tokens: int | None = None, n_bootstrap: int = 200, chunk_size: int = 64,
             reference_model: str = "gpt-4") -> Any:
    return MTBenchSuite(limit=limit, subset=subset, subset_seed=subset_seed, max_new_tokens=max_new_tokens,
                        n_bootstrap=n_bootstrap, chunk_size=chunk_size, reference_model=reference_model)


def hf_local(model: str | dict[str, Any], device: str = "auto", batch_size: int = 8, max_length: int | None = None) -> Any:
    return HFLocalJudge(model, device=device, batch_size=batch_size, max_length=max_length)


def openai_compatible(base_url: str, model: str, api_key_env: str | None = None, timeout_s: float = 120.0,
                      max_retries: int = 3, backoff_s: float = 1.0, max_requests: int | None = None,
                      max_tokens: int = 1024, concurrency: int = 8) -> Any:
    return OpenAICompatibleJudge(base_url, model, api_key_env=api_key_env, timeout_s=timeout_s,
                                 max_retries=max_retries, backoff_s=backoff_s, max_requests=max_requests,
                                 max_tokens=max_tokens, concurrency=concurrency)


def rm_judge(reward_model: str | dict[str, Any]) -> Any:
    return RMJudge(reward_model)


@hookimpl
def register_suites(register: Register) -> None:
    register("alpaca-eval", alpaca_eval, kind="eval", needs_judge=True,
             description="AlpacaEval 2: 805 instructions vs gpt4_1106_preview references; win rate and "
                         "length-controlled win rate (alpaca_eval.metrics; LC without the gamed baselines)",
             params=_SUITE_PARAMS)
    register("arena-hard", arena_hard, kind="eval", needs_judge=True,
             description="Arena-Hard v2.0: 750 prompts vs each category's baseline answers; Bradley-Terry "
                         "score (predicted win rate vs the baseline) with a bootstrap CI",
             params=_SUITE_PARAMS)
    register("mt-bench", mt_bench, kind="eval", needs_judge=True,
             description="MT-Bench: 80 two-turn questions graded 1..10 per turn (reference answers for "
                         "math, reasoning, coding); mean score and per-turn means",
             params=_SUITE_PARAMS + ", reference_model ('gpt-4' | 'gpt-4-0125-preview')")


@hookimpl
def register_judges(register: Register) -> None:
    register("hf-local", hf_local,
             description="local causal LM judge: verdict / grade token log-probabilities, both orders",
             params="model (policy spec or name), device, batch_size, max_length (default: the model's, at most 8192)")
    register("openai-compatible", openai_compatible,
             description="OpenAI-style chat-completions endpoint ([[A]]/[[B]]/[[C]], Rating: [[n]]), both orders",
             params="base_url, model, api_key_env (variable NAME), timeout_s, max_retries, backoff_s, "
                    "max_requests, max_tokens, concurrency")
    register("rm-judge", rm_judge,
             description="a reward model as the judge: sigmoid(s_A - s_B); grade 1 + 9 sigmoid(s)",
             params="reward_model (name or {name, params})")
