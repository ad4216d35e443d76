"""Score tables: a published items × scorers matrix as an RM pool (docs/real-rms.md).

A score table holds, for preference pairs (items), what each scorer said about them: a scalar
reward model's score of each response, or a pairwise judge's verdict in each presentation order.
Replaying routers over such a table needs no model: the margins are in the file.

The file format, ``rmroute-score-table/1``, is JSON Lines. Line 1 is the header::

    {"format": "rmroute-score-table/1", "name": "my-table", "description": "...",
     "source": "where the scores come from", "licence": "...",
     "scorers": [{"name": "rm-7b", "kind": "scalar", "cost": 7.0, "cost_note": "7B parameters"},
                 {"name": "judge", "kind": "verdict", "cost": 70.0}]}

Every other line is one item::

    {"id": "q1-0", "group": "q1", "domain": "math", "prompt": "...",
     "response_a": "...", "response_b": "...", "gold": "a",
     "scores": {"rm-7b": {"a": 1.5, "b": -0.25}, "judge": {"ab": "a", "ba": "tie"}},
     "metadata": {"source": "..."}}

- ``id`` (unique; a string, or an integer read as its decimal string), ``prompt`` and ``gold`` (``"a"`` or ``"b"``: which response is better) are
  required; ``group`` (default: the id) keeps the items of one question together when the data is
  split; ``domain`` defaults to ``"default"``; ``response_a`` / ``response_b`` are optional (tables
  published without the responses give prompt-only contexts); ``metadata`` is any mapping.
- A ``scalar`` scorer gives ``{"a": score of response_a, "b": score of response_b}``; its margin is
  a − b.
- A ``verdict`` scorer gives the response it preferred (``"a"``, ``"b"`` or ``"tie"``) when shown
  the pair in the order (a, b) (``"ab"``) and in the order (b, a) (``"ba"``); either may be missing.
  Its margin is the sign of the sum of the two votes (+1 for a, −1 for b, 0 for a tie): both orders
  agree or one is a tie → that side; they disagree → 0 (a tie).
- A scorer absent from an item's ``scores``, ``null`` values, or a verdict with neither order, is
  an abstention (margin NaN): routers fall back to another scorer, and it counts as no decision.

In memory a table is a :class:`ScoreTable`: the items and a (N, K, 2) array ``values`` holding, per
item and scorer, (score of a, score of b) for a scalar scorer and (verdict in order ab, verdict in
order ba) for a verdict scorer, a verdict encoded +1 (a), −1 (b), 0 (tie), NaN (none).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rmroute.harness.assets import DataError, iter_jsonl
from rmroute.harness.core.types import PreferencePair

FORMAT = "rmroute-score-table/1"
KINDS = ("scalar", "verdict")
#: a verdict in the file -> its vote (+1: response a preferred, -1: b, 0: tie)
VERDICTS = {"a": 1.0, "b": -1.0, "tie": 0.0}
ITEM_FIELDS = ("id", "group", "domain", "prompt", "response_a", "response_b", "gold", "scores", "metadata")
HEADER_FIELDS = ("format", "name", "description", "source", "licence", "scorers")
SCORER_FIELDS = ("name", "kind", "cost", "cost_note")


@dataclass(frozen=True)
class Scorer:
    """One column of the table: an RM (``scalar``) or a pairwise judge (``verdict``) and its cost per
    call (the unit is the table's to state: the shipped tables use billions of parameters)."""

    name: str
    kind: str
    cost: float = 1.0
    cost_note: str = ""


@dataclass
class TableItem:
    """One preference pair of the table (``gold``: ``"a"`` or ``"b"``)."""

    id: str
    prompt: str
    gold: str
    group: str = ""
    domain: str = "default"
    response_a: str | None = None
    response_b: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.group = self.group or self.id


@dataclass
class ScoreTable:
    """Items × scorers: ``values[i, k]`` = (score of a, score of b) or (verdict ab, verdict ba)."""

    name: str
    scorers: list[Scorer]
    items: list[TableItem]
    values: np.ndarray  # (N, K, 2) float, NaN = absent
    description: str = ""
    source: str = ""
    licence: str = ""

    def __post_init__(self) -> None:
        n, k = len(self.items), len(self.scorers)
        if self.values.shape != (n, k, 2):
            raise ValueError(f"score table {self.name}: values have shape {self.values.shape}, expected ({n}, {k}, 2)")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scorers]

    @property
    def costs(self) -> list[float]:
        return [float(s.cost) for s in self.scorers]

    def margins(self) -> np.ndarray:
        """(N, K) margins, + when the scorer prefers response a, NaN when it abstained."""
        return np.stack([scorer_margins(s.kind, self.values[:, k]) for k, s in enumerate(self.scorers)], axis=1) \
            if self.scorers else np.zeros((len(self.items), 0))

    def gold_signs(self) -> np.ndarray:
        return np.array([1 if it.gold == "a" else -1 for it in self.items])

    def to_pairs(self) -> list[PreferencePair]:
        """The items as preference pairs (missing responses are empty strings; the group is
        ``metadata["item"]``, the key replay splits and bootstraps by)."""
        return [PreferencePair(id=it.id, domain=it.domain, prompt=it.prompt, response_a=it.response_a or "",
                               response_b=it.response_b or "", label=it.gold,
                               metadata={**it.metadata, "item": it.group}) for it in self.items]


def scorer_margins(kind: str, values: np.ndarray) -> np.ndarray:
    """(N,) margins from (N, 2) values: ``scalar``: a − b (NaN when either is missing);
    ``verdict``: sign(vote ab + vote ba) over the orders present (NaN when neither is)."""
    first, second = values[:, 0], values[:, 1]
    if kind == "scalar":
        return first - second
    if kind == "verdict":
        both_missing = np.isnan(first) & np.isnan(second)
        return np.where(both_missing, np.nan, np.sign(np.nan_to_num(first) + np.nan_to_num(second)))
    raise ValueError(f"unknown scorer kind {kind!r} (expected one of {', '.join(KINDS)})")


def build_table(name: str, scorers: Sequence[Scorer], items: Sequence[TableItem],
                scores: Mapping[str, Mapping[str, tuple[float | None, float | None]]], **header: str) -> ScoreTable:
    """A table from ``scores[scorer][item id] = (first, second)`` (see :class:`ScoreTable`; None or
    NaN or an absent id = abstained). Adapters build their tables through this."""
    index = {it.id: i for i, it in enumerate(items)}
    if len(index) != len(items):
        dup = next(i for i in (it.id for it in items) if sum(x.id == i for x in items) > 1)
        raise DataError(f"score table {name}: item id {dup!r} appears more than once")
    values = np.full((len(items), len(scorers), 2), np.nan)
    for k, s in enumerate(scorers):
        for item_id, pair in scores.get(s.name, {}).items():
            if item_id not in index:
                raise DataError(f"score table {name}: scorer {s.name!r} scores item {item_id!r}, which the table lacks")
            values[index[item_id], k] = [np.nan if v is None else float(v) for v in pair]
    return ScoreTable(name=name, scorers=list(scorers), items=list(items), values=values, **header)


# ---- reading and writing the file format ------------------------------------------------------


def _fields(where: str, rec: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    extra = sorted(set(rec) - set(allowed))
    if extra:
        raise DataError(f"{where}: unknown field {extra[0]!r} in {what} (allowed: {', '.join(allowed)})")


def _number(where: str, value: Any, key: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: field {key}: expected a number or null, got {value!r}")
    return float(value)


def _string(where: str, rec: Mapping[str, Any], key: str, default: str | None = None) -> str:
    if key not in rec or rec[key] is None:
        if default is None:
            raise DataError(f"{where}: missing field {key!r} (fields present: {', '.join(sorted(rec)) or 'none'})")
        return default
    if key in ("id", "group") and isinstance(rec[key], int) and not isinstance(rec[key], bool):
        return str(rec[key])  # numeric ids are common in published files; they are keys, not numbers
    if not isinstance(rec[key], str):
        raise DataError(f"{where}: field {key!r}: expected a string, got {type(rec[key]).__name__}")
    return rec[key]


def _header(where: str, rec: Mapping[str, Any]) -> tuple[dict[str, str], list[Scorer]]:
    if rec.get("format") != FORMAT:
        raise DataError(f"{where}: the first line must be the header with \"format\": \"{FORMAT}\" "
                        f"(got format {rec.get('format')!r})")
    _fields(where, rec, HEADER_FIELDS, "the header")
    raw = rec.get("scorers")
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: field 'scorers': expected a non-empty list of {{name, kind, cost}}")
    scorers: list[Scorer] = []
    for j, s in enumerate(raw):
        at = f"{where}: scorers[{j}]"
        if not isinstance(s, dict):
            raise DataError(f"{at}: expected an object {{name, kind, cost}}, got {s!r}")
        _fields(at, s, SCORER_FIELDS, "a scorer")
        kind = _string(at, s, "kind")
        if kind not in KINDS:
            raise DataError(f"{at}: field 'kind': expected one of {', '.join(KINDS)}, got {kind!r}")
        cost = _number(at, s.get("cost", 1.0), "cost")
        if not cost >= 0:
            raise DataError(f"{at}: field 'cost': expected a number >= 0, got {s.get('cost')!r}")
        scorers.append(Scorer(_string(at, s, "name"), kind, cost, _string(at, s, "cost_note", "")))
    names = [s.name for s in scorers]
    dup = [n for n in names if names.count(n) > 1]
    if dup:
        raise DataError(f"{where}: scorer {dup[0]!r} is declared twice")
    header = {k: _string(where, rec, k, "") for k in ("description", "source", "licence")}
    return {"name": _string(where, rec, "name"), **header}, scorers


def _vote(where: str, value: Any, key: str) -> float:
    if value is None:
        return math.nan
    if value not in VERDICTS:
        raise DataError(f"{where}: field {key}: expected \"a\", \"b\", \"tie\" or null, got {value!r}")
    return VERDICTS[value]


def _scores(where: str, raw: Any, scorers: dict[str, Scorer]) -> dict[str, tuple[float, float]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DataError(f"{where}: field 'scores': expected an object scorer -> values, got {type(raw).__name__}")
    out = {}
    for name, value in raw.items():
        if name not in scorers:
            raise DataError(f"{where}: field scores.{name}: unknown scorer {name!r} "
                            f"(the header declares: {', '.join(scorers)})")
        if value is None:
            continue
        keys = ("a", "b") if scorers[name].kind == "scalar" else ("ab", "ba")
        if not isinstance(value, dict):
            raise DataError(f"{where}: field scores.{name}: expected an object with {' and '.join(keys)}, got {value!r}")
        _fields(where, value, keys, f"scores.{name} ({scorers[name].kind} scorer)")
        read = _number if scorers[name].kind == "scalar" else _vote
        out[name] = tuple(read(where, value.get(k), f"scores.{name}.{k}") for k in keys)
    return out


@dataclass
class TableHeader:
    """A table file's first line: its name and scorers (read without the items)."""

    name: str
    scorers: list[Scorer]
    description: str = ""
    source: str = ""
    licence: str = ""

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scorers]


def read_header(path: str | Path) -> TableHeader:
    """The header of a ``rmroute-score-table/1`` file (the scorers' names, kinds and costs), cheaply."""
    path = Path(path)
    for where, rec in iter_jsonl(path):
        header, scorers = _header(where, rec)
        return TableHeader(scorers=scorers, **header)
    raise DataError(f"{path}: empty file; expected a {FORMAT} header line and items")


def read_table(path: str | Path) -> ScoreTable:
    """Read a ``rmroute-score-table/1`` file; every error names the file, line and field."""
    path = Path(path)
    records = iter_jsonl(path)
    try:
        where, rec = next(records)
    except StopIteration:
        raise DataError(f"{path}: empty file; expected a {FORMAT} header line and items") from None
    header, scorers = _header(where, rec)
    by_name = {s.name: s for s in scorers}
    items: list[TableItem] = []
    scores: dict[str, dict[str, tuple[float, float]]] = {s.name: {} for s in scorers}
    seen: dict[str, str] = {}
    for where, rec in records:
        _fields(where, rec, ITEM_FIELDS, "an item")
        item_id = _string(where, rec, "id")
        if item_id in seen:
            raise DataError(f"{where}: field 'id': {item_id!r} was already used at {seen[item_id]}")
        seen[item_id] = where
        gold = _string(where, rec, "gold")
        if gold not in ("a", "b"):
            raise DataError(f"{where}: field 'gold': expected \"a\" or \"b\", got {gold!r}")
        meta = rec.get("metadata") or {}
        if not isinstance(meta, dict):
            raise DataError(f"{where}: field 'metadata': expected an object, got {type(meta).__name__}")
        responses = {k: (_string(where, rec, k) if rec.get(k) is not None else None) for k in ("response_a", "response_b")}
        items.append(TableItem(id=item_id, prompt=_string(where, rec, "prompt"), gold=gold,
                               group=_string(where, rec, "group", item_id), domain=_string(where, rec, "domain", "default"),
                               metadata=dict(meta), **responses))
        for name, pair in _scores(where, rec.get("scores"), by_name).items():
            scores[name][item_id] = pair
    if not items:
        raise DataError(f"{path}: the header declares the scorers but no item follows")
    return build_table(header.pop("name"), scorers, items, scores, **header)


def _verdict(v: float) -> str | None:
    if np.isnan(v):
        return None
    return {1.0: "a", -1.0: "b", 0.0: "tie"}[float(v)]


def table_lines(table: ScoreTable) -> Iterable[str]:
    """The table as ``rmroute-score-table/1`` lines (header first)."""
    header = {"format": FORMAT, "name": table.name, "description": table.description, "source": table.source,
              "licence": table.licence,
              "scorers": [{"name": s.name, "kind": s.kind, "cost": s.cost, **({"cost_note": s.cost_note} if s.cost_note else {})}
                          for s in table.scorers]}
    yield json.dumps(header, ensure_ascii=False)
    for i, it in enumerate(table.items):
        scores: dict[str, Any] = {}
        for k, s in enumerate(table.scorers):
            first, second = table.values[i, k]
            if np.isnan(first) and np.isnan(second):
                continue
            if s.kind == "scalar":
                scores[s.name] = {"a": None if np.isnan(first) else float(first), "b": None if np.isnan(second) else float(second)}
            else:
                scores[s.name] = {"ab": _verdict(first), "ba": _verdict(second)}
        rec: dict[str, Any] = {"id": it.id, "group": it.group, "domain": it.domain, "prompt": it.prompt}
        rec.update({k: getattr(it, k) for k in ("response_a", "response_b") if getattr(it, k) is not None})
        rec.update({"gold": it.gold, "scores": scores})
        if it.metadata:
            rec["metadata"] = it.metadata
        yield json.dumps(rec, ensure_ascii=False)


def write_table(table: ScoreTable, path: str | Path) -> Path:
    """Write the table in the file format (atomically)."""
    from rmroute.harness.results import atomic_write_text

    path = Path(path)
    atomic_write_text(path, "\n".join(table_lines(table)) + "\n")
    return path
