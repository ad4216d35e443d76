"""Built-in lm-eval suites ``gsm8k`` and ``mmlu`` (registered through the same hooks as third-party plugins).

:mod:`rmroute.suites.lm_eval_suites` imports lm-eval, torch and transformers only when a suite runs,
so importing this plugin stays cheap.
"""

from __future__ import annotations

from rmroute.harness.core.hookspecs import Register, hookimpl
from rmroute.suites.lm_eval_suites import GSM8K_POOL, MMLU_POOL, Gsm8kSuite, MmluSuite


@hookimpl
def register_suites(register: Register) -> None:
    register(
        "gsm8k", Gsm8kSuite, kind="eval", needs_judge=False, metrics=["acc", "acc_flexible"],
        description=(
            "GSM8K test through lm-eval (generate_until): acc = exact match of the number after '#### ' "
            f"(strict-match), acc_flexible = last number; {GSM8K_POOL} held-out test problems as the "
            "few-shot pool; params n_shot=5, limit, batch_size, chat_template, fewshot_as_multiturn, "
            "max_gen_toks=256, until, source=pypi|file:<path>|hub"
        ),
    )
    register(
        "mmlu", MmluSuite, kind="eval", needs_judge=False, metrics=["acc"],
        description=(
            "MMLU test through lm-eval (log-likelihood of ' A'..' D'), one task per subject, acc micro-"
            f"averaged; each subject's first {MMLU_POOL} questions are its few-shot pool; params n_shot=0, "
            "limit (per subject), batch_size, chat_template, fewshot_as_multiturn, subjects, "
            "source=pypi|file:<path>|hub"
        ),
    )
