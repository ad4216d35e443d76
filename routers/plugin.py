"""Built-in routers and normalisers, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

from harness.hookspecs import Register, hookimpl
from routers.simple import RandomRouter, SingleRouter


@hookimpl
def register_routers(register: Register) -> None:
    register("single", SingleRouter, description="always the RM `arm`", calls_per_item=1, learns=False)
    register("random", RandomRouter, description="uniform random RM per item, seeded", calls_per_item=1, learns=False)
    # --- baselines (votes, ensembles, oracle, domain-best) register below this line ---
    # --- linear bandit routers (bayesian*, laser) register below this line ---


@hookimpl
def register_normalizers(register: Register) -> None:
    # --- feedback normalisers register below this line ---
    pass
