"""The plugin registry: pluggy hooks, entry-point discovery, allow/deny lists, one constructor.

:func:`create` builds a plugin by kind and name; :func:`create_ref` builds it from a plugin ref as
configs write it (a bare name, ``{name, params}`` or a config ``PluginRef``). A ``suite`` entry is
either a benchmark or an evaluation suite (its metadata ``kind``): :func:`create_benchmark` and
:func:`create_eval_suite` build one of each and refuse the other kind by name.

Built-ins (``rmroute.routers.plugin``, ``rmroute.reward_models.plugin``, ``rmroute.suites.plugin``) and third-party
packages (entry-point group ``rmroute``) go through the same hooks. The registry is built once
per process (:func:`get_registry`); :func:`reset_registry` is for tests.

Environment:
  RMROUTE_PLUGINS           comma-separated allow-list of third-party entry-point names
                            (unset: all; built-ins are always loaded unless denied)
  RMROUTE_DISABLE_PLUGINS   comma-separated deny-list (entry-point or built-in plugin names)
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import inspect
import os
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

import pluggy

from rmroute.harness.core import hookspecs
from rmroute.harness.core.errors import ConfigError, PluginError, UnknownPluginError
from rmroute.harness.core.hookspecs import KINDS, PROJECT

BUILTIN_PLUGINS: dict[str, str] = {
    "builtin-routers": "rmroute.routers.plugin",
    "builtin-reward-models": "rmroute.reward_models.plugin",
    "builtin-suites": "rmroute.suites.plugin",
    "builtin-eval-lm": "rmroute.suites.lm_eval_plugin",
    "builtin-eval-chat": "rmroute.suites.chat_plugin",
    "builtin-generators": "rmroute.generators.plugin",
}


class PluginWarning(UserWarning):
    """A plugin was skipped; the message names it and its error."""


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    metadata: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "plugin": self.plugin, "metadata": _jsonable(self.metadata)}


@dataclass(frozen=True)
class PluginInfo:
    name: str
    source: str  # "builtin" or "entry-point"
    module: str
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class FailedPlugin:
    name: str
    stage: str  # "import" or the hook that raised
    error: str


@dataclass
class Registry:
    plugins: list[PluginInfo] = field(default_factory=list)
    failed: list[FailedPlugin] = field(default_factory=list)
    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def get(self, kind: str, name: str) -> Entry:
        if kind not in self.entries:
            raise UnknownPluginError(
                f"unknown plugin kind {kind!r}; kinds are: {', '.join(sorted(self.entries))}"
            )
        table = self.entries[kind]
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(table)) or "(none registered)"
            raise UnknownPluginError(f"unknown {kind} {name!r}{hint} (registered: {known})")
        return table[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def to_json(self) -> dict[str, Any]:
        return {
            "plugins": [p.__dict__ for p in self.plugins],
            "entries": {k: [e.describe() for _, e in sorted(v.items())] for k, v in self.entries.items()},
            "failed": [f.__dict__ for f in self.failed],
        }


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None or not raw.strip():
        return None
    return {x.strip() for x in raw.split(",") if x.strip()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _discover(extra: Iterable[tuple[str, Any]] = ()) -> tuple[list[tuple[PluginInfo, Any]], list[FailedPlugin]]:
    """Import every enabled plugin; return (loaded, failed)."""
    allow, deny = _env_list("RMROUTE_PLUGINS"), _env_list("RMROUTE_DISABLE_PLUGINS") or set()
    loaded: list[tuple[PluginInfo, Any]] = []
    failed: list[FailedPlugin] = []

    def fail(name: str, stage: str, exc: BaseException) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"rmroute plugin {name!r} skipped ({stage}): {msg}", PluginWarning, stacklevel=3)
        failed.append(FailedPlugin(name=name, stage=stage, error=msg))

    for name, module in BUILTIN_PLUGINS.items():
        if name in deny:
            continue
        try:
            loaded.append((PluginInfo(name, "builtin", module), importlib.import_module(module)))
        except Exception as exc:  # a broken built-in must not take the others down
            fail(name, "import", exc)

    for ep in sorted(md.entry_points(group=PROJECT), key=lambda e: e.name):
        if ep.name in deny or (allow is not None and ep.name not in allow):
            continue
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            ep.name, "entry-point", ep.value,
            distribution=dist.metadata["Name"] if dist else None,
            version=dist.version if dist else None,
        )
        try:
            loaded.append((info, ep.load()))
        except Exception as exc:
            fail(ep.name, "import", exc)

    for name, obj in extra:
        if name in deny:
            continue
        module = obj.__name__ if isinstance(obj, ModuleType) else type(obj).__name__
        loaded.append((PluginInfo(name, "explicit", module), obj))
    return loaded, failed


def build_registry(extra_plugins: Iterable[tuple[str, Any]] = ()) -> Registry:
    """Discover plugins and collect their registrations.

    A plugin whose import or any hook raises is skipped as a whole (none of its entries are kept)
    and listed in ``Registry.failed``. Two plugins registering one (kind, name) raise
    :class:`PluginError` naming both.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    loaded, failed = _discover(extra_plugins)
    registry = Registry(failed=failed)

    for info, obj in loaded:
        try:
            pm.register(obj, name=info.name)
        except Exception as exc:  # e.g. a hookimpl with a wrong signature
            registry.failed.append(FailedPlugin(info.name, "register", f"{type(exc).__name__}: {exc}"))
            warnings.warn(f"rmroute plugin {info.name!r} skipped (register): {exc}", PluginWarning, stacklevel=2)
            continue
        staged: list[Entry] = []
        problem: FailedPlugin | None = None
        for kind, hook_name in KINDS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name != info.name:
                    continue

                def register(name: str, factory: Callable[..., Any], _kind: str = kind, **metadata: Any) -> None:
                    if not isinstance(name, str) or not name:
                        raise PluginError(f"{_kind} name must be a non-empty string, got {name!r}")
                    if not callable(factory):
                        raise PluginError(f"{_kind} {name!r}: factory must be callable, got {factory!r}")
                    staged.append(Entry(_kind, name, factory, info.name, dict(metadata)))

                try:
                    impl.function(register=register)
                except Exception as exc:
                    problem = FailedPlugin(info.name, hook_name, f"{type(exc).__name__}: {exc}")
                    break
            if problem:
                break
        if problem:
            pm.unregister(name=info.name)
            registry.failed.append(problem)
            warnings.warn(
                f"rmroute plugin {info.name!r} skipped ({problem.stage}): {problem.error}",
                PluginWarning, stacklevel=2,
            )
            continue
        for entry in staged:
            table = registry.entries[entry.kind]
            if entry.name in table:
                other = table[entry.name].plugin
                raise PluginError(
                    f"{entry.kind} {entry.name!r} is registered by two plugins: {other!r} and "
                    f"{entry.plugin!r}; disable one with RMROUTE_DISABLE_PLUGINS"
                )
            table[entry.name] = entry
        registry.plugins.append(info)
    return registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY


def reset_registry(registry: Registry | None = None) -> None:
    """Forget (or replace) the process-wide registry; for tests."""
    global _REGISTRY
    _REGISTRY = registry


def check_params(entry: Entry, params: dict[str, Any]) -> None:
    """Raise PluginError when ``params`` do not fit the factory's signature."""
    try:
        sig = inspect.signature(entry.factory)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(**params)
    except TypeError as exc:
        accepted = [
            p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        raise PluginError(
            f"{entry.kind} {entry.name!r} (from {entry.plugin!r}): {exc}; "
            f"accepted parameters: {', '.join(accepted) or '(none)'}"
        ) from None


def create(kind: str, name: str, /, **params: Any) -> Any:
    """Build the registered ``kind`` called ``name`` with ``params``.

    >>> create("router", "random", n_arms=3, dim=4, seed=0)   # doctest: +SKIP
    """
    entry = get_registry().get(kind, name)
    check_params(entry, params)
    return entry.factory(**params)


class PluginRefError(ConfigError, ValueError):
    """A plugin ref is malformed (not a name or ``{name, params}``, unknown keys, params not a
    mapping, params that the caller supplies itself); the message names where the ref came from."""


#: the keys a ``{name, params}`` ref may have (``label`` is how results show it; it is not built)
REF_KEYS = ("name", "params", "label")


def parse_ref(ref: Any, where: str) -> tuple[str, dict[str, Any]]:
    """(name, params) of a plugin ref: a bare name, a mapping ``{name, params[, label]}`` or an object
    with ``.name`` and ``.params`` (a config ``PluginRef``). ``where`` names the ref in errors
    (e.g. ``reward_models[0]``); a malformed ref is a :class:`PluginRefError`."""
    if isinstance(ref, str):
        if not ref:
            raise PluginRefError(f"{where}: expected a name or {{name, params}}, got an empty string")
        return ref, {}
    if isinstance(ref, Mapping):
        unknown = sorted(set(ref) - set(REF_KEYS), key=str)
        if unknown:
            raise PluginRefError(f"{where}: unknown keys {unknown}; expected name and optional params")
        name, params = ref.get("name"), ref.get("params")
    elif hasattr(ref, "name") and hasattr(ref, "params"):
        name, params = ref.name, ref.params
    else:
        raise PluginRefError(f"{where}: expected a name or {{name, params}}, got {ref!r}")
    if not isinstance(name, str) or not name:
        raise PluginRefError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise PluginRefError(f"{where} ({name}): params must be a mapping, got {params!r}")
    return name, dict(params)


def create_ref(kind: str, ref: Any, where: str | None = None, /, **supplied: Any) -> Any:
    """Build the plugin a ref names (see :func:`parse_ref`; ``where`` defaults to ``kind``), passing
    ``supplied`` (what the caller sets itself, e.g. a router's ``n_arms``, ``dim``, ``seed``) with
    the ref's params; a ref that sets one of those itself is a :class:`PluginRefError`.

    >>> create_ref("reward_model", {"name": "length", "params": {}})   # doctest: +SKIP
    """
    where = kind if where is None else where
    name, params = parse_ref(ref, where)
    clash = sorted(set(params) & set(supplied))
    if clash:
        raise PluginRefError(f"{where} ({name}): params {clash} are set by rmroute, not by the ref")
    return create(kind, name, **params, **supplied)


# ---- the two kinds of "suite" entry ----------------------------------------------------------
#: A ``register_suites`` entry is one of two things, told apart by its metadata ``kind``: a
#: benchmark (preference pairs in named splits, built from a seed: ``rmroute-pairs-v1``) or an
#: evaluation suite (scores a policy's outputs: ``gsm8k``, ``alpaca-eval``). The value names each.
SUITE_KINDS: dict[str, str] = {"benchmark": "a benchmark", "eval": "an evaluation suite"}


class SuiteKindError(PluginError):
    """A registered suite is not the kind the caller needs (a benchmark where an evaluation suite
    is expected, or the other way round); the message names the entry, its kind and the entries
    of the expected kind."""


def suite_entries(suite_kind: str) -> list[Entry]:
    """The registered suites whose metadata ``kind`` is ``suite_kind`` (a key of
    :data:`SUITE_KINDS`), sorted by name."""
    if suite_kind not in SUITE_KINDS:
        raise ValueError(f"unknown suite kind {suite_kind!r}; expected one of {', '.join(SUITE_KINDS)}")
    registry = get_registry()
    return [e for e in (registry.get("suite", n) for n in registry.names("suite"))
            if e.metadata.get("kind") == suite_kind]


def suite_entry(name: str, suite_kind: str) -> Entry:
    """The registered suite ``name`` when its metadata ``kind`` is ``suite_kind``; else a
    :class:`SuiteKindError` (an unknown name is an :class:`UnknownPluginError`)."""
    entry = get_registry().get("suite", name)
    got = entry.metadata.get("kind")
    if got != suite_kind:
        what = SUITE_KINDS[suite_kind]
        others = ", ".join(e.name for e in suite_entries(suite_kind)) or "(none registered)"
        raise SuiteKindError(f"suite {name!r} is not {what} (kind {got!r}); the registered suites of kind "
                             f"{suite_kind!r}: {others}")
    return entry


def create_benchmark(name: str, seed: int = 0) -> Any:
    """Build the benchmark ``name`` for build seed ``seed`` (a :class:`SuiteKindError` when ``name``
    is an evaluation suite). A benchmark has ``splits()`` and ``pairs(split)``.

    >>> create_benchmark("rmroute-pairs-v1", seed=0).pairs("test")   # doctest: +SKIP
    """
    entry = suite_entry(name, "benchmark")
    check_params(entry, {"seed": seed})
    return entry.factory(seed=seed)


def create_eval_suite(ref: Any, where: str | None = None) -> Any:
    """Build the evaluation suite a plugin ref names (see :func:`parse_ref`; ``where`` defaults to
    ``suite``); a :class:`SuiteKindError` when the ref names a benchmark.

    >>> create_eval_suite({"name": "gsm8k", "params": {"limit": 50}})   # doctest: +SKIP
    """
    name, params = parse_ref(ref, "suite" if where is None else where)
    entry = suite_entry(name, "eval")
    check_params(entry, params)
    return entry.factory(**params)
