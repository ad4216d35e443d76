"""Hook specifications: the whole plugin contract of rmroute.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` whose names are the
hooks below. Each hook receives a ``register(name, factory, **metadata)`` callback; the plugin calls
it once per thing it provides. ``factory(**params)`` must build the thing; ``metadata`` is free-form
JSON-able information shown by ``rmroute plugins`` (``description``, ``paper``, ``calls_per_item``...).

Built-in routers, reward models and suites register through exactly these hooks.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import pluggy

PROJECT = "rmroute"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback every ``register_*`` hook receives."""

    def __call__(self, name: str, factory: Callable[..., Any], **metadata: Any) -> None: ...


@hookspec
def register_routers(register: Register) -> None:
    """Register router factories.

    ``factory(n_arms: int, dim: int, seed: int, **params)`` returns an object satisfying
    :class:`rmroute.harness.core.types.Router`.
    """


@hookspec
def register_reward_models(register: Register) -> None:
    """Register reward-model factories; ``factory(**params)`` returns a :class:`rmroute.harness.core.types.RewardModel`."""


@hookspec
def register_featurizers(register: Register) -> None:
    """Register featurizers; ``factory(**params)`` returns a :class:`rmroute.harness.core.types.Featurizer`."""


@hookspec
def register_normalizers(register: Register) -> None:
    """Register feedback normalizers; ``factory(**params)`` returns a :class:`rmroute.harness.core.types.Normalizer`."""


@hookspec
def register_suites(register: Register) -> None:
    """Register benchmarks and evaluation suites, told apart by the metadata ``kind``.

    ``kind="benchmark"``: ``factory(seed=0)`` returns an object with ``splits()`` and ``pairs(split)``
    (built by :func:`rmroute.harness.core.plugins.create_benchmark`); ``kind="eval"``:
    ``factory(**params)`` returns a :class:`rmroute.harness.core.types.EvalSuite` (built by
    :func:`rmroute.harness.core.plugins.create_eval_suite`).
    """


@hookspec
def register_judges(register: Register) -> None:
    """Register judges used by the evaluation suites (pairwise or single-answer graders)."""


@hookspec
def register_generators(register: Register) -> None:
    """Register response generators used by policy training (transformers, vLLM, ...)."""


#: plugin kind (as used by :func:`rmroute.harness.core.plugins.create` and configs) -> hook name
KINDS: dict[str, str] = {
    "router": "register_routers",
    "reward_model": "register_reward_models",
    "featurizer": "register_featurizers",
    "normalizer": "register_normalizers",
    "suite": "register_suites",
    "judge": "register_judges",
    "generator": "register_generators",
}
