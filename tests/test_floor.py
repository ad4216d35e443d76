"""The host's floor: the cache root, model specs, devices, network helpers, and core importing no runner."""

from __future__ import annotations

import ast
import http.server
import threading
import urllib.error
from pathlib import Path

import pytest

from rmroute.harness.assets import cache_root, model_revision
from rmroute.harness.net import build_opener, is_loopback
from tests.conftest import REPO

PACKAGES = ("harness", "routers", "reward_models", "suites", "generators")


# ---- one cache-root reader ----------------------------------------------------------------------
def test_every_cache_lives_under_the_one_cache_root(tmp_path, monkeypatch):
    from rmroute.harness.pipelines.offline import expand_path
    from rmroute.harness.pipelines.score_cache import default_cache_dir
    from rmroute.routers.featurize import default_embedding_dir

    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    assert default_cache_dir() == tmp_path / "c" / "scores"
    assert default_embedding_dir() == tmp_path / "c" / "embeddings"
    assert expand_path("$RMROUTE_CACHE/offline/x") == tmp_path / "c" / "offline" / "x"
    monkeypatch.delenv("RMROUTE_CACHE")
    assert cache_root() == Path.home() / ".cache" / "rmroute"


def _reads_the_variable(node: ast.AST) -> bool:
    """``os.environ.get("RMROUTE_CACHE", ...)``, ``os.getenv("RMROUTE_CACHE")`` or ``os.environ["RMROUTE_CACHE"]``."""
    if isinstance(node, ast.Call):
        args = node.args[:1]
    elif isinstance(node, ast.Subscript):
        args = [node.slice]
    else:
        return False
    return any(isinstance(a, ast.Constant) and a.value == "RMROUTE_CACHE" for a in args)


def test_only_assets_reads_rmroute_cache():
    readers = sorted(
        str(path.relative_to(REPO))
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if any(_reads_the_variable(n) for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
    )
    assert readers == ["harness/assets.py"]


# ---- model specs --------------------------------------------------------------------------------
def test_model_revision_hashes_a_local_folder_and_passes_hub_revisions(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"\0\1\2")
    first = model_revision(str(folder), "ignored-for-folders")
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 16
    assert model_revision(str(folder), None) == first
    (folder / "sub" / "weights.bin").write_bytes(b"\0\1\3\4")  # new contents (and size): a new revision
    second = model_revision(str(folder), None)
    assert second != first
    (folder / "sub" / "weights.bin").rename(folder / "weights.bin")  # same bytes under another name
    assert model_revision(str(folder), None) not in (first, second)
    assert model_revision("org/some-model", "v1.2") == "v1.2"
    assert model_revision("org/some-model", None) == "main"


# ---- devices ------------------------------------------------------------------------------------
def test_device_and_dtype_choice():
    torch = pytest.importorskip("torch")
    from rmroute.harness.determinism import THREADS
    from rmroute.harness.devices import compute_tag, pick_device, pick_dtype

    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda:0")
        assert compute_tag("auto") == compute_tag("cpu")
    assert pick_dtype("auto", "cpu") is torch.float32
    assert pick_dtype("auto", "cuda:0") is torch.bfloat16
    assert pick_dtype("float16", "cpu") is torch.float16
    with pytest.raises(ValueError, match="dtype must be 'auto' or one of"):
        pick_dtype("fp8", "cpu")
    assert compute_tag("cpu").startswith(":cpu=") and compute_tag("cpu").endswith(f"-t{THREADS}")


# ---- network helpers ----------------------------------------------------------------------------
@pytest.mark.parametrize("host, loop", [("localhost", True), ("127.0.0.1", True), ("127.4.5.6", True),
                                        ("::1", True), ("10.0.0.1", False), ("example.org", False), ("", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


@pytest.fixture
def server():
    """A local HTTP server: ``/ok`` answers 200, ``/moved`` redirects to ``/ok``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/ok")
                self.end_headers()
                return
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_the_opener_refuses_redirects_and_bypasses_proxies_for_loopback(server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    opener = build_opener("127.0.0.1")
    with opener.open(server + "/ok", timeout=10) as resp:
        assert resp.read() == b"ok"
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(server + "/moved", timeout=10)
    assert info.value.code == 302
    with pytest.raises(urllib.error.URLError):  # a non-loopback host goes through the (dead) proxy
        build_opener("example.invalid").open("http://example.invalid/", timeout=10)


# ---- core imports no runner ---------------------------------------------------------------------
def test_the_core_imports_no_runner_pipeline_or_plugin():
    """harness/core/ is the floor: configs are checked by runners (``rmroute.harness.runners.load_config``),
    not the other way round, at module level or inside a function."""
    upward = ("rmroute.harness.runners", "rmroute.harness.pipelines", "rmroute.harness.board",
              *(f"rmroute.{p}" for p in PACKAGES[1:]))
    found = []
    for path in sorted((REPO / "harness" / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [(path.name, n) for n in names if n.startswith(upward)]
    assert found == []
