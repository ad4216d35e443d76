"""The github: source: download against a local HTTP server, cache, sha256 pin, mirror, errors.

The server (stdlib ``http.server`` on 127.0.0.1, port 0) serves a tmp folder laid out as
OWNER/REPO/COMMIT/PATH, like raw.githubusercontent.com, and counts the requests it gets. The
expected sha256 values are computed here with hashlib from the bytes the test wrote.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from rmroute.harness.assets import DataError, github_path, parse_github_spec, resolve_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PATH = "outputs/judge_model=some,rm.jsonl"
SPEC = f"github:acme/scores@{COMMIT}#{PATH}"
BODY = b'{"pair_id": "p1", "score": 0.5}\n'
PIN = hashlib.sha256(BODY).hexdigest()


class Server:
    """A raw-file server over ``root`` (paths are url-decoded by SimpleHTTPRequestHandler)."""

    def __init__(self, root: Path):
        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 - the stdlib's name
                paths.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A server holding acme/scores/COMMIT/PATH = BODY; the cache in tmp_path; no mirror."""
    root = tmp_path / "served"
    target = root / "acme" / "scores" / COMMIT / PATH
    target.parent.mkdir(parents=True)
    target.write_bytes(BODY)
    server = Server(root)
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RMROUTE_GITHUB_RAW", server.url)
    monkeypatch.delenv("RMROUTE_MIRROR", raising=False)
    yield server
    server.close()


def cached(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "github" / "acme" / "scores" / COMMIT / PATH


def test_downloads_once_then_reads_the_cache(served, tmp_path):
    path = github_path(SPEC, PIN)
    assert path == cached(tmp_path)
    assert path.read_bytes() == BODY
    assert len(served.paths) == 1
    assert served.paths[0].startswith(f"/acme/scores/{COMMIT}/outputs/")
    assert (path.parent / (path.name + ".sha256")).read_text().strip() == PIN
    assert github_path(SPEC, PIN) == path
    assert len(served.paths) == 1  # the second call did not ask the server
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def test_a_changed_pin_is_checked_again_not_trusted_from_the_stamp(served, tmp_path):
    github_path(SPEC, PIN)
    other = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DataError, match=f"is {PIN}, expected {other}"):
        github_path(SPEC, other)
    assert len(served.paths) == 2


def test_wrong_sha256_is_refused_and_nothing_is_cached(served, tmp_path):
    wrong = hashlib.sha256(BODY + b"x").hexdigest()
    with pytest.raises(DataError) as err:
        github_path(SPEC, wrong)
    msg = str(err.value)
    assert SPEC in msg and f"is {PIN}" in msg and f"expected {wrong}" in msg and "refusing" in msg
    folder = cached(tmp_path).parent
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize("pin, what", [(None, "no sha256 pin"), ("abc", "not 64 hex digits")])
def test_a_pin_is_required_for_a_download(served, pin, what):
    with pytest.raises(DataError, match=what):
        github_path(SPEC, pin)
    assert served.paths == []


def write_mirror(tmp_path: Path, body: bytes = BODY) -> Path:
    path = tmp_path / "mirror" / "github" / "acme" / "scores" / COMMIT / PATH
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    return path


def test_the_mirror_is_read_in_place_and_the_server_never_asked(served, tmp_path, monkeypatch):
    mirrored = write_mirror(tmp_path)
    monkeypatch.setenv("RMROUTE_MIRROR", str(tmp_path / "mirror"))
    assert github_path(SPEC, PIN) == mirrored
    assert served.paths == [] and not cached(tmp_path).exists()


def test_a_relative_mirror_is_resolved_against_the_working_directory(served, tmp_path, monkeypatch):
    mirrored = write_mirror(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("RMROUTE_MIRROR", "../mirror")
    assert github_path(SPEC, PIN) == mirrored.resolve()


def test_the_mirror_file_is_pinned_too(served, tmp_path, monkeypatch):
    write_mirror(tmp_path, BODY + b"tampered\n")
    monkeypatch.setenv("RMROUTE_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(DataError, match=f"expected {PIN}; refusing"):
        github_path(SPEC, PIN)
    with pytest.raises(DataError, match="no sha256 pin"):
        github_path(SPEC, None)


def test_the_mirror_file_is_hashed_once_per_process(served, tmp_path, monkeypatch):
    write_mirror(tmp_path)
    monkeypatch.setenv("RMROUTE_MIRROR", str(tmp_path / "mirror"))
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    for _ in range(3):
        github_path(SPEC, PIN)
    assert len(calls) == 1


def test_a_missing_mirror_file_names_the_path_looked_at(served, tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("RMROUTE_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(DataError) as err:
        github_path(SPEC, PIN)
    assert str(tmp_path / "mirror" / "github" / "acme" / "scores" / COMMIT / PATH) in str(err.value)
    assert served.paths == []


def assert_names_both_ways(msg: str, spec: str, url: str, path: str = PATH) -> None:
    assert "\n" not in msg
    assert msg.startswith(f"{spec}: download from {url} failed (")
    assert msg.endswith(f"; on a machine without GitHub access set RMROUTE_MIRROR to a folder holding "
                        f"github/acme/scores/{COMMIT}/{path} (see docs/data.md)")


def test_http_404_is_one_line_naming_both_ways(served, tmp_path):
    spec = f"github:acme/scores@{COMMIT}#outputs/absent.jsonl"
    with pytest.raises(DataError) as err:
        github_path(spec, PIN)
    url = f"{served.url}/acme/scores/{COMMIT}/outputs/absent.jsonl"
    assert_names_both_ways(str(err.value), spec, url, "outputs/absent.jsonl")
    assert "failed (HTTP 404 " in str(err.value)
    assert served.paths == [f"/acme/scores/{COMMIT}/outputs/absent.jsonl"]
    assert not cached(tmp_path).parent.exists() or list(cached(tmp_path).parent.iterdir()) == []


def test_nothing_listening_is_one_line_naming_both_ways(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port that was free a moment ago; nothing listens on it now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RMROUTE_GITHUB_RAW", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("RMROUTE_MIRROR", raising=False)
    with pytest.raises(DataError) as err:
        github_path(SPEC, PIN)
    url = f"http://127.0.0.1:{port}/acme/scores/{COMMIT}/outputs/judge_model%3Dsome%2Crm.jsonl"
    assert_names_both_ways(str(err.value), SPEC, url)


def test_parse_github_spec():
    assert parse_github_spec(SPEC) == ("acme", "scores", COMMIT, PATH)
    upper = SPEC.replace(COMMIT, COMMIT.upper())
    assert parse_github_spec(upper)[2] == COMMIT


@pytest.mark.parametrize("spec, what", [
    (f"github:acme/scores@main#{PATH}", "'main' is not 40 hex digits"),
    (f"github:acme/scores@{COMMIT[:-1]}g#{PATH}", "is not 40 hex digits"),
    (f"github:acme/scores@{COMMIT[:7]}#{PATH}", "is not 40 hex digits"),
    (f"github:acme/scores#{PATH}", "is not 40 hex digits"),
    (f"github:acme@{COMMIT}#{PATH}", "'acme' is not <owner>/<repo>"),
    (f"github:acme/scores/x@{COMMIT}#{PATH}", "is not <owner>/<repo>"),
    (f"github:acme/scores@{COMMIT}", "the path '' is not a relative path"),
    (f"github:acme/scores@{COMMIT}#../../etc/passwd", "is not a relative path"),
    (f"github:acme/scores@{COMMIT}#/abs", "is not a relative path"),
    (f"gh:acme/scores@{COMMIT}#{PATH}", "does not start with 'github:'"),
])
def test_malformed_specs(spec, what):
    with pytest.raises(DataError) as err:
        parse_github_spec(spec)
    msg = str(err.value)
    assert repr(spec) in msg and what in msg
    assert "expected github:<owner>/<repo>@<40-hex commit>#<path in the repository>" in msg


def test_resolve_source_file_and_plain_paths(tmp_path):
    data = tmp_path / "cfg" / "table.jsonl"
    data.parent.mkdir()
    data.write_bytes(BODY)
    assert resolve_source(f"file:{data}") == data
    assert resolve_source(str(data)) == data
    assert resolve_source("file:table.jsonl", base=data.parent) == data.parent / "table.jsonl"
    assert resolve_source("table.jsonl", base=data.parent) == data.parent / "table.jsonl"
    assert resolve_source("table.jsonl", PIN, base=data.parent) == data.parent / "table.jsonl"
    with pytest.raises(DataError, match=f"expected {'0' * 64}"):
        resolve_source(str(data), "0" * 64)
    with pytest.raises(DataError, match="no such file"):
        resolve_source("file:missing.jsonl", base=tmp_path)
    with pytest.raises(DataError, match="names preference pairs, not a file"):
        resolve_source("suite:rmroute-pairs-v1:test")


def test_resolve_source_github(served, tmp_path):
    assert resolve_source(SPEC, PIN, base=tmp_path / "ignored") == cached(tmp_path)
    assert len(served.paths) == 1
