"""Dispatch a validated config to the runner for its ``kind``.

A runner is a module with ``run(cfg, config_path, out_dir) -> list[Path]`` (the run JSONs it
wrote), ``plan(cfg, config_path) -> str`` (``--dry-run``), and optionally ``SETTINGS`` (the
pydantic model of its config's ``settings``) and ``check_config(cfg, path, tree)`` (what a run needs
beyond the models). :func:`load_config` validates a config with its runner's checks; the runners
read the typed settings through :func:`settings_of`, so they are validated once per config. Runners
are imported lazily: torch and transformers load only when a run needs them. The grid they share
(run ids, ``--resume``, ``--only``, run records, Ray) is :mod:`rmroute.harness.runners.grid`.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import weakref
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from rmroute.harness.core.config import (RunConfig, StrictModel, check_plugin_refs, check_settings, read_run_config,
                                         read_yaml_mapping, validate_model)
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.errors import NotBuiltError
from rmroute.harness.paths import find_config_path, not_found

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


def load_config(path: str | Path, check_plugins: bool = True, check_run: bool = True) -> RunConfig:
    """Read and validate a run config; raise :class:`rmroute.harness.core.errors.ConfigError` naming
    file, line and key path.

    The common part and the runner's ``SETTINGS`` are always checked; with ``check_plugins`` every
    plugin name and its params; with ``check_run`` too, the runner's ``check_config(cfg, path,
    tree)`` (e.g. :func:`rmroute.harness.runners.replay.check_config`): the files it names, one run
    file per grid cell, each router built once. A config that passes runs. A runner that is not
    built yet checks nothing of its own. ``rmroute score`` reads only ``reward_models`` and
    ``data``, so it passes ``check_run=False``."""
    cfg, path, tree = read_run_config(path)
    try:
        module = _module(cfg.kind)
    except NotBuiltError:
        module = None
    settings = check_settings(getattr(module, "SETTINGS", None), cfg, path, tree)
    if settings is not None:
        _remember_settings(cfg, settings)
    if check_plugins:
        check_plugin_refs(cfg, path, tree)
        check = getattr(module, "check_config", None)
        if check_run and check is not None:
            check(cfg, path, tree)
    return cfg


#: typed settings per config object: id(cfg) -> (the ``cfg.settings`` they were validated from, typed settings)
_TYPED_SETTINGS: dict[int, tuple[dict[str, Any], Any]] = {}


def _remember_settings(cfg: RunConfig, settings: Any) -> None:
    key = id(cfg)
    if key not in _TYPED_SETTINGS:
        weakref.finalize(cfg, _TYPED_SETTINGS.pop, key, None)  # forgotten with the config
    _TYPED_SETTINGS[key] = (copy.deepcopy(cfg.settings), settings)


def settings_of(cfg: RunConfig) -> Any:
    """The typed settings of ``cfg``: ``cfg.settings`` validated by its runner's ``SETTINGS`` model
    (``cfg.settings`` itself for a runner without one).

    Validated once per config object: :func:`load_config` validates them first (its errors name
    file, line and key), and each runner's ``run``, ``plan`` and ``check_config`` reads them here.
    A config built otherwise (a Ray task's copy, a test's) is validated on first use; one whose
    ``settings`` changed since is validated again. The config is left as it is (its
    ``config_sha256`` and the run files do not change)."""
    model = getattr(_module(cfg.kind), "SETTINGS", None)
    if model is None:
        return cfg.settings
    known = _TYPED_SETTINGS.get(id(cfg))
    if known is not None and known[0] == cfg.settings:
        return known[1]
    settings = model.model_validate(cfg.settings)
    _remember_settings(cfg, settings)
    return settings


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


# ---- groups: one command for several configs ------------------------------------------------------


class GroupConfig(StrictModel):
    """``kind: group``: run configs listed in ``configs`` one after the other (paths by the rule of
    :mod:`rmroute.harness.paths`: the group file's folder when there, else the working directory),
    e.g. configs/real-rms.yaml: one replay config per score table. Each member keeps its own suite,
    config hash and run files."""

    kind: str = Field(pattern="^group$")
    description: str = ""
    configs: list[str] = Field(min_length=1)


def read_group(path: str | Path) -> GroupConfig | None:
    """The group config at ``path``, or None when the file is a run config (its ``kind`` is not
    ``group``)."""
    path, data, tree = read_yaml_mapping(path)
    if data.get("kind") != "group":
        return None
    group = validate_model(GroupConfig, path, data, tree)
    found = [find_config_path(c, path) for c in group.configs]
    missing = [f"configs[{i}]: {not_found(c, tried)}" for i, (c, (p, tried)) in enumerate(zip(group.configs, found)) if p is None]
    if missing:
        raise ConfigError(f"{path}: " + "; ".join(missing))
    group.configs = [str(p) for p, _ in found]  # resolved: the members are read from there
    return group


def config_paths(path: str | Path) -> list[Path]:
    """The run configs ``path`` stands for: its members (resolved by the path rule) when it is a
    group, else itself."""
    group = read_group(path)
    return [Path(c) for c in group.configs] if group is not None else [Path(path)]


# ---- a contributor's router next to the built-ins --------------------------------------------------


def parse_router_arg(text: str) -> dict[str, Any]:
    """``NAME`` or ``NAME={"param": value, ...}`` (JSON params) -> a router entry."""
    import json

    name, sep, params = text.partition("=")
    entry: dict[str, Any] = {"name": name.strip()}
    if sep:
        try:
            value = json.loads(params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--add-router {text!r}: the params after '=' must be a JSON object ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"--add-router {text!r}: the params after '=' must be a JSON object, got {value!r}")
        entry["params"] = value
    if not entry["name"]:
        raise ConfigError(f"--add-router {text!r}: expected NAME or NAME={{json params}}")
    return entry


def with_routers(path: str | Path, routers: list[str]) -> Path:
    """A copy of the run config at ``path`` with ``routers`` (``--add-router`` values) appended to its
    router list, written next to it (a hidden ``.<name>+routers-*.yaml``, so that the paths inside it
    resolve as the original's do; the caller removes it); it is checked like any config when it is
    loaded. The runs record the whole config, so `rmroute reproduce` needs no copy."""
    import tempfile

    import yaml

    path = Path(path)
    _, data, _ = read_yaml_mapping(path)
    data = dict(data)
    data["routers"] = list(data.get("routers") or []) + [parse_router_arg(r) for r in routers]
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}+routers-", suffix=".yaml", dir=path.parent)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(yaml.safe_dump(data, sort_keys=False))
    return Path(name)
