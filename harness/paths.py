"""The one rule for a path written inside a config (docs/configs.md, "Paths inside a config").

A path in a config (a replay config's ``settings.pool`` and ``settings.offline``, an offline
config's ``pool``, a pool's ``table.file``, a group's ``configs``, evaluate's ``train_runs``, ...)
names a file by one rule, implemented here once:

1. ``$RMROUTE_CACHE`` (:func:`rmroute.harness.assets.cache_root`), other environment variables and
   ``~`` are expanded;
2. an absolute path is taken as is;
3. a relative path is looked up first in the folder of the config file that holds it, and used
   from there when it exists there;
4. else relative to the working directory.

Step 4 is how configs written before the rule resolve (the committed ones say
``pool: configs/pool-cpu.yaml``, a repository-root path, and their hashes are recorded in run files,
so they stay as they are), and how ``rmroute reproduce`` resolves a run file's stored config, which
has no file of its own. An error names the config file, the key and every path tried.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from rmroute.harness.assets import cache_root
from rmroute.harness.core.config import Problems
from rmroute.harness.core.errors import ConfigError

#: what the looked-up path must be: a file, a folder, or either
Kind = Literal["file", "dir", "any"]


def expand_path(value: str | Path) -> Path:
    """``$RMROUTE_CACHE`` (:func:`rmroute.harness.assets.cache_root`), other environment variables and
    ``~`` expanded."""
    value = re.sub(r"\$\{RMROUTE_CACHE\}|\$RMROUTE_CACHE(?![A-Za-z0-9_])", lambda _: str(cache_root()), str(value))
    return Path(os.path.expanduser(os.path.expandvars(value)))


def _exists(path: Path, kind: Kind) -> bool:
    return path.is_file() if kind == "file" else path.is_dir() if kind == "dir" else path.exists()


def candidates(value: str | Path, config_file: str | Path | None) -> list[Path]:
    """Where :func:`find_config_path` looks for ``value``, in order: the path itself when absolute;
    else the config file's folder (when ``config_file`` is a file: a reproduced run's stored config
    has none), then the working directory (the path as written)."""
    p = expand_path(value)
    if p.is_absolute():
        return [p]
    out = []
    if config_file is not None and Path(config_file).is_file():
        out.append(Path(config_file).parent / p)
    if not out or out[0].absolute() != p.absolute():  # a config in the working directory: one place
        out.append(p)
    return out


def find_config_path(value: str | Path, config_file: str | Path | None, kind: Kind = "file") -> tuple[Path | None, list[Path]]:
    """(the path ``value`` names by the rule, or None when no candidate exists; every candidate tried)."""
    tried = candidates(value, config_file)
    for c in tried:
        if _exists(c, kind):
            return c, tried
    return None, tried


def not_found(value: str | Path, tried: list[Path], kind: Kind = "file") -> str:
    """The message for a path that is nowhere: ``'x.yaml' not found (tried /abs/a, /abs/b)``."""
    what = {"file": "not found", "dir": "no such folder", "any": "not found"}[kind]
    return f"{str(value)!r} {what} (tried {', '.join(str(Path(c).absolute()) for c in tried)})"


class PathNotFound(ConfigError):
    """A path in a config that is nowhere; ``detail``: the message without the file and key (for
    callers that add a line number)."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


def resolve_config_path(value: str | Path, key: str, config_file: str | Path | None, kind: Kind = "file") -> Path:
    """The path ``value`` (the config key ``key`` of ``config_file``) names by the rule of this module;
    a :class:`PathNotFound` naming the file, the key and every path tried when it is nowhere."""
    found, tried = find_config_path(value, config_file, kind)
    if found is None:
        where = config_file if config_file is not None else "(a config with no file)"
        detail = not_found(value, tried, kind)
        raise PathNotFound(f"{where}: {key}: {detail}", detail)
    return found


def resolved_settings(settings: Any, config_file: str | Path | None, keys: tuple[str, ...] = ("pool", "offline")) -> Any:
    """A copy of a runner's typed ``settings`` whose path fields ``keys`` (those set) are resolved by
    the rule; the config itself, and so its hash, is left as it is."""
    update = {key: str(resolve_config_path(getattr(settings, key), f"settings.{key}", config_file))
              for key in keys if getattr(settings, key, None)}
    return settings.model_copy(update=update) if update else settings


def config_file_ref(problems: Problems, loc: tuple[Any, ...], value: str | None, config_file: str | Path | None,
                    kind: Kind = "file") -> Path | None:
    """For a runner's ``check_config``: the path ``value`` (at key path ``loc`` of ``config_file``)
    names by the rule, or None when it is unset, or after adding the problem (every path tried) to
    ``problems`` when it is nowhere. `rmroute validate` and `rmroute run` resolve alike."""
    if not value:
        return None
    found, tried = find_config_path(value, config_file, kind)
    if found is None:
        problems.add(loc, not_found(value, tried, kind))
    return found


def resolve_source_spec(spec: str, key: str, config_file: str | Path | None) -> str:
    """A data source spec (:func:`rmroute.harness.assets.load_source`) with a ``file:`` path resolved
    by the rule (``file:<the path found>``); other kinds (``pypi:``, ``hf:``, ``suite:``,
    ``github:``) unchanged. A :class:`ConfigError` naming the file, the key and every path tried when
    the file is nowhere."""
    kind, sep, rest = spec.partition(":")
    if not (sep and kind == "file"):
        return spec
    return f"file:{resolve_config_path(rest, key, config_file)}"
