"""The built-in benchmark ``rmroute-pairs-v1`` registers here (a suite of ``kind="benchmark"``).

The built-in evaluation suites register in :mod:`rmroute.suites.lm_eval_plugin` and
:mod:`rmroute.suites.chat_plugin`.
"""

from __future__ import annotations

from rmroute.harness.core.hookspecs import Register, hookimpl
from rmroute.suites.benchmark import BENCHMARK, BUILDER_VERSION, DOMAINS, SPLITS, routing_benchmark


@hookimpl
def register_suites(register: Register) -> None:
    register(
        BENCHMARK, routing_benchmark, kind="benchmark", version=BUILDER_VERSION,
        splits=list(SPLITS), domains=list(DOMAINS),
        description=(
            "gold-labelled preference pairs from GSM8K (carried arithmetic error), MMLU and "
            "PIQA/SIQA/OpenBookQA/CommonsenseQA (wrong option), AlpacaEval and Arena-Hard (degraded "
            "answers); splits rm-train/offline/online/test disjoint by item; factory(seed=0)"
        ),
    )
