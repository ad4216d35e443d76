"""Dispatch a validated config to the runner for its ``kind``.

A runner is a module with ``run(cfg, config_path, out_dir) -> list[Path]`` (the run JSONs it
wrote), ``plan(cfg, config_path) -> str`` (``--dry-run``), ``SETTINGS`` (the model of its config's
``settings``) and ``check_config``. Runners are imported lazily: torch and transformers load only
when a run needs them. The grid they share (run ids, ``--resume``, ``--only``, run records, Ray) is
:mod:`rmroute.harness.runners.grid`.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Callable

from rmroute.harness.core.config import RunConfig
from rmroute.harness.core.errors import NotBuiltError

RUNNERS: dict[str, str] = {
    "replay": "rmroute.harness.runners.replay",
    "train": "rmroute.harness.runners.train.runner",
    "evaluate": "rmroute.harness.runners.evaluate",
}

Runner = Callable[..., list[Path]]


def _module(kind: str):
    module_name = RUNNERS[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise NotBuiltError(
                f"the {kind!r} runner ({module_name}) is not built yet; "
                f"`rmroute validate` checks this config, but it cannot run until that runner exists"
            ) from None
        raise
    return module


def get_runner(kind: str) -> Runner:
    """The runner's ``run(cfg, config_path, out_dir, **options) -> list[Path]``."""
    return _module(kind).run


def get_plan(kind: str) -> Callable[..., str]:
    """The runner's ``plan(cfg, config_path) -> str`` (what ``rmroute run --dry-run`` prints)."""
    module = _module(kind)
    if not hasattr(module, "plan"):
        raise NotBuiltError(f"the {kind!r} runner has no --dry-run plan")
    return module.plan


def run_config(cfg: RunConfig, config_path: Path, out_dir: Path, **options) -> list[Path]:
    """Run ``cfg``; options (``resume``, ``only``) are passed to runners that take them."""
    runner = get_runner(cfg.kind)
    accepted = inspect.signature(runner).parameters
    unknown = [k for k, v in options.items() if v and k not in accepted]
    if unknown:
        raise NotBuiltError(f"the {cfg.kind!r} runner does not support {', '.join(unknown)}")
    return runner(cfg, config_path, out_dir, **{k: v for k, v in options.items() if k in accepted})
