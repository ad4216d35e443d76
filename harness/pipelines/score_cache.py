"""The score cache: every (RM, prompt, response) is scored once, on disk, resumably.

Store: a folder of parquet part files. Each row is one score, keyed by
``sha256(RM identity, prompt, response[, RM key_extra(prompt)])``; the identity carries the model
revision or file hash, so a changed model invalidates only its own rows. A run scores in chunks and
writes each chunk as a new part file (temp file + rename), so a killed run loses at most the chunk in
flight and the next run resumes from the parts on disk. Each part has a ``.sha256`` sidecar written
before the part appears; a part that does not match it, or cannot be read, is moved to ``corrupt/``
with a warning naming it, and its items are scored again.

Two kinds of failure, kept apart:

- **an abstention** is one item's business: the RM returned NaN/inf for it, or raised on that item
  while other items of the same chunk scored (the failing item is isolated by scoring one by one).
  It is cached as NaN with the error and counted in the report.
- **a broken RM** is everyone's: a transport error (connection, timeout, OS error, the remote RM's
  errors), an RM that cannot load, or every item of a chunk of two or more raising. Nothing of that
  chunk is cached and :class:`rmroute.harness.core.errors.ScoreError` names the RM and the error;
  :func:`score_pairs` scores the other RMs first, then raises (or reports, for ``rmroute score``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rmroute.harness.assets import cache_root, file_sha256
from rmroute.harness.core.errors import RmrouteError, ScoreError
from rmroute.harness.determinism import fixed_threads
from rmroute.harness.progress import RateColumn
from rmroute.harness.results import atomic_write_text

def default_cache_dir() -> Path:
    """``<cache root>/scores`` (see :func:`rmroute.harness.assets.cache_root`)."""
    return cache_root() / "scores"


def rm_identity(rm: Any) -> str:
    ident = getattr(rm, "identity", None)
    return str(ident() if callable(ident) else ident or f"{type(rm).__module__}.{type(rm).__qualname__}:{rm.name}")


def score_key(identity: str, prompt: str, response: str, extra: str = "") -> str:
    h = hashlib.sha256()
    for part in (identity, prompt, response, extra):
        data = part.encode("utf-8", "surrogatepass")  # a lone surrogate is one bad item, not a crash
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguity between fields
        h.update(data)
    return h.hexdigest()


@dataclass
class ScoreReport:
    rm: str
    total: int
    cached: int
    scored: int = 0
    abstained: int = 0
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    truncated: int = 0  # inputs the RM cut to its max_length (RMs that count them)
    failed: str | None = None  # the RM (or its transport) is broken: why; its scores are all NaN
    nan: int = 0  # items whose score is NaN, cached ones included

    @property
    def abstention_rate(self) -> float:
        """Share of the items that are NaN (abstained or failed), over all ``total`` items."""
        return 1.0 if self.failed else (self.nan / self.total if self.total else 0.0)


#: exceptions that mean the RM or its transport is broken, whatever the item
BROKEN = (ConnectionError, TimeoutError, OSError, RmrouteError)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".encode("utf-8", "backslashreplace").decode("utf-8")


class ScoreCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._table: dict[str, tuple[float, str | None]] = {}
        self._loaded: set[str] = set()

    # ---- reading ------------------------------------------------------------------------------
    def _refresh(self) -> None:
        import pyarrow.parquet as pq

        for path in sorted(self.root.glob("part-*.parquet")):
            if path.name in self._loaded:
                continue
            try:
                _check_part(path)
                table = pq.read_table(path, columns=["key", "score", "error"]).to_pydict()
            except Exception as exc:  # noqa: BLE001 - any unreadable part is set aside and rescored
                self._set_aside(path, _error_text(exc))
                continue
            for k, s, e in zip(table["key"], table["score"], table["error"]):
                self._table[k] = (np.nan if s is None else float(s), e)
            self._loaded.add(path.name)

    def _set_aside(self, path: Path, why: str) -> None:
        """Move a corrupt part (and its sidecar) to ``corrupt/``, with a warning naming it."""
        dest = self.root / "corrupt"
        dest.mkdir(exist_ok=True)
        for p in (path, _sidecar(path)):
            if p.exists():
                os.replace(p, dest / p.name)
        warnings.warn(f"score cache: {path} is corrupt ({why}); moved to {dest}/, its items will be scored again",
                      CacheWarning, stacklevel=3)

    def __len__(self) -> int:
        self._refresh()
        return len(self._table)

    def get(self, key: str) -> tuple[float, str | None] | None:
        return self._table.get(key)

    # ---- writing ------------------------------------------------------------------------------
    def _write_part(self, rows: list[tuple[str, str, str, float, str | None]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = list(zip(*rows))
        table = pa.table({
            "key": pa.array(cols[0], pa.string()), "rm": pa.array(cols[1], pa.string()),
            "identity": pa.array(cols[2], pa.string()),
            "score": pa.array([None if not np.isfinite(s) else float(s) for s in cols[3]], pa.float64()),
            "error": pa.array(cols[4], pa.string()),
        })
        name = f"part-{time.time_ns()}-{secrets.token_hex(4)}.parquet"
        tmp = self.root / f".{name}.tmp"
        pq.write_table(table, tmp)
        _write_sidecar(self.root / name, tmp)  # the checksum exists before the part appears
        os.replace(tmp, self.root / name)
        self._loaded.add(name)
        for k, _, _, s, e in rows:
            self._table[k] = (s, e)

    def _score_chunk(self, rm: Any, prompts: list[str], responses: list[str]) -> list[tuple[float, str | None]]:
        """Score a chunk; if the batch raises, score item by item to isolate the failing items.

        Raises :class:`ScoreError` when the RM is broken (see the module docstring)."""
        try:
            values = np.asarray(rm.score(prompts, responses), dtype=np.float64)
            if values.shape != (len(prompts),):
                raise ValueError(f"score returned shape {values.shape} for {len(prompts)} items")
            return [_checked(v) for v in values]
        except BROKEN as exc:
            raise ScoreError(f"RM {rm.name!r} is broken: {_error_text(exc)}") from exc
        except Exception as batch_exc:  # noqa: BLE001 - one bad item must not lose the chunk
            if len(prompts) == 1:
                return [(np.nan, _error_text(batch_exc))]
            out = []
            for p, r in zip(prompts, responses):
                out.extend(self._score_chunk(rm, [p], [r]))
            if all(e is not None and not e.startswith(_NAN_NOTES) for _, e in out):
                raise ScoreError(f"RM {rm.name!r} raised on every one of {len(out)} items of a chunk, "
                                 f"so it is broken, not abstaining: {out[0][1]}") from batch_exc
            return out

    def score(
        self,
        rm: Any,
        prompts: Sequence[str],
        responses: Sequence[str],
        chunk_size: int = 256,
        progress: Any = None,
        task: Any = None,
    ) -> tuple[np.ndarray, ScoreReport]:
        """Scores for every (prompt, response) under ``rm``, computing only what is not cached."""
        if len(prompts) != len(responses):
            raise ValueError(f"score cache: {len(prompts)} prompts but {len(responses)} responses")
        self._refresh()
        t0 = time.perf_counter()
        identity = rm_identity(rm)
        extra = getattr(rm, "key_extra", None)
        keys = [score_key(identity, p, r, extra(p) if extra else "") for p, r in zip(prompts, responses)]
        # one computation per distinct key, even when the input repeats an item
        todo: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self._table and k not in todo:
                todo[k] = i
        report = ScoreReport(rm=rm.name, total=len(keys), cached=len(keys) - len(todo))
        load = getattr(rm, "load", None)
        if todo and load:  # only when something needs scoring; a model that cannot load fails once, not per item
            try:
                load()
            except Exception as exc:  # noqa: BLE001 - any load failure means the RM is broken
                raise ScoreError(f"RM {rm.name!r} cannot load: {_error_text(exc)}") from exc
        if progress is not None and task is not None:
            progress.update(task, total=len(todo), completed=0)
        pending = list(todo.items())
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start : start + chunk_size]
            results = self._score_chunk(rm, [prompts[i] for _, i in chunk], [responses[i] for _, i in chunk])
            rows = [(k, rm.name, identity, s, e) for (k, _), (s, e) in zip(chunk, results)]
            self._write_part(rows)
            report.scored += len(rows)
            for _, e in results:
                if e is not None:
                    report.abstained += 1
                    if len(report.errors) < 5:
                        report.errors.append(e)
            if progress is not None and task is not None:
                progress.advance(task, len(rows))
        values = np.array([self._table[k][0] for k in keys], dtype=np.float64)
        report.nan = int(np.isnan(values).sum())
        report.wall_s = time.perf_counter() - t0
        return values, report

    def compact(self) -> Path | None:
        """Merge all part files into one (optional housekeeping; lookups work either way)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = sorted(self.root.glob("part-*.parquet"))
        if len(parts) < 2:
            return parts[0] if parts else None
        merged = pa.concat_tables([pq.read_table(p) for p in parts])
        name = f"part-{time.time_ns()}-compact.parquet"
        tmp = self.root / f".{name}.tmp"
        pq.write_table(merged, tmp)
        os.replace(tmp, self.root / name)
        for p in parts:
            p.unlink()
        self._loaded = {name}
        return self.root / name


class CacheWarning(UserWarning):
    """A score-cache part was corrupt and set aside; the message names it."""


_NAN_NOTES = ("abstained (NaN)", "returned ")


def _checked(value: float) -> tuple[float, str | None]:
    if np.isnan(value):
        return np.nan, "abstained (NaN)"
    if not np.isfinite(value):
        return np.nan, f"returned {value} (recorded as abstained)"
    return float(value), None


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".sha256")


def _write_sidecar(part: Path, written: Path) -> None:
    """The sha256 of ``written`` (the part's temporary file) into ``part``'s sidecar."""
    atomic_write_text(_sidecar(part), file_sha256(written) + "\n")


def _check_part(path: Path) -> None:
    """Raise when ``path`` does not match its sidecar checksum (parts written before sidecars existed
    are only checked by reading them)."""
    side = _sidecar(path)
    if side.exists():
        want = side.read_text(encoding="utf-8").strip()
        got = file_sha256(path)
        if got != want:
            raise ValueError(f"sha256 {got[:12]}… does not match its checksum file ({want[:12]}…)")


def score_pairs(
    cache: ScoreCache,
    rms: Sequence[Any],
    pairs: Iterable[Any],
    chunk_size: int = 256,
    show_progress: bool = True,
    raise_on_failure: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[ScoreReport]]:
    """Score both responses of every pair under every RM; returns (scores_a, scores_b) of shape (N, K).

    A broken RM does not stop the others (their scores are cached); afterwards a :class:`ScoreError`
    names every broken RM, unless ``raise_on_failure`` is False (then ``report.failed`` says why)."""
    pairs = list(pairs)
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.response_a for p in pairs] + [p.response_b for p in pairs]
    n = len(pairs)
    a = np.full((n, len(rms)), np.nan)
    b = np.full((n, len(rms)), np.nan)
    reports = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn("items"),
               TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress, transient=False) as progress, fixed_threads():
        for k, rm in enumerate(rms):
            prepare = getattr(rm, "prepare", None)
            if prepare:
                prepare(pairs)
            task = progress.add_task(f"{rm.name:>24}", total=None)
            truncated_before = int(getattr(rm, "truncated", 0) or 0)
            try:
                with warnings.catch_warnings():  # one summary per RM (report.truncated), not a warning per chunk
                    warnings.filterwarnings("ignore", message=".*longer than max_length.*")
                    values, report = cache.score(rm, prompts, responses, chunk_size, progress, task)
                report.truncated = int(getattr(rm, "truncated", 0) or 0) - truncated_before
            except ScoreError as exc:  # the RM is broken: reported; the others go on
                report = ScoreReport(rm=rm.name, total=2 * n, cached=0, failed=str(exc), nan=2 * n)
                values = np.full(2 * n, np.nan)
            a[:, k], b[:, k] = values[:n], values[n:]
            reports.append(report)
    broken = [r.failed for r in reports if r.failed]
    if broken and raise_on_failure:
        raise ScoreError(f"{len(broken)} of {len(rms)} RM(s) failed (the others' scores are cached): " + "; ".join(broken))
    return a, b, reports
