"""Built-in reward-model backends."""

from __future__ import annotations

from harness.hookspecs import Register, hookimpl
from reward_models.heuristics import LengthRM


@hookimpl
def register_reward_models(register: Register) -> None:
    register("length", LengthRM, description="response length in words (the length bias of real RMs)", cost=0.0)
