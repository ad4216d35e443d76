"""A well-behaved fixture plugin: one router and one reward model."""

import numpy as np

from rmroute import hookimpl
from rmroute.harness.core.types import Selection
from rmroute.routers.base import BaseRouter


class FirstArm(BaseRouter):
    def _select(self, X, items):
        return Selection.single(np.zeros(X.shape[0], dtype=np.int64), self.n_arms)


class ConstantRM:
    name, cost = "constant", 0.0

    def score(self, prompts, responses):
        if len(prompts) != len(responses):
            raise ValueError("constant: length mismatch")
        return np.zeros(len(prompts))


@hookimpl
def register_routers(register):
    register("fixture-first-arm", FirstArm, description="always arm 0 (fixture)")


@hookimpl
def register_reward_models(register):
    register("fixture-constant", ConstantRM)
