"""Run configs: YAML files validated into pydantic models, with errors a person can act on.

Every error names the file, the line, the key path (``routers[1].params.alpha``), the value and
what is allowed. :func:`config_sha256` hashes the canonical form (all defaults filled in, keys
sorted), so two files that mean the same run hash the same.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError,
                      model_validator)
from pydantic_core import PydanticCustomError

from rmroute.harness.core.errors import ConfigError, PluginError
from rmroute.harness.core.plugins import check_params, get_registry


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


# ---- names that become parts of file names ----------------------------------------------------
#: longest suite name, scenario name or label (each becomes part of a file or folder name)
MAX_NAME_CHARS = 100
#: longest run id, in UTF-8 bytes: it is a file name (+ ``.json``, ``.samples``) and a folder name
MAX_RUN_ID_BYTES = 240


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be part of a file name, or None. The rule for suites, scenario names
    and labels: 1 to :data:`MAX_NAME_CHARS` characters, no NUL or other control character, no
    ``/`` or ``\\``, not starting with ``.``."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME_CHARS:
        return f"is {len(value)} characters long; at most {MAX_NAME_CHARS} (it becomes part of a file name)"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain NUL or other control characters (it becomes part of a file name)"
    if "/" in value or "\\" in value:
        return "must not contain '/' or '\\' (it becomes part of a file name)"
    if value.startswith("."):
        return "must not start with '.' (it becomes part of a file name)"
    return None


def _check_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise PydanticCustomError("bad_name", "a name " + problem)
    return value


def _check_suite(value: str) -> str:
    _check_name(value)
    if slug(value) != value:
        raise PydanticCustomError(
            "bad_name", "a suite names a results folder as is: use only letters, digits, '-', '_' and '.' "
                        f"(e.g. {slug(value)!r})")
    return value


#: a scenario name or label: checked by :func:`name_problem`, slugged in file names
Name = Annotated[str, AfterValidator(_check_name)]
#: a suite: a :data:`Name` that is also a folder name as is (letters, digits, ``-_.``)
SuiteName = Annotated[str, AfterValidator(_check_suite)]


def slug(text: str) -> str:
    """``text`` with every character other than letters, digits and ``-_.`` replaced by ``_`` (file names)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def slug_clashes(names: Sequence[tuple[Any, str]]) -> list[tuple[Any, str, Any, str]]:
    """Pairs of names that would give the same file name: ``(first key, first name, key, name)`` for
    every name whose :func:`slug` an earlier one already has. ``names`` holds
    (key, name) pairs, the key saying where the name came from."""
    first: dict[str, tuple[Any, str]] = {}
    out = []
    for key, name in names:
        s = slug(name)
        if s in first:
            out.append((*first[s], key, name))
        else:
            first[s] = (key, name)
    return out


class PluginRef(StrictModel):
    """A registered plugin by name, with its constructor parameters. A bare string is the name."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None  # how the leaderboard shows it (default: name + distinguishing params)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class NamedRef(PluginRef):
    """A plugin ref whose label becomes part of run file names (routers, evaluation suites)."""

    label: Name | None = None


class RouterRef(NamedRef):
    """A router entry: a named plugin ref, plus what the run feeds this router (default: the config's).

    ``normalizers``: this router's feedback chain (plugin refs, applied in order); null = the
    config-wide ``normalizers`` (in training, else the chain of the router's feedback kind).
    ``context``: which contexts it sees in replay: ``offline`` (the offline router's projection; the
    default where ``settings.offline`` is set), ``pair`` (the raw pair-encoder embedding, no offline
    stage) or ``prompt`` (the prompt's embedding alone, as LASeR's).
    """

    normalizers: list[PluginRef] | None = None
    context: Literal["offline", "pair", "prompt"] | None = None


def _distinct_seeds(seeds: list[int]) -> list[int]:
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seed(s) {repeated} listed more than once; each seed is one run and one run file")
    return seeds


class RunConfig(StrictModel):
    """The common part of every run config; each runner validates its own section."""

    kind: Literal["replay", "train", "evaluate"]
    suite: SuiteName = Field(description="results are grouped by suite: results/runs/<suite>/")
    description: str = ""
    seeds: Annotated[list[Annotated[StrictInt, Field(ge=0)]], AfterValidator(_distinct_seeds)] = Field(
        default_factory=lambda: [0], min_length=1)
    routers: list[RouterRef] = Field(default_factory=list)
    reward_models: list[PluginRef] = Field(default_factory=list)
    normalizers: list[PluginRef] = Field(default_factory=list, description="applied in order")
    featurizer: PluginRef | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="data sources and splits")
    settings: dict[str, Any] = Field(default_factory=dict, description="runner-specific options")
    board: Literal["result", "check"] | None = Field(
        None, description="where the leaderboard shows its runs: `result` (the board) or `check` (results/checks.md: "
        "a pipeline check whose numbers mean nothing); null = result for replay, check for train and evaluate")


#: which plugin kind each config field refers to, and the params the runner supplies itself
PLUGIN_FIELDS: dict[str, tuple[str, frozenset[str]]] = {
    "routers": ("router", frozenset({"n_arms", "dim", "seed"})),
    "reward_models": ("reward_model", frozenset()),
    "normalizers": ("normalizer", frozenset()),
    "featurizer": ("featurizer", frozenset()),
}


# ---- locating keys in the YAML source -------------------------------------------------------
def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node along ``loc`` (a key path such as ``("routers", 1, "params")``)
    that exists in the YAML tree ``node`` (from :func:`read_yaml_mapping`); None without a tree.
    Error messages use it to point at the line of the key that is wrong."""
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
    """A key path as people write it: ``("routers", 1, "params")`` -> ``routers[1].params``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic may insert validator tags such as "function-before[...]"; they are not keys
    return tuple(p for p in loc if not (isinstance(p, str) and p.endswith("]") and "[" in p))


def _short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _format_errors(path: Path, tree: yaml.Node | None, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = prefix + _clean_loc(err["loc"])
        if err["type"] == "unknown_key":
            loc = loc + (err["ctx"]["key"],)
        where = f"{path}:{line_of(tree, loc) or '?'}"
        value = "" if err["type"] in ("missing", "unknown_key") else f" (got {_short_repr(err['input'])})"
        lines.append(f"{where}: {format_loc(loc)}: {err['msg']}{value}")
    return "\n".join(lines)


class Problems:
    """Collects config problems as ``file:line: key.path: message`` lines; :meth:`raise_if_any`
    raises them together as one :class:`ConfigError`."""

    def __init__(self, path: Path, tree: yaml.Node | None) -> None:
        self.path, self.tree, self.lines = path, tree, []

    def line(self, loc: tuple[Any, ...]) -> int | str:
        return line_of(self.tree, loc) or "?"

    def add(self, loc: tuple[Any, ...], message: str) -> None:
        self.lines.append(f"{self.path}:{self.line(loc)}: {format_loc(loc)}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError("\n".join(self.lines))


def check_plugin(problems: Problems, loc: tuple[Any, ...], kind: str, name: str, params: dict[str, Any],
                 supplied: frozenset[str] = frozenset()):
    """The registered ``kind`` called ``name``, when it is registered and ``params`` fit its factory's
    signature (``supplied``: the parameters the runner passes itself, which the config may not set);
    else None, after adding the problem at ``loc``."""
    try:
        entry = get_registry().get(kind, name)
    except PluginError as exc:
        problems.add(loc + ("name",), str(exc))
        return None
    bad_supplied = supplied & set(params)
    if bad_supplied:
        problems.add(loc + ("params",), f"{', '.join(sorted(bad_supplied))} are set by the runner, not the config")
        return None
    try:
        check_params(entry, {**{k: None for k in supplied}, **params})
    except PluginError as exc:
        problems.add(loc + ("params",), str(exc))
        return None
    return entry


def plugin_refs(cfg: RunConfig) -> list[tuple[tuple[Any, ...], str, PluginRef, frozenset[str]]]:
    """(key path, plugin kind, ref, params the runner supplies) of every plugin ref in ``cfg``: the
    fields of :data:`PLUGIN_FIELDS` and each router entry's own ``normalizers``."""
    out = []
    for field, (kind, supplied) in PLUGIN_FIELDS.items():
        refs = getattr(cfg, field)
        if refs is None:
            continue
        if not isinstance(refs, list):
            out.append(((field,), kind, refs, supplied))
            continue
        for i, ref in enumerate(refs):
            out.append(((field, i), kind, ref, supplied))
            for j, norm in enumerate(getattr(ref, "normalizers", None) or []):
                out.append(((field, i, "normalizers", j), "normalizer", norm, frozenset()))
    return out


def check_plugin_refs(cfg: RunConfig, path: Path, tree: yaml.Node | None) -> None:
    """Every plugin name is registered and its params fit the factory's signature; normalizers
    (cheap, no model) are also built once, so their own checks of the values run here."""
    problems = Problems(path, tree)
    for loc, kind, ref, supplied in plugin_refs(cfg):
        entry = check_plugin(problems, loc, kind, ref.name, ref.params, supplied)
        if entry is not None and kind == "normalizer":
            try:
                entry.factory(**ref.params)
            except Exception as exc:  # noqa: BLE001 - the normalizer's own check of its values
                problems.add(loc + ("params",), str(exc) if isinstance(exc, ValueError) else
                             f"normalizer {ref.name!r}: {type(exc).__name__}: {exc}")
    problems.raise_if_any()


# ---- reading YAML, bounded --------------------------------------------------------------------
#: a config file larger than this is refused before it is parsed
MAX_CONFIG_BYTES = 1 << 20
#: deepest nesting of mappings and sequences (counting what aliases expand to)
MAX_DEPTH = 64
#: how many nodes aliases may add when the document is expanded (a "billion laughs" adds ~10⁹)
MAX_ALIAS_NODES = 100_000


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that rmroute refuses (duplicate key, too deep, too many alias expansions)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that refuses, while composing (before anything is expanded):
    duplicate keys in a mapping, nesting deeper than :data:`MAX_DEPTH`, recursive aliases and
    aliases that would expand to more than :data:`MAX_ALIAS_NODES` extra nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0  # nesting of the node being composed
        self._nodes = 0  # nodes composed (each alias counts once, however often it is used)
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded node count, expanded depth)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # its own composition has not finished: it contains itself
                raise _Refused(None, None, "recursive alias (a node that contains itself)", mark)
            return node
        mark = self.peek_event().start_mark
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._nodes += 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        sizes = [self._sizes[id(c)] for c in children]
        size = 1 + sum(n for n, _ in sizes)
        depth = 1 + max((d for _, d in sizes), default=0)
        if depth > MAX_DEPTH:
            raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded", mark)
        if size - self._nodes > MAX_ALIAS_NODES:
            raise _Refused(None, None, f"its aliases expand to more than {MAX_ALIAS_NODES:,} extra nodes "
                                       "(an alias bomb?)", mark)
        self._sizes[id(node)] = (size, depth)
        return node

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first:
                raise _Refused(None, None, f"duplicate key {key.value!r} (first at line "
                                           f"{first[key.tag, key.value]}, again at line {line})", key.start_mark)
            first[key.tag, key.value] = line
        return node


def _read_text(path: Path) -> str:
    """The file as UTF-8 text, at most :data:`MAX_CONFIG_BYTES`; anything else is a ConfigError."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; a config may be at most 1 MiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save the file as UTF-8") from None


def read_yaml_mapping(path: str | Path, what: str = "run config") -> tuple[Path, dict[str, Any], yaml.Node]:
    """Read a YAML file that must hold a mapping; returns (path, data, node tree for line numbers).

    Bounded: at most :data:`MAX_CONFIG_BYTES`, UTF-8, nesting at most :data:`MAX_DEPTH` deep, aliases
    adding at most :data:`MAX_ALIAS_NODES` nodes; duplicate keys are errors naming both lines."""
    path = Path(path)
    text = _read_text(path)
    try:
        tree = yaml.compose(text, Loader=_BoundedLoader)
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise ConfigError(f"{path}:{exc.problem_mark.line + 1}: {exc.problem}") from None
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


def read_run_config(path: str | Path) -> tuple[RunConfig, Path, yaml.Node]:
    """Read a run config and validate its common part (:class:`RunConfig`); returns (config, path,
    node tree for line numbers). What each runner checks on top (its ``settings`` and
    ``check_config``) is added by :func:`rmroute.harness.runners.load_config`, which knows the runners."""
    path, data, tree = read_yaml_mapping(path)
    return validate_model(RunConfig, path, data, tree), path, tree


def check_settings(model: type[BaseModel] | None, cfg: RunConfig, path: Path, tree: yaml.Node) -> BaseModel | None:
    """Validate ``cfg.settings`` with ``model`` (a runner's settings model; None: nothing to check)
    and return the typed settings; errors name file, line and ``settings.<key>``."""
    if model is None:
        return None
    try:
        return model.model_validate(cfg.settings)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, tree, exc, prefix=("settings",))) from None


# ---- what a run needs: the runners' check_config use these ----------------------------------------
def check_run_ids(problems: Problems, ids: Sequence[tuple[tuple[Any, ...], str]]) -> None:
    """Each run id (a file and folder name) fits in :data:`MAX_RUN_ID_BYTES` UTF-8 bytes."""
    for loc, rid in ids:
        n = len(rid.encode("utf-8"))
        if n > MAX_RUN_ID_BYTES:
            problems.add(loc, f"the run id {rid!r} is {n} bytes long (UTF-8); at most {MAX_RUN_ID_BYTES}, "
                              "as it names files: shorten this label or the scenario name")


#: fields added after run files were committed: left out of the canonical form while unset, so that a
#: config that does not use them keeps the hash its run files record
_OMITTED_WHEN_NONE = ("board",)


def canonical_json(cfg: RunConfig) -> str:
    data = cfg.model_dump(mode="json")
    for key in _OMITTED_WHEN_NONE:
        if data.get(key) is None:
            data.pop(key, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def board_role(cfg: dict[str, Any] | RunConfig) -> str:
    """Where a config's runs go on the leaderboard: its ``board``, else ``result`` for replay and
    ``check`` for train and evaluate (the policies trained here are pipeline checks until a config
    says otherwise)."""
    data = cfg if isinstance(cfg, dict) else cfg.model_dump(mode="json")
    role = data.get("board")
    if role in ("result", "check"):
        return role
    return "result" if data.get("kind") == "replay" else "check"


def config_sha256(cfg: RunConfig) -> str:
    return hashlib.sha256(canonical_json(cfg).encode("utf-8")).hexdigest()
