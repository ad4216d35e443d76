"""The reward-model pool: train the learned RMs, score every benchmark pair once, report.

`rmroute pool build CONFIG` (see configs/pool-cpu.yaml):

    name: cpu-pool-v1
    benchmark: {suite: rmroute-pairs-v1, seed: 0}
    train:                       # RMs trained on the benchmark's rm-train split, by name
      minilm-math: {domain_mix: {math: 1.0}, max_steps: 120}
    reward_models:               # the pool, in arm order
      - length
      - {name: hf-seqcls, label: minilm-math, params: {model: "trained:minilm-math"}}

`trained:<name>` resolves to the folder that training <name> produces, under
$RMROUTE_CACHE/rms/, keyed by the training config and the rm-train data: a changed config trains a
new RM (and, through the model's file hash, invalidates only its scores). `trained:<name>@<pool>`
names an RM that another pool (``name: <pool>``) trained: the newest such folder in the cache
(:func:`trained_by_name`; `rmroute rm list` lists them). A trained RM that did not
learn stops the build with an error naming it, its config entry and the evidence
(:func:`rmroute.harness.pipelines.rm_train.learning_problems`), unless its entry says
``require_learning: false``. Scores go through the score cache, so a second build scores nothing
and a killed build resumes.

Instead of ``benchmark``, a pool may read its own preference pairs (``pairs``, docs/data.md "Your
own pairs"): a source (``file:``, ``pypi:``, ``hf:``, ``suite:``; a ``file:`` folder reads every
data file in it), its splits (``given: true``: each record's ``split`` field; else seeded fractions
by group) and, for chosen/rejected records, a seeded A/B coin (:func:`build_pairs_pool`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, PrivateAttr, StrictInt, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from rmroute.harness.assets import PAIR_SPLITS, DataError, cache_root, load_source, resolve_source
from rmroute.harness.analysis import groups_by_domain
from rmroute.harness.core.config import PluginRef, Problems, StrictModel, line_of, read_yaml_mapping, validate_model
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.plugins import create_benchmark, create_ref
from rmroute.harness.core.types import PreferencePair
from rmroute.harness.determinism import derived_rng
from rmroute.harness.paths import find_config_path, not_found
from rmroute.harness.pipelines.rm_train import TRAIN_RECORD, NotLearnedError, RMTrainConfig, train_reward_model
from rmroute.harness.pipelines.score_cache import ScoreCache, score_pairs
from rmroute.harness.tables.format import ScoreTable, read_header, read_table

SPLITS = ("rm-train", "offline", "online", "test")


class BenchmarkRef(StrictModel):
    suite: str = "rmroute-pairs-v1"
    seed: int = 0


class TableSplits(StrictModel):
    """A score table's own split, by group (used when a run sets no ``folds``, and its offline /
    online ratio is the default ``offline_share`` of a run that does)."""

    offline: float = Field(0.4, gt=0, lt=1)
    online: float = Field(0.4, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _sums(self) -> "TableSplits":
        if self.offline + self.online >= 1:
            raise ValueError(f"offline + online must leave a test share (got {self.offline} + {self.online})")
        return self


class TableRef(StrictModel):
    """Where a score-table pool's scores come from (docs/real-rms.md): a ``rmroute-score-table/1``
    ``file`` (a path or a source: ``github:OWNER/REPO@COMMIT#PATH``, ``pypi:...#path``; ``sha256``
    pins it), or an ``adapter`` that converts published files (``params``: the adapter's)."""

    file: str | None = None
    sha256: str | None = None
    adapter: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    splits: TableSplits = Field(default_factory=TableSplits)

    @model_validator(mode="after")
    def _one_source(self) -> "TableRef":
        if (self.file is None) == (self.adapter is None):
            raise ValueError("give exactly one of `file` (a rmroute-score-table/1 file) and `adapter` (+ params)")
        if self.file is not None and self.params:
            raise ValueError("`params` belong to an `adapter`; a `file` takes none")
        return self


class PairsSplits(StrictModel):
    """How a ``pairs`` pool splits its pairs: ``given: true`` (each record's ``split`` field), or
    fractions of the groups (``rm-train``, ``offline``, ``online``, ``test``; they sum to at most 1,
    the rest is left out), dealt per domain in a seeded order; ``by: group`` keeps every pair of one
    group (the record's ``group``, else its prompt text) in one split, ``by: pair`` deals pairs."""

    given: bool = False
    rm_train: float | None = Field(None, ge=0, le=1)
    offline: float | None = Field(None, gt=0, le=1)
    online: float | None = Field(None, gt=0, le=1)
    test: float | None = Field(None, gt=0, le=1)
    by: Literal["group", "pair"] = "group"
    seed: StrictInt = 0

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:  # replaces StrictModel's: the key is spelled `rm-train`
        if not isinstance(data, dict):
            return data
        allowed = ("given", "rm-train", "offline", "online", "test", "by", "seed")
        for key in data:
            if key not in allowed:
                raise PydanticCustomError("unknown_key", "unknown key '{key}'; allowed keys: {allowed}",
                                          {"key": key, "allowed": ", ".join(allowed)})
        return {("rm_train" if k == "rm-train" else k): v for k, v in data.items()}

    @model_validator(mode="after")
    def _given_or_fractions(self) -> "PairsSplits":
        shares = {"rm-train": self.rm_train, "offline": self.offline, "online": self.online, "test": self.test}
        named = {k: v for k, v in shares.items() if v is not None}
        if self.given:
            if named:
                raise ValueError(f"given: true takes the records' own `split` field; drop {', '.join(named)}")
            return self
        missing = [k for k in ("offline", "online", "test") if k not in named]
        if missing:
            raise ValueError(f"give the fractions {', '.join(missing)} (e.g. {{offline: 0.3, online: 0.3, test: 0.4}}), "
                             "or given: true when the records carry a `split` field")
        if sum(named.values()) > 1 + 1e-9:
            raise ValueError(f"the fractions sum to {sum(named.values()):g} ({', '.join(f'{k} {v:g}' for k, v in named.items())}); "
                             "they must sum to at most 1 (the rest is left out)")
        return self

    def fractions(self) -> dict[str, float]:
        """split -> fraction, in dealing order (rm-train, offline, online, test)."""
        return {k: v for k, v in (("rm-train", self.rm_train), ("offline", self.offline), ("online", self.online),
                                  ("test", self.test)) if v}


class PairsRef(StrictModel):
    """A pool's own preference pairs: ``source`` (one spec or a list: ``file:`` a file or folder,
    ``pypi:``, ``hf:``, ``suite:``), ``splits``, ``coin_seed`` (the A/B coin of chosen/rejected
    records) and ``fields`` (the layouts' field names -> the file's)."""

    source: str | list[str]
    splits: PairsSplits
    coin_seed: StrictInt = 0
    fields: dict[str, str] = Field(default_factory=dict)

    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)


class PoolConfig(StrictModel):
    """A pool: a benchmark and RMs that score it (``benchmark``, ``train``, ``reward_models``), or a
    published score table (``table``), whose scorers are the RMs."""

    name: str
    description: str = ""
    benchmark: BenchmarkRef = Field(default_factory=BenchmarkRef)
    train: dict[str, dict[str, Any]] = Field(default_factory=dict)
    reward_models: list[PluginRef] = Field(default_factory=list)
    score_splits: list[str] = Field(default_factory=lambda: ["offline", "online", "test"])
    table: TableRef | None = None
    pairs: PairsRef | None = None

    @model_validator(mode="after")
    def _rms_or_table(self) -> "PoolConfig":
        if self.table is None and not self.reward_models:
            raise ValueError("a pool needs `reward_models` (RMs that score a benchmark) or a `table` (published scores)")
        if self.table is not None and (self.reward_models or self.train):
            raise ValueError("a `table` pool takes its RMs from the table: drop `reward_models` and `train`")
        if self.pairs is not None and (self.table is not None or "benchmark" in self.model_fields_set):
            raise ValueError("`pairs` replaces `benchmark` (and a `table` has its own items): give one of them")
        return self
    #: where each `train` entry was read ("file:line", for error messages); empty when built in code
    _train_sources: dict[str, str] = PrivateAttr(default_factory=dict)
    #: the file the config was read from (its ``table.file`` and ``pairs.source`` paths resolve relative to
    #: it, harness/paths.py); None when built in code
    _source_file: Path | None = PrivateAttr(default=None)

    @property
    def source_file(self) -> Path | None:
        """The file this pool config was read from (:func:`load_pool_config`), or None."""
        return self._source_file

    def train_source(self, name: str) -> str:
        """``file:line: train.<name>`` when the config was read from a file, else ``pool <name>: train.<name>``."""
        return f"{self._train_sources.get(name, f'pool {self.name}')}: train.{name}"


def load_pool_config(path: str | Path) -> PoolConfig:
    path, data, tree = read_yaml_mapping(path, "pool config")
    cfg = validate_model(PoolConfig, path, data, tree)
    cfg._source_file = path
    if cfg.pairs is not None:
        for i, spec in enumerate(cfg.pairs.sources()):
            if spec.startswith("file:"):  # a missing file fails here (validate), not in the middle of a run
                key = "pairs.source" + (f"[{i}]" if isinstance(cfg.pairs.source, list) else "")
                pairs_file(spec, path, f"{path}:{line_of(tree, ('pairs', 'source')) or '?'}: {key}")
    for name, params in cfg.train.items():
        where = f"{path}:{line_of(tree, ('train', name)) or '?'}"
        cfg._train_sources[name] = where
        try:
            RMTrainConfig(**{**params, "output_dir": "-"})  # where it is written is the pool's choice
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"{where}: train.{name}{'.' + key if key else ''}: {err['msg']}") from None
    for i, ref in enumerate(cfg.reward_models):
        model = str(ref.params.get("model", ""))
        if model.startswith("trained:") and "@" in model:
            if not all(model[len("trained:"):].partition("@")[::2]):
                raise ConfigError(f"{path}: reward_models[{i}].params.model: {model!r}: expected trained:<name>@<pool>")
            continue  # an RM another pool trained, by name: found in the cache when the RM is built
        if model.startswith("trained:") and model[len("trained:"):] not in cfg.train:
            raise ConfigError(
                f"{path}: reward_models[{i}].params.model: {model!r} names no entry of `train` "
                f"(defined: {', '.join(sorted(cfg.train)) or 'none'})"
            )
    return cfg


def rm_label(ref: PluginRef) -> str:
    """An RM's name in the pool: its label, else its plugin name."""
    return ref.label or ref.name


def pool_rm_names(problems: Problems, loc: tuple[Any, ...], pool_path: str) -> list[str] | None:
    """The RM names (arm order) of the pool config at ``pool_path`` (already resolved by the caller,
    :mod:`rmroute.harness.paths`; cheap: no model is built, no table is read beyond an adapter's
    params or a table file's header); None after adding a problem."""
    try:
        pool = load_pool_config(pool_path)
        if pool.table is not None:
            return table_names(pool.table, pool.source_file)
    except (ConfigError, DataError) as exc:
        problems.add(loc, f"the pool config does not load: {exc}")
        return None
    return [rm_label(ref) for ref in pool.reward_models]


# ---- score-table pools ---------------------------------------------------------------------


def table_source_resolver(config_file: Path | None):
    """``resolve(spec, sha256) -> Path`` for a table pool's file specs: ``github:`` and ``pypi:``
    specs as :func:`rmroute.harness.assets.resolve_source` reads them; a local path (plain or
    ``file:``) by the path rule of :mod:`rmroute.harness.paths`, relative to the pool config
    ``config_file`` when the file is there, else to the working directory."""

    def resolve(spec: str, sha256: str | None = None) -> Path:
        kind, sep, rest = spec.partition(":")
        if sep and kind in ("github", "pypi", "hf", "suite"):
            return resolve_source(spec, sha256)
        local = rest if sep and kind == "file" else spec
        found, tried = find_config_path(local, config_file)
        if found is None:
            raise DataError(f"{config_file or 'pool config'}: table: {not_found(local, tried)}")
        return resolve_source(str(found), sha256)

    return resolve


def table_names(ref: TableRef, config_file: Path | None = None) -> list[str]:
    """A table pool's scorer names, in column order, without reading the scores: an adapter's
    ``params.scorers[*].name``, or the names in a table file's header (``config_file``: the pool
    config, which a relative ``file`` is relative to)."""
    if ref.adapter is not None:
        scorers = ref.params.get("scorers")
        if not isinstance(scorers, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in scorers):
            raise ConfigError(f"table.params.scorers: adapter {ref.adapter!r} needs a list of scorers, each with a `name`")
        return [s["name"] for s in scorers]
    return read_header(table_source_resolver(config_file)(ref.file, ref.sha256)).names


def load_table(ref: TableRef, where: str, config_file: Path | None = None) -> ScoreTable:
    """The score table a pool's ``table`` names: a file in the generic format, or an adapter's output
    (local files relative to the pool config ``config_file``, see :func:`table_source_resolver`)."""
    resolve = table_source_resolver(config_file)
    if ref.file is not None:
        return read_table(resolve(ref.file, ref.sha256))
    from rmroute.harness.tables.adapters import load_adapter

    return load_adapter(ref.adapter, ref.params, resolve, where)


def group_split(groups: Sequence[str], domains: Sequence[str], splits: TableSplits) -> dict[str, np.ndarray]:
    """A table's own offline / online / test split: per domain, its groups (questions) are dealt in a
    seeded order, ``splits.offline`` of them to offline, ``splits.online`` to online, the rest to
    test; a group never straddles two splits (its first item's domain places it)."""
    rng = derived_rng(splits.seed, "table-splits")
    where: dict[str, str] = {}
    for gs in groups_by_domain(groups, domains).values():
        order = [gs[i] for i in rng.permutation(len(gs))]
        n_off, n_on = int(round(splits.offline * len(gs))), int(round(splits.online * len(gs)))
        for j, g in enumerate(order):
            where[g] = "offline" if j < n_off else "online" if j < n_off + n_on else "test"
    labels = np.array([where[g] for g in groups])
    return {s: np.flatnonzero(labels == s) for s in ("offline", "online", "test")}


def build_table_pool(cfg: PoolConfig, log=print) -> Pool:
    """A pool whose margins come from a score table: every item in the table's own group split
    (``table.splits``), the scorers as the RMs, their declared costs."""
    t0 = time.perf_counter()
    table = load_table(cfg.table, f"pool {cfg.name}: table", cfg.source_file)
    pairs, margins = table.to_pairs(), table.margins()
    idx = group_split([it.group for it in table.items], [it.domain for it in table.items], cfg.table.splits)
    pool = Pool(config=cfg, names=table.names, splits={s: [pairs[i] for i in ix] for s, ix in idx.items()},
                margins={s: margins[ix] for s, ix in idx.items()}, costs=table.costs, table=table)
    pool.timings["total_s"] = time.perf_counter() - t0
    log(f"[pool] {cfg.name}: score table {table.name!r}, {len(pairs)} items, {len(table.names)} scorers")
    return pool


# ---- own-pairs pools --------------------------------------------------------------------------

#: the data files a ``file:`` folder source reads (sorted by name, not recursive)
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def pairs_file(spec: str, config_path: Path | None, where: str) -> Path:
    """The file or folder a ``file:<path>`` pairs source names, by the one path rule
    (:mod:`rmroute.harness.paths`: absolute; else the pool config's folder; else the working
    directory); an error naming ``where`` and every path tried."""
    raw = spec[len("file:"):]
    found, tried = find_config_path(raw, config_path, "any")
    if found is None:
        raise ConfigError(f"{where}: {not_found(raw, tried, 'any')}")
    return found


def load_pairs(cfg: PoolConfig) -> list[PreferencePair]:
    """Every pair of ``cfg.pairs.source`` (in order; a folder: its data files by name), with the
    A/B coin of ``coin_seed`` and the field mapping applied; ids must be unique across files."""
    ref, where = cfg.pairs, f"{cfg.source_file or f'pool {cfg.name}'}: pairs.source"
    pairs: list[PreferencePair] = []
    for spec in ref.sources():
        if spec.startswith("file:"):
            path = pairs_file(spec, cfg.source_file, where)
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES) if path.is_dir() else [path]
            if not files:
                raise ConfigError(f"{where}: folder {path} holds no data file ({', '.join(DATA_SUFFIXES)})")
            for f in files:
                pairs.extend(load_source(f"file:{f}", coin_seed=ref.coin_seed, fields=ref.fields or None))
        else:
            pairs.extend(load_source(spec, coin_seed=ref.coin_seed, fields=ref.fields or None))
    seen: set[str] = set()
    for p in pairs:
        if p.id in seen:
            raise DataError(f"{where}: pair id {p.id!r} occurs twice across the sources; give each record a unique `id`")
        seen.add(p.id)
    return pairs


def unit_of(pair: PreferencePair, by: str) -> str:
    """What a split deals: the pair's group (its ``group`` field, else its prompt text) or the pair."""
    if by == "pair":
        return pair.id
    return str(pair.metadata.get("group", pair.prompt))


def deal_pairs(pairs: Sequence[PreferencePair], spec: PairsSplits) -> dict[str, list[PreferencePair]]:
    """Split ``pairs`` by the fractions of ``spec``: per domain (a unit's first pair places it), the
    units are ordered by sha256(f"{seed}:{unit}") and dealt in blocks of round(cumulative fraction ×
    units): rm-train, offline, online, test; the rest is left out. Every pair of one unit lands in
    one split. The order depends only on the seed and the unit keys (not on the file's order)."""
    fractions = spec.fractions()
    where: dict[str, str | None] = {}
    for grouped in groups_by_domain([unit_of(p, spec.by) for p in pairs], [p.domain for p in pairs]).values():
        units = sorted(grouped, key=lambda u: hashlib.sha256(f"{spec.seed}:{u}".encode("utf-8")).hexdigest())
        bounds, total = [], 0.0
        for split, f in fractions.items():
            total += f
            bounds.append((int(round(total * len(units))), split))
        for j, u in enumerate(units):
            where[u] = next((split for end, split in bounds if j < end), None)
    out: dict[str, list[PreferencePair]] = {s: [] for s in PAIR_SPLITS}
    for p in pairs:
        split = where[unit_of(p, spec.by)]
        if split is not None:
            out[split].append(p)
    return out


def given_splits(pairs: Sequence[PreferencePair], where: str) -> dict[str, list[PreferencePair]]:
    """Each pair in the split its record's ``split`` field names; a pair without one is an error."""
    out: dict[str, list[PreferencePair]] = {s: [] for s in PAIR_SPLITS}
    for p in pairs:
        split = p.metadata.get("split")
        if split is None:
            raise DataError(f"{where}: given: true, but pair {p.id!r} has no `split` field "
                            f"(one of {', '.join(PAIR_SPLITS)} per record)")
        out[split].append(p)
    return out


def pairs_splits(cfg: PoolConfig) -> dict[str, list[PreferencePair]]:
    """The pool's rm-train / offline / online / test pairs from ``cfg.pairs``: loaded, split, and
    with ``metadata["item"]`` set to each pair's unit, so that replay's folds and bootstrap keep a
    group together too. An empty offline, online or test split is an error."""
    where = f"{cfg.source_file or f'pool {cfg.name}'}: pairs.splits"
    pairs = load_pairs(cfg)
    spec = cfg.pairs.splits
    raw = given_splits(pairs, where) if spec.given else deal_pairs(pairs, spec)
    splits = {s: [dataclasses.replace(p, metadata={**p.metadata, "item": unit_of(p, spec.by)}) for p in ps]
              for s, ps in raw.items()}
    empty = [s for s in ("offline", "online", "test") if not splits[s]]
    if empty:
        counts = ", ".join(f"{s} {len(ps)}" for s, ps in splits.items())
        raise DataError(f"{where}: the {', '.join(empty)} split(s) are empty ({len(pairs)} pairs: {counts}); "
                        "a replay needs pairs in offline, online and test")
    return splits


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def pairs_sha(pairs: list[PreferencePair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.id, p.domain, p.prompt, p.response_a, p.response_b, p.label], ensure_ascii=False).encode())
    return h.hexdigest()


@dataclass
class Pool:
    """A built pool: the benchmark splits, the RM names and each split's (N, K) margins."""

    config: PoolConfig
    names: list[str]
    splits: dict[str, list[PreferencePair]]
    margins: dict[str, np.ndarray] = field(default_factory=dict)
    costs: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    score_reports: list[Any] = field(default_factory=list)
    table: ScoreTable | None = None  # the score table, for a table pool

    @property
    def data_name(self) -> str:
        """What the pool's pairs are, for run files: ``<suite>@seed<seed>``, ``table:<name>`` or
        ``pairs:<pool name>``."""
        if self.table is not None:
            return f"table:{self.table.name}"
        if self.config.pairs is not None:
            return f"pairs:{self.config.name}"
        return f"{self.config.benchmark.suite}@seed{self.config.benchmark.seed}"

    def gold(self, split: str) -> np.ndarray:
        return np.array([p.gold_sign for p in self.splits[split]])

    def domains(self, split: str) -> list[str]:
        return [p.domain for p in self.splits[split]]

    def kinds(self, split: str) -> list[str]:
        return [f"{p.domain}/{p.metadata.get('kind', '-')}" for p in self.splits[split]]

    def abstention_rates(self) -> dict[str, dict[str, float]]:
        """Per RM and scored split: the share of pairs whose margin is NaN (either response abstained)."""
        return {name: {s: float(np.isnan(m[:, k]).mean()) if m.shape[0] else 0.0 for s, m in self.margins.items()}
                for k, name in enumerate(self.names)}


def check_abstention(rates: dict[str, dict[str, float]], max_share: float | None = None,
                     margin: float = 0.1, reference: str = "offline") -> list[str]:
    """Problems (empty when none): an RM whose NaN share on a split exceeds ``max_share`` or, when that
    is None, exceeds its share on the ``reference`` split + ``margin``, or covers every pair.

    A per-item abstention is normal (a math verifier on a chat pair); an RM that abstains on far more
    of the stream than of the offline split, or on everything, is broken, and its routers' numbers
    would be wrong while looking right."""
    problems = []
    for name, by_split in rates.items():
        ref = by_split.get(reference)
        for split, rate in by_split.items():
            if max_share is not None:
                bad, why = rate > max_share, f"more than max_abstention {max_share:.2f}"
            elif rate >= 1.0:
                bad, why = True, "every pair"
            else:
                bad = ref is not None and rate > ref + margin
                why = f"more than its {reference} share {ref:.1%} + margin {margin:.2f}" if ref is not None else ""
            if bad:
                problems.append(f"RM {name!r} abstains on {rate:.1%} of the {split} split ({why})")
    return problems


def trained_dir(cfg: PoolConfig, name: str, data_sha: str) -> Path:
    """The folder training ``cfg.train[name]`` on rm-train data with sha ``data_sha`` produces."""
    return cache_root() / "rms" / cfg.name / f"{name}-{_sha([cfg.train[name], data_sha])}"


def trained_dirs(cfg: PoolConfig, rm_train: list[PreferencePair]) -> dict[str, Path]:
    """``name -> folder`` for every ``train`` entry: where ``model: trained:<name>`` points."""
    data_sha = pairs_sha(rm_train)
    return {name: trained_dir(cfg, name, data_sha) for name in cfg.train}


def train_missing(cfg: PoolConfig, rm_train: list[PreferencePair], log=print) -> dict[str, Any]:
    """Train every `train` entry whose folder does not exist yet; returns {name: report or 'cached'}."""
    reports: dict[str, Any] = {}
    for name, out in trained_dirs(cfg, rm_train).items():
        params = cfg.train[name]
        train_cfg = RMTrainConfig(**{**params, "output_dir": str(out)})
        cached = (out / "rmroute_train.json").is_file()
        log(f"[pool] {name}: " + (f"trained RM cached at {out}" if cached else f"training -> {out}"))
        try:
            reports[name] = train_reward_model(train_cfg, rm_train, reuse=True).to_dict()
        except NotLearnedError as exc:
            raise NotLearnedError(exc.output_dir, exc.problems, where=f"{cfg.train_source(name)}: RM {name!r}") from None
    return reports


#: a trained RM's folder under $RMROUTE_CACHE/rms/<pool>/: ``<name>-<12 hex digits of config + data>``
_TRAINED_FOLDER = re.compile(r"^(?P<name>.+)-(?P<key>[0-9a-f]{12})$")


@dataclass
class TrainedRM:
    """One RM a pool build trained into the cache (``$RMROUTE_CACHE/rms/<pool>/<name>-<hash>/``), with
    its training summary from ``rmroute_train.json`` (None where the record lacks it)."""

    pool: str
    name: str
    folder: Path
    when: float  # mtime of its rmroute_train.json (when training finished), seconds since the epoch
    steps: int | None = None
    final_loss: float | None = None  # the last logged training loss
    val_accuracy: float | None = None  # the best validation pairwise accuracy
    problem: str | None = None  # why the record could not be read, when it could not


def _trained_rm(pool: str, name: str, folder: Path) -> TrainedRM:
    record = folder / TRAIN_RECORD
    rm = TrainedRM(pool=pool, name=name, folder=folder, when=record.stat().st_mtime)
    try:
        report = json.loads(record.read_text(encoding="utf-8")).get("report") or {}
        rm.steps = report.get("steps")
        losses = report.get("train_loss") or []
        rm.final_loss = float(losses[-1][1]) if losses else None
        rm.val_accuracy = report.get("best_val_accuracy")
    except (OSError, ValueError, TypeError, IndexError, AttributeError) as exc:
        rm.problem = f"{record}: unreadable training record ({type(exc).__name__}: {exc})"
    return rm


def list_trained(root: Path | None = None) -> list[TrainedRM]:
    """Every RM trained into the cache ``root`` (default :func:`rmroute.harness.assets.cache_root`):
    the folders ``rms/<pool>/<name>-<hash>/`` that hold a ``rmroute_train.json``, sorted by pool,
    name, then newest first."""
    base = (cache_root() if root is None else Path(root)) / "rms"
    out = []
    for pool_dir in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        for folder in pool_dir.iterdir():
            m = _TRAINED_FOLDER.match(folder.name)
            if m and (folder / TRAIN_RECORD).is_file():
                out.append(_trained_rm(pool_dir.name, m["name"], folder))
    return sorted(out, key=lambda r: (r.pool, r.name, -r.when))


def trained_by_name(name: str, pool: str, root: Path | None = None) -> Path:
    """The newest folder (by the time its training finished) that pool ``pool`` trained RM ``name``
    into, under the cache ``root`` (``model: trained:<name>@<pool>``); a :class:`ConfigError`
    listing what the cache holds when there is none."""
    trained = list_trained(root)
    mine = [r for r in trained if r.pool == pool and r.name == name]
    if mine:
        return mine[0].folder
    base = (cache_root() if root is None else Path(root)) / "rms"
    have = ", ".join(dict.fromkeys(f"{r.name}@{r.pool}" for r in trained)) or "none"
    raise ConfigError(f"trained:{name}@{pool}: no RM {name!r} trained by pool {pool!r} under {base} "
                      f"(trained RMs there: {have}; `rmroute pool build` of that pool trains it, "
                      "`rmroute rm list` lists them)")


def build_reward_model(ref: PluginRef, trained: Mapping[str, Path] | None = None) -> Any:
    """The RM a config ref names (constructors do not load models), named by the ref's label when it
    has one (reports and arm names use it). ``params.model: trained:<name>`` becomes the folder
    ``trained[name]`` (see :func:`trained_dirs`) when ``trained`` is given; ``trained:<name>@<pool>``
    becomes the newest folder pool ``<pool>`` trained RM ``<name>`` into (:func:`trained_by_name`)."""
    model = str(ref.params.get("model", ""))
    if model.startswith("trained:") and "@" in model:
        name, _, pool = model[len("trained:"):].partition("@")
        try:
            folder = trained_by_name(name, pool)
        except ConfigError as exc:
            raise ConfigError(f"RM {rm_label(ref)!r}: {exc}") from None
        ref = ref.model_copy(update={"params": {**ref.params, "model": str(folder)}})
    elif trained is not None and model.startswith("trained:"):
        name = model[len("trained:"):]
        if name not in trained:
            raise ConfigError(f"RM {rm_label(ref)!r}: {model!r} names no `train` entry (defined: {', '.join(sorted(trained)) or 'none'})")
        ref = ref.model_copy(update={"params": {**ref.params, "model": str(trained[name])}})
    rm = create_ref("reward_model", ref, f"RM {rm_label(ref)!r}")
    if ref.label:
        rm.name = ref.label
    return rm


def build_reward_models(refs: Sequence[PluginRef], trained: Mapping[str, Path] | None = None) -> list[Any]:
    """:func:`build_reward_model` of every ref, in order (the arm order)."""
    return [build_reward_model(ref, trained) for ref in refs]


def build_pool(cfg: PoolConfig, cache_dir: Path | None = None, show_progress: bool = True, log=print) -> Pool:
    """Build the pool: the benchmark's splits, its ``train`` RMs (trained when missing), every RM's
    margins on ``score_splits`` (through the score cache), with timings and reports; or, for a
    ``table`` pool, the table's items and margins (:func:`build_table_pool`)."""
    if cfg.table is not None:
        return build_table_pool(cfg, log)
    if cfg.pairs is not None:
        return build_pairs_pool(cfg, cache_dir, show_progress, log)
    t0 = time.perf_counter()
    splits = create_benchmark(cfg.benchmark.suite, cfg.benchmark.seed).splits()
    return score_pool(cfg, splits, t0, cache_dir, show_progress, log)


def build_pairs_pool(cfg: PoolConfig, cache_dir: Path | None = None, show_progress: bool = True, log=print) -> Pool:
    """A pool over the config's own pairs (``cfg.pairs``: :func:`pairs_splits`), scored by its RMs
    through the score cache like a benchmark; ``train`` entries train on the rm-train pairs."""
    t0 = time.perf_counter()
    splits = pairs_splits(cfg)
    if cfg.train and not splits["rm-train"]:
        raise ConfigError(f"{cfg.source_file or f'pool {cfg.name}'}: train: {', '.join(cfg.train)} need rm-train pairs; "
                          "give pairs.splits a `rm-train` fraction, or records with split: rm-train")
    log(f"[pool] {cfg.name}: {sum(map(len, splits.values()))} own pairs ("
        + ", ".join(f"{s} {len(ps)}" for s, ps in splits.items()) + ")")
    return score_pool(cfg, splits, t0, cache_dir, show_progress, log)


def score_pool(cfg: PoolConfig, splits: dict[str, list[PreferencePair]], t0: float, cache_dir: Path | None,
               show_progress: bool, log) -> Pool:
    """Train the missing ``train`` RMs on ``splits["rm-train"]``, then score ``cfg.score_splits``
    of ``splits`` under every RM through the score cache (``t0``: when the build started)."""
    pool = Pool(config=cfg, names=[rm_label(r) for r in cfg.reward_models], splits=splits)
    pool.timings["benchmark_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    train_missing(cfg, splits["rm-train"], log)
    pool.timings["train_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    rms = build_reward_models(cfg.reward_models, trained_dirs(cfg, splits["rm-train"]))
    pool.costs = [float(getattr(rm, "cost", 1.0)) for rm in rms]
    cache = ScoreCache(cache_dir)
    for split in cfg.score_splits:
        if split not in splits:
            raise ConfigError(f"pool {cfg.name}: score_splits names {split!r}, which the benchmark lacks ({', '.join(splits)})")
        a, b, reports = score_pairs(cache, rms, splits[split], show_progress=show_progress)
        pool.margins[split] = a - b
        pool.score_reports.extend(reports)
    pool.timings["score_s"] = time.perf_counter() - t2
    pool.timings["total_s"] = time.perf_counter() - t0
    return pool
