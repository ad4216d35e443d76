"""Run configs: YAML files validated into pydantic models, with errors a person can act on.

Every error names the file, the line, the key path (``routers[1].params.alpha``), the value and
what is allowed. :func:`config_sha256` hashes the canonical form (all defaults filled in, keys
sorted), so two files that mean the same run hash the same.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.errors import ConfigError, PluginError

RUN_KINDS = ("replay", "train", "evaluate")


class StrictModel(BaseModel):
    """Unknown keys are errors that list the allowed keys."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = set(cls.model_fields)
            for key in data:
                if key not in allowed:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key '{key}'; allowed keys: {allowed}",
                        {"key": key, "allowed": ", ".join(sorted(allowed))},
                    )
        return data


class PluginRef(StrictModel):
    """A registered plugin by name, with its constructor parameters. A bare string is the name."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None  # how the leaderboard shows it (default: name + distinguishing params)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class RunConfig(StrictModel):
    """The common part of every run config; each runner validates its own section."""

    kind: Literal["replay", "train", "evaluate"]
    suite: str = Field(description="results are grouped by suite: results/runs/<suite>/")
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    routers: list[PluginRef] = Field(default_factory=list)
    reward_models: list[PluginRef] = Field(default_factory=list)
    normalizers: list[PluginRef] = Field(default_factory=list, description="applied in order")
    featurizer: PluginRef | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="data sources and splits")
    settings: dict[str, Any] = Field(default_factory=dict, description="runner-specific options")

    @field_validator("suite")
    @classmethod
    def _suite_is_a_path_part(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError("suite must be a non-empty name without '/' (it names a results folder)")
        return v


#: which plugin kind each config field refers to, and the params the runner supplies itself
PLUGIN_FIELDS: dict[str, tuple[str, frozenset[str]]] = {
    "routers": ("router", frozenset({"n_arms", "dim", "seed"})),
    "reward_models": ("reward_model", frozenset()),
    "normalizers": ("normalizer", frozenset()),
    "featurizer": ("featurizer", frozenset()),
}


# ---- locating keys in the YAML source -------------------------------------------------------
def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node along ``loc`` that exists in the YAML tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic may insert validator tags such as "function-before[...]"; they are not keys
    return tuple(p for p in loc if not (isinstance(p, str) and p.endswith("]") and "[" in p))


def _format_errors(path: Path, tree: yaml.Node | None, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = prefix + _clean_loc(err["loc"])
        if err["type"] == "unknown_key":
            loc = loc + (err["ctx"]["key"],)
        where = f"{path}:{_line_of(tree, loc) or '?'}"
        value = "" if err["type"] in ("missing", "unknown_key") else f" (got {err['input']!r})"
        lines.append(f"{where}: {format_loc(loc)}: {err['msg']}{value}")
    return "\n".join(lines)


def _check_plugins(cfg: RunConfig, path: Path, tree: yaml.Node | None) -> None:
    from harness.plugins import check_params, get_registry

    registry = get_registry()
    problems = []
    for field, (kind, supplied) in PLUGIN_FIELDS.items():
        refs = getattr(cfg, field)
        refs = [] if refs is None else refs if isinstance(refs, list) else [refs]
        for i, ref in enumerate(refs):
            loc = (field, i) if isinstance(getattr(cfg, field), list) else (field,)
            try:
                entry = registry.get(kind, ref.name)
            except PluginError as exc:
                problems.append(f"{path}:{_line_of(tree, loc + ('name',))}: {format_loc(loc + ('name',))}: {exc}")
                continue
            bad_supplied = supplied & set(ref.params)
            if bad_supplied:
                problems.append(
                    f"{path}:{_line_of(tree, loc + ('params',))}: {format_loc(loc + ('params',))}: "
                    f"{', '.join(sorted(bad_supplied))} are set by the runner, not the config"
                )
                continue
            try:
                check_params(entry, {**{k: None for k in supplied}, **ref.params})
            except PluginError as exc:
                problems.append(f"{path}:{_line_of(tree, loc + ('params',))}: {format_loc(loc + ('params',))}: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))


def read_yaml_mapping(path: str | Path, what: str = "run config") -> tuple[Path, dict[str, Any], yaml.Node]:
    """Read a YAML file that must hold a mapping; returns (path, data, node tree for line numbers)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys, got {type(data).__name__}")
    return path, data, tree


def validate_model(model: type[BaseModel], path: Path, data: dict[str, Any], tree: yaml.Node) -> Any:
    """``model.model_validate(data)``, with errors turned into one ConfigError naming file, line, key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, tree, exc)) from None


def load_config(path: str | Path, check_plugins: bool = True) -> RunConfig:
    """Read and validate a run config; raise :class:`ConfigError` naming file, line and key path."""
    path, data, tree = read_yaml_mapping(path)
    cfg = validate_model(RunConfig, path, data, tree)
    _check_settings(cfg, path, tree)
    if check_plugins:
        _check_plugins(cfg, path, tree)
    return cfg


def _check_settings(cfg: RunConfig, path: Path, tree: yaml.Node) -> None:
    """Validate ``settings`` with the model of the runner for ``kind`` (when that runner exists)."""
    import importlib

    from harness.runners import RUNNERS

    try:
        module = importlib.import_module(RUNNERS[cfg.kind])
    except ModuleNotFoundError:
        return
    model = getattr(module, "SETTINGS", None)
    if model is None:
        return
    try:
        model.model_validate(cfg.settings)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, tree, exc, prefix=("settings",))) from None


def canonical_json(cfg: RunConfig) -> str:
    return json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_sha256(cfg: RunConfig) -> str:
    return hashlib.sha256(canonical_json(cfg).encode("utf-8")).hexdigest()
