"""The results store: one schema-versioned JSON per run, written atomically, loaded defensively.

Layout: ``<root>/runs/<suite>/<run_id>.json``. The leaderboard is rebuilt from these files only.
The schema (:class:`RunRecord` and its parts) is defined in :mod:`rmroute.harness.records` and
imported from here; loading skips files that fail :func:`rmroute.harness.integrity.check_run`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata as md
import json
import math
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import ValidationError

from rmroute.harness.core.errors import ResultsError
from rmroute.harness.integrity import check_run
# the run-file schema lives in records.py (so that integrity.py can check records without importing
# this module); the store's users import it from here
from rmroute.harness.records import (  # noqa: F401
    READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, CodeVersion, DataInfo, RouterInfo, RunRecord,
)

KEY_PACKAGES = ("rmroute", "numpy", "torch", "transformers", "trl", "datasets", "pluggy", "pydantic")


class ResultsWarning(UserWarning):
    """A results file was skipped; the message names it and why."""


def new_run_id(prefix: str = "") -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix + '-' if prefix else ''}{stamp}-{secrets.token_hex(3)}"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def code_version(repo: Path | None = None) -> CodeVersion:
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return CodeVersion(git_sha=None, dirty=None)
        # the code, not what runs write: a run that rebuilds results/ (the leaderboard, the pool
        # report) must not mark the runs after it as made from a modified tree
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
                                cwd=repo, capture_output=True, text=True, timeout=10)
        return CodeVersion(git_sha=sha.stdout.strip(), dirty=bool(status.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(git_sha=None, dirty=None)


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def reproduce_command(config_path: str, extra_args: list[str] | None = None) -> str:
    return shlex.join(["rmroute", "run", config_path, *(extra_args or [])])


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: store them as null so every file stays strictly valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, then renamed over
    the target (``os.replace`` is atomic on POSIX). On any error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a folder atomically: yields a temporary folder beside ``final``; when the block ends,
    its files are fsynced and it replaces ``final`` (an existing one is removed first). On any error
    the temporary folder is removed and ``final`` is left as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def run_path(root: Path, record: RunRecord) -> Path:
    return Path(root) / "runs" / record.suite / f"{record.run_id}.json"


def confined(root: str | Path, path: str | Path) -> Path:
    """``path``, after checking that it stays inside ``root`` once ``..`` and symlinks are resolved;
    a path that would escape is a ResultsError naming both. Every run-file write goes through it."""
    base, target = Path(root).resolve(), Path(path).resolve()
    if target != base and base not in target.parents:
        raise ResultsError(f"refusing to write {path}: it resolves to {target}, outside the output folder {base}")
    return Path(path)


def write_run(record: RunRecord, root: str | Path = "results") -> Path:
    """Validate and write one run (inside ``root/runs/<suite>/``, never elsewhere); returns its path."""
    payload = _json_safe(record.model_dump(mode="json"))
    RunRecord.model_validate(payload)  # what is written must load back
    for what, part in (("suite", record.suite), ("run_id", record.run_id)):
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part:
            raise ResultsError(f"run {record.run_id!r}: {what} {part!r} cannot be a file name")
    path = confined(Path(root) / "runs", run_path(Path(root), record))
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


def load_run(path: str | Path) -> RunRecord:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultsError(f"{path}: not an rmroute run file (no schema_version)")
    if data["schema_version"] not in READABLE_SCHEMA_VERSIONS:
        raise ResultsError(f"{path}: schema_version {data['schema_version']!r} is not supported (this rmroute "
                           f"reads {', '.join(map(str, READABLE_SCHEMA_VERSIONS))})")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ResultsError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None


def load_consistent_run(path: str | Path) -> RunRecord:
    """:func:`load_run`, and a ResultsError too when the run's metrics disagree with its own stored
    outcomes and curves (:func:`rmroute.harness.integrity.check_run`; failed runs are not checked). The
    message names the file and the first disagreeing metric."""
    run = load_run(path)
    problems = check_run(run)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"{path}: inconsistent with its own stored outcomes: {problems[0]}{more}")
    return run


def finished_ok(path: Path) -> bool:
    """True when ``path`` holds a readable, self-consistent run with status ok (what ``--resume``
    skips); a missing, corrupt, inconsistent or failed run file is run again."""
    if not path.is_file():
        return False
    try:
        return load_consistent_run(path).status == "ok"
    except Exception:  # noqa: BLE001 - a corrupt or inconsistent file is simply re-run
        return False


def newest(items: list[Any], key: Callable[[Any], Any], run: Callable[[Any], RunRecord] = lambda x: x) -> dict[Any, Any]:
    """``key(item) -> item`` keeping, per key, the item whose run finished last (``created``, then
    ``run_id``): a resumed or repeated run supersedes the older one, whatever either's status."""
    out: dict[Any, Any] = {}
    for item in sorted(items, key=lambda x: (run(x).created, run(x).run_id)):
        out[key(item)] = item
    return out


def load_runs(root: str | Path = "results") -> tuple[list[RunRecord], list[tuple[Path, str]]]:
    """Load every run under ``<root>/runs``; corrupt, foreign or inconsistent files (metrics that
    disagree with the run's own stored outcomes) are skipped with a warning naming the file."""
    runs: list[RunRecord] = []
    skipped: list[tuple[Path, str]] = []
    base = Path(root) / "runs"
    for path in sorted(base.rglob("*.json")) if base.is_dir() else []:
        if any(part.endswith(".samples") for part in path.relative_to(base).parts[:-1]):
            continue  # per-sample logs an evaluation suite keeps next to its run JSON
        try:
            runs.append(load_consistent_run(path))
        except ResultsError as exc:
            warnings.warn(f"skipped {exc}", ResultsWarning, stacklevel=2)
            skipped.append((path, str(exc)))
    return runs, skipped
