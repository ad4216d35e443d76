"""rmroute: a benchmark and evaluation harness for reward-model routing in RLHF.

The public names a plugin author needs are importable from here::

    from rmroute import hookimpl, Register, Selection, BaseRouter

Everything else lives in the packages below: ``rmroute.harness`` (the host: core, runners,
pipelines, board, CLI) and the built-in plugin packages ``rmroute.routers``,
``rmroute.reward_models``, ``rmroute.suites`` and ``rmroute.generators``. docs/architecture.md
draws the floors and what may import what.
"""

from __future__ import annotations

from typing import Any

import rmroute.harness  # noqa: F401  (first: pins the CPU code path before numpy or torch loads)
from rmroute.harness.core.hookspecs import Register, hookimpl
from rmroute.harness.core.types import PreferencePair, Selection

__version__ = "0.1.0"
_KIT = ("check_router", "check_reward_model", "check_normalizer", "check_featurizer", "check_entry")
__all__ = ["BaseRouter", "PreferencePair", "Register", "Selection", "hookimpl", "real", *_KIT]


def __getattr__(name: str) -> Any:
    # BaseRouter and the conformance kit pull in numpy; load them on first use so `import rmroute`
    # stays cheap.
    if name in ("BaseRouter", "real"):
        from rmroute.routers import base

        return getattr(base, name)
    if name in _KIT:
        from rmroute.harness.core import testing

        return getattr(testing, name)
    raise AttributeError(f"module 'rmroute' has no attribute {name!r}")
