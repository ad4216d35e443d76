"""Dispatch a validated config to the runner for its ``kind``.

A runner is a module with ``run(cfg, config_path, out_dir) -> list[Path]`` (the run JSONs it
wrote). Runners are imported lazily: torch and transformers load only when a run needs them.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

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
    return _module(kind).run


def get_plan(kind: str) -> Callable[..., str]:
    """The runner's ``plan(cfg, config_path) -> str`` (what ``rmroute run --dry-run`` prints)."""
    module = _module(kind)
    if not hasattr(module, "plan"):
        raise NotBuiltError(f"the {kind!r} runner has no --dry-run plan")
    return module.plan


def run_config(cfg: RunConfig, config_path: Path, out_dir: Path, **options) -> list[Path]:
    """Run ``cfg``; options (``resume``, ``only``) are passed to runners that take them."""
    import inspect

    runner = get_runner(cfg.kind)
    accepted = inspect.signature(runner).parameters
    unknown = [k for k, v in options.items() if v and k not in accepted]
    if unknown:
        raise NotBuiltError(f"the {cfg.kind!r} runner does not support {', '.join(unknown)}")
    return runner(cfg, config_path, out_dir, **{k: v for k, v in options.items() if k in accepted})


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """The ``ray`` module with Ray running: a local Ray with 2 CPUs, or the cluster at ``address``.

    Shuts down only a Ray it started itself; used by the replay and train runners' ``--executor ray``.
    """
    try:
        import ray
    except ImportError:
        raise NotBuiltError("--executor ray needs Ray: pip install 'rmroute[distributed]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else 2, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
