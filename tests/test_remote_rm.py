"""The `remote-http` RM against a live local `serve-rm` server (threads and one subprocess)."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from rmroute.harness.core.errors import ConfigError, RmrouteError
from rmroute.harness.core.plugins import create
from rmroute.harness.core.testing import check_reward_model
from rmroute.reward_models.heuristics import LengthRM, check_batch
from rmroute.reward_models.remote import RemoteRM, RemoteRMError, RemoteRMUnavailableError
from rmroute.harness.serve import load_serve_config, make_server, parse_reward_request

REPO = Path(__file__).resolve().parent.parent
PROMPTS = ["What is 2 + 3? ", "Name a prime.\n", "Übersetze 'cat': ", "", "p"]
RESPONSES = ["2 + 3 = 5.", "7 is prime, and so is 11.", "Katze", "An empty prompt", ""]
TOKEN = "s3cret-token-value"


# ---- helpers ------------------------------------------------------------------------------------
@contextlib.contextmanager
def serving(rm: Any, **kw: Any) -> Iterator[Any]:
    server = make_server(rm, **kw)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def raw(server: Any, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, Any, http.client.HTTPResponse]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, (json.loads(data) if data else None), resp


GOOD = json.dumps({"query": ["p: one two three"], "prompts": ["p: "]}).encode()


def assert_still_serving(server: Any) -> None:
    status, data, _ = raw(server, "POST", "/get_reward", GOOD, {"Content-Type": "application/json"})
    assert (status, data) == (200, {"rewards": [3.0]})


class AbstainRM:
    """Abstains (NaN) on responses with a '?', returns inf on ones with a '!' (sent as null too)."""

    name = "abstainer"
    cost = 0.0

    def identity(self) -> str:
        return "abstainer-v1"

    def score(self, prompts, responses) -> np.ndarray:
        check_batch(self.name, prompts, responses)
        return np.array(
            [np.nan if "?" in r else np.inf if "!" in r else float(len(r)) for r in responses]
        )


class ScriptedRM:
    """Counts calls; on the calls listed in ``stall`` waits (until ``release`` or ``seconds``),
    on those in ``fail`` raises; otherwise scores like LengthRM."""

    name = "scripted"
    cost = 0.0

    def __init__(self, stall: Callable[[int], bool] = lambda k: False,
                 fail: Callable[[int], bool] = lambda k: False, seconds: float = 5.0) -> None:
        self.stall, self.fail, self.seconds = stall, fail, seconds
        self.calls = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def score(self, prompts, responses) -> np.ndarray:
        with self._lock:
            self.calls += 1
            k = self.calls
        if self.stall(k):
            self.release.wait(self.seconds)
        if self.fail(k):
            raise RuntimeError(f"boom on call {k}")
        return LengthRM().score(prompts, responses)


# ---- round trips --------------------------------------------------------------------------------
def test_round_trip_equals_local_scoring_in_batches():
    local = LengthRM().score(PROMPTS, RESPONSES)
    with serving(LengthRM()) as server:
        rm = RemoteRM(server.url, batch_size=2, timeout=5)
        got = rm.score(PROMPTS, RESPONSES)
        assert got.dtype == np.float64 and got.shape == (len(PROMPTS),)
        np.testing.assert_array_equal(got, local)
        assert server.stats[("POST", "/get_reward", 200)] == 3  # 5 items in batches of 2
        assert rm.score([], []).shape == (0,)
        assert server.stats[("POST", "/get_reward", 200)] == 3  # an empty batch sends nothing
        assert rm.identity() == f"remote-http:{server.url}:length(log=False)"


def test_nan_and_inf_come_back_as_nan():
    responses = ["fine answer", "unsure?", "loud!", "ok"]
    with serving(AbstainRM()) as server:
        rm = RemoteRM(server.url, timeout=5)
        got = rm.score(["q"] * 4, responses)
        np.testing.assert_array_equal(np.isnan(got), [False, True, True, False])
        np.testing.assert_array_equal(got[[0, 3]], [11.0, 2.0])
        assert rm.identity().endswith(":abstainer-v1")


def test_check_reward_model_passes_against_a_live_server():
    with serving(LengthRM(log=True)) as server:
        check_reward_model(RemoteRM, url=server.url, timeout=5, batch_size=3)
        rm = create("reward_model", "remote-http", url=server.url + "/get_reward", timeout=5)
        assert isinstance(rm, RemoteRM) and rm.url == server.url
        np.testing.assert_allclose(rm.score(PROMPTS, RESPONSES), LengthRM(log=True).score(PROMPTS, RESPONSES))


def test_request_log_line_never_shows_the_token(caplog, monkeypatch):
    monkeypatch.setenv("RMROUTE_TEST_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    with serving(LengthRM(), token=TOKEN) as server:
        rm = RemoteRM(server.url, token_env="RMROUTE_TEST_TOKEN", timeout=5)
        rm.score(PROMPTS[:3], RESPONSES[:3])
        identity = rm.identity()
        with pytest.raises(RemoteRMError):
            RemoteRM(server.url, token="wrong-" + TOKEN, retries=0).score(["a"], ["b"])
    lines = [r.getMessage() for r in caplog.records if r.name == "rmroute.harness.serve"]
    assert any(re.search(r"POST /get_reward 200 n=3 [\d.]+ms", line) for line in lines), lines
    assert any("POST /get_reward 401" in line for line in lines), lines
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(rm) and TOKEN not in identity


# ---- timeouts, retries, server errors -----------------------------------------------------------
def test_stalled_server_hits_the_timeout_then_a_retry_succeeds():
    rm_served = ScriptedRM(stall=lambda k: k == 1)
    with serving(rm_served, concurrency=4) as server:
        try:
            rm = RemoteRM(server.url, timeout=0.3, retries=2, backoff=0.01)
            np.testing.assert_array_equal(rm.score(PROMPTS, RESPONSES), LengthRM().score(PROMPTS, RESPONSES))
            assert rm_served.calls == 2  # the first call stalled past the client timeout
        finally:
            rm_served.release.set()


def test_stalled_server_fails_after_the_last_try_naming_url_and_attempts():
    rm_served = ScriptedRM(stall=lambda k: True)
    with serving(rm_served, concurrency=4) as server:
        try:
            rm = RemoteRM(server.url, timeout=0.2, retries=1, backoff=0.01)
            with pytest.raises(RemoteRMUnavailableError) as info:
                rm.score(["a"], ["b c"])
            msg = str(info.value)
            assert server.url + "/get_reward" in msg and "2 attempt(s)" in msg and "timed out" in msg
            assert isinstance(info.value, ConnectionError) and isinstance(info.value, RmrouteError)
        finally:
            rm_served.release.set()


def test_5xx_is_retried_and_the_server_keeps_serving():
    flaky = ScriptedRM(fail=lambda k: k == 1)
    with serving(flaky) as server:
        rm = RemoteRM(server.url, timeout=5, retries=2, backoff=0.01)
        np.testing.assert_array_equal(rm.score(["p"], ["one two"]), [2.0])
        assert server.stats[("POST", "/get_reward", 500)] == 1
        assert server.stats[("POST", "/get_reward", 200)] == 1

    broken = ScriptedRM(fail=lambda k: True)
    with serving(broken) as server:
        status, data, _ = raw(server, "POST", "/get_reward", GOOD)
        assert status == 500 and "boom on call 1" in data["error"] and "RuntimeError" in data["error"]
        rm = RemoteRM(server.url, timeout=5, retries=2, backoff=0.01)
        with pytest.raises(RemoteRMUnavailableError) as info:
            rm.score(["p"], ["x"])
        assert "3 attempt(s)" in str(info.value) and "HTTP 500" in str(info.value) and "boom" in str(info.value)
        assert broken.calls == 4
        status, data, _ = raw(server, "GET", "/health")
        assert (status, data) == (200, {"status": "ok"})


def test_connection_refused_fails_after_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rm = RemoteRM(f"http://127.0.0.1:{port}", timeout=1, retries=2, backoff=0.01)
    with pytest.raises(RemoteRMUnavailableError) as info:
        rm.score(["a"], ["b"])
    msg = str(info.value)
    assert f"http://127.0.0.1:{port}/get_reward" in msg and "3 attempt(s)" in msg and "connection error" in msg


def test_4xx_is_not_retried():
    with serving(LengthRM(), max_request_bytes=300) as server:
        rm = RemoteRM(server.url, timeout=5, retries=3, backoff=0.01)
        with pytest.raises(RemoteRMError) as info:
            rm.score(["p"], ["word " * 200])
        assert not isinstance(info.value, RemoteRMUnavailableError)
        assert "HTTP 413" in str(info.value) and "max_request_bytes=300" in str(info.value)
        assert "batch_size" in str(info.value)
        assert server.stats[("POST", "/get_reward", 413)] == 1
        np.testing.assert_array_equal(rm.score(["p"], ["a b"]), [2.0])


# ---- malformed requests: 4xx, and the server keeps serving -------------------------------------
BAD_BODIES = {
    "not json": (b"{not json", "not valid UTF-8 JSON"),
    "not utf-8": (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    "not an object": (b"[1, 2]", "JSON object"),
    "missing prompts": (json.dumps({"query": ["x"]}).encode(), "missing field 'prompts'"),
    "missing query": (json.dumps({"prompts": ["x"]}).encode(), "missing field 'query'"),
    "query not a list": (json.dumps({"query": "xy", "prompts": ["x"]}).encode(), "'query' must be a list"),
    "query item not a string": (json.dumps({"query": [1], "prompts": ["x"]}).encode(), "query[0] must be a string"),
    "length mismatch": (json.dumps({"query": ["xa", "xb"], "prompts": ["x"]}).encode(), "'query' has 2 items but 'prompts' has 1"),
    "query without its prompt": (json.dumps({"query": ["ya"], "prompts": ["x"]}).encode(), "query[0] does not start with prompts[0]"),
    "labels mismatch": (json.dumps({"query": ["xa"], "prompts": ["x"], "labels": ["1", "2"]}).encode(), "'labels' has 2 items"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_malformed_requests_get_400_and_the_server_keeps_serving(case):
    body, message = BAD_BODIES[case]
    with serving(LengthRM()) as server:
        status, data, resp = raw(server, "POST", "/get_reward", body, {"Content-Type": "application/json"})
        assert status == 400 and message in data["error"], data
        assert resp.getheader("Content-Type").startswith("application/json")
        assert_still_serving(server)


def test_size_limits_and_other_4xx():
    with serving(LengthRM(), max_request_bytes=2000) as server:
        big = json.dumps({"query": ["p" + "x " * 5000], "prompts": ["p"]}).encode()
        status, data, _ = raw(server, "POST", "/get_reward", big)
        assert status == 413 and "max_request_bytes=2000" in data["error"]
        assert_still_serving(server)

        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.putrequest("POST", "/get_reward")
        conn.endheaders()  # no Content-Length
        resp = conn.getresponse()
        assert resp.status == 411 and "Content-Length" in json.loads(resp.read())["error"]
        conn.close()
        assert_still_serving(server)

        status, data, _ = raw(server, "POST", "/get_reward", b"{}", {"Content-Length": "-5"})
        assert status == 400 and "Content-Length" in data["error"]
        for method, path, code in [("GET", "/get_reward", 405), ("POST", "/info", 405),
                                   ("DELETE", "/get_reward", 405), ("GET", "/nope", 404),
                                   ("POST", "/nope", 404)]:
            status, data, resp = raw(server, method, path, b"{}" if method == "POST" else None)
            assert status == code and data["error"], (method, path)
            if code == 405:
                assert resp.getheader("Allow")
        assert_still_serving(server)


def test_responses_extension_takes_precedence_over_query():
    with serving(LengthRM()) as server:
        body = json.dumps({"prompts": ["p", "q"], "responses": ["a b", "c"], "query": ["zzz", "zzz"]}).encode()
        status, data, _ = raw(server, "POST", "/get_reward", body)
        assert (status, data) == (200, {"rewards": [2.0, 1.0]})
        body = json.dumps({"prompts": ["p"], "responses": ["a b c"], "labels": None, "extra": 1}).encode()
        assert raw(server, "POST", "/get_reward", body)[:2] == (200, {"rewards": [3.0]})
        empty = json.dumps({"query": [], "prompts": [], "labels": []}).encode()
        assert raw(server, "POST", "/get_reward", empty)[:2] == (200, {"rewards": []})


def test_parse_reward_request_splits_query_after_the_prompt():
    prompts, responses = parse_reward_request(
        {"query": ["<s>user: hi\nassistant: hello", "Q: A"], "prompts": ["<s>user: hi\nassistant:", "Q: "],
         "labels": ["", "x"]}
    )
    assert prompts == ["<s>user: hi\nassistant:", "Q: "] and responses == [" hello", "A"]


# ---- tokens --------------------------------------------------------------------------------------
def test_wrong_or_missing_token_gets_401_and_is_not_retried(monkeypatch):
    with serving(LengthRM(), token=TOKEN) as server:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {TOKEN}x"}):
            for method, path, body in (("POST", "/get_reward", GOOD), ("GET", "/info", None)):
                status, data, resp = raw(server, method, path, body, headers)
                assert status == 401 and "token" in data["error"]
                assert resp.getheader("WWW-Authenticate", "").startswith("Bearer")
        assert raw(server, "GET", "/health")[0] == 200  # liveness needs no token
        status, data, _ = raw(server, "POST", "/get_reward", GOOD, {"Authorization": f"Bearer {TOKEN}"})
        assert (status, data) == (200, {"rewards": [3.0]})

        before = server.stats[("POST", "/get_reward", 401)]
        wrong = RemoteRM(server.url, token="not-it", retries=3, backoff=0.01, timeout=5)
        with pytest.raises(RemoteRMError) as info:
            wrong.score(["a"], ["b"])
        assert "HTTP 401" in str(info.value) and "not-it" not in str(info.value)
        assert server.stats[("POST", "/get_reward", 401)] == before + 1
        with pytest.raises(RemoteRMError, match="401"):
            RemoteRM(server.url, retries=0).identity()

        monkeypatch.setenv("RMROUTE_TEST_TOKEN", TOKEN)
        rm = RemoteRM(server.url, token_env="RMROUTE_TEST_TOKEN", timeout=5)
        np.testing.assert_array_equal(rm.score(PROMPTS, RESPONSES), LengthRM().score(PROMPTS, RESPONSES))
        assert rm.identity() == f"remote-http:{server.url}:length(log=False)"
        assert TOKEN not in repr(rm) and "RMROUTE_TEST_TOKEN" in repr(rm)


# ---- an OpenRLHF-style server (no /info) and malformed answers ----------------------------------
class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[dict], tuple[int, bytes]]) -> None:
        self.answer = answer
        self.seen: list[dict] = []
        super().__init__(("127.0.0.1", 0), FakeHandler)


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._send(404, b'{"detail": "Not Found"}')

    def do_POST(self) -> None:  # noqa: N802
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(data)
        self._send(*self.server.answer(data))


@contextlib.contextmanager
def fake(answer: Callable[[dict], tuple[int, bytes]]) -> Iterator[FakeServer]:
    server = FakeServer(answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def openrlhf_like(data: dict) -> tuple[int, bytes]:
    rewards = [float(len(q)) for q in data["query"]]  # scores the whole query, as OpenRLHF does
    return 200, json.dumps({"rewards": rewards, "scores": rewards, "extra_logs": {"x": rewards}}).encode()


def test_openrlhf_style_server_without_info():
    with fake(openrlhf_like) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        rm = RemoteRM(url + "/get_reward", timeout=5)
        got = rm.score(["Q: ", "Q: "], ["yes", "no"], labels=["7", ""])
        np.testing.assert_array_equal(got, [6.0, 5.0])
        assert server.seen[0] == {"query": ["Q: yes", "Q: no"], "prompts": ["Q: ", "Q: "], "labels": ["7", ""]}
        rm.score(["a"], ["b"])
        assert server.seen[1]["labels"] == [""]
        assert rm.identity() == f"remote-http:{url}"


@pytest.mark.parametrize("body, message", [
    (json.dumps({"rewards": [1.0]}), "sent 2 items but got 1 rewards"),
    (json.dumps({"scores": [1, 2]}), "no 'rewards' list"),
    (json.dumps({"rewards": "12"}), "'rewards' must be a list"),
    (json.dumps({"rewards": [1, "x"]}), "item 1: reward must be a number or null"),
    (json.dumps({"rewards": [1, True]}), "item 1: reward must be a number or null"),
    ('{"rewards": [1, Infinity]}', "item 1: reward is not finite"),
    ("<html>oops</html>", "not JSON"),
])
def test_malformed_answers_are_clear_errors(body, message):
    with fake(lambda data: (200, body.encode())) as server:
        rm = RemoteRM(f"http://127.0.0.1:{server.server_address[1]}", timeout=5, retries=3)
        with pytest.raises(RemoteRMError, match=re.escape(message)):
            rm.score(["a", "b"], ["c", "d"])
        assert len(server.seen) == 1  # a malformed 200 is not retried


def test_null_rewards_are_nan():
    with fake(lambda data: (200, b'{"rewards": [1.5, null, 2]}')) as server:
        got = RemoteRM(f"http://127.0.0.1:{server.server_address[1]}", timeout=5).score(["a"] * 3, ["b"] * 3)
        np.testing.assert_array_equal(np.isnan(got), [False, True, False])
        assert got[0] == 1.5 and got[2] == 2.0


@pytest.mark.parametrize("kwargs, message", [
    ({"url": "ftp://host/x"}, "http://host:port"),
    ({"url": "http://user:pw@127.0.0.1:1"}, "credentials"),
    ({"url": "http://127.0.0.1:1/?token=x"}, "query string"),
    ({"url": "http://127.0.0.1:1", "timeout": 0}, "timeout"),
    ({"url": "http://127.0.0.1:1", "retries": -1}, "retries"),
    ({"url": "http://127.0.0.1:1", "batch_size": 0}, "batch_size"),
    ({"url": "http://127.0.0.1:1", "token": "a", "token_env": "B"}, "not both"),
    ({"url": "http://127.0.0.1:1", "token_env": "RMROUTE_SURELY_UNSET_VAR"}, "RMROUTE_SURELY_UNSET_VAR"),
])
def test_client_parameters_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RemoteRM(**kwargs)


def test_mismatched_lengths_raise_value_error_before_any_request():
    rm = RemoteRM("http://127.0.0.1:1", retries=0)
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        rm.score(["a", "b"], ["c"])


# ---- serve_from_config ------------------------------------------------------------------------
def test_cli_serve_rm_in_a_subprocess(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        "reward_model: {name: length, params: {log: false}}\n"
        "port: 5000\n"  # overridden with port=0 below
        "token_env: RMROUTE_TEST_TOKEN\n"
        "max_request_bytes: 100000\n"
    )
    env = {**__import__("os").environ, "RMROUTE_TEST_TOKEN": TOKEN}
    # the real command line: `rmroute serve-rm CONFIG --port 0`
    proc = subprocess.Popen([sys.executable, "-m", "rmroute.harness.cli", "serve-rm", str(cfg), "--port", "0"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    captured: list[str] = []

    def pump() -> None:
        for line in proc.stderr:
            captured.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=30)
            match = re.search(r"serving (\S+) on (http://\S+)", line)
            if match:
                assert match.group(1) == "length(log=False)"
                url = match.group(2)
        assert url.startswith("http://127.0.0.1:")
        rm = RemoteRM(url, token=TOKEN, timeout=5, batch_size=2)
        np.testing.assert_array_equal(rm.score(PROMPTS, RESPONSES), LengthRM().score(PROMPTS, RESPONSES))
        assert rm.identity() == f"remote-http:{url}:length(log=False)"
        with pytest.raises(RemoteRMError, match="401"):
            RemoteRM(url, retries=0, timeout=5).score(["a"], ["b"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            reader.join(5)
            proc.stderr.close()
    text = "".join(captured)
    assert rc == 0, text
    assert re.search(r"POST /get_reward 200 n=2", text) and "POST /get_reward 401" in text, text
    assert TOKEN not in text


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    ("reward_model: length\nhots: 0.0.0.0\n", [":2: hots: unknown key 'hots'", "allowed keys"]),
    ("reward_model: {name: length, param: {}}\n", [":1: reward_model.param: unknown key 'param'"]),
    ("reward_model:\n  name: lenght\n", [":2: reward_model.name:", "did you mean 'length'"]),
    ("reward_model:\n  name: length\n  params: {bogus: 1}\n", [":3: reward_model.params:", "bogus", "accepted parameters"]),
    ("reward_model: length\nport: 70000\n", [":2: port:", "70000"]),
    ("reward_model: length\nmax_request_bytes: many\n", [":2: max_request_bytes:"]),
    ("host: 127.0.0.1\n", ["reward_model: Field required"]),
    ("reward_model: length\ntoken_env: RMROUTE_SURELY_UNSET_VAR\n", [":2: token_env:", "RMROUTE_SURELY_UNSET_VAR", "not set"]),
    ("- a list\n", ["must be a mapping"]),
    ("reward_model: [unclosed\n", ["not valid YAML"]),
])
def test_serve_config_errors_name_file_line_and_key(tmp_path, text, expected):
    assert_serve_config_error(tmp_path, text, expected)


def assert_serve_config_error(tmp_path, text: str, expected: list[str]) -> None:
    """Loading ``text`` as a serve config fails with a ConfigError naming the file and each of ``expected``."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_serve_config(path)
    msg = str(info.value)
    assert str(path) in msg
    for part in expected:
        assert part in msg, msg


def test_serve_config_defaults_and_missing_file(tmp_path):
    cfg = load_serve_config(write(tmp_path, "reward_model: length\n"))
    assert cfg.reward_model.name == "length" and cfg.host == "127.0.0.1" and cfg.token_env is None
    assert load_serve_config(REPO / "configs" / "serve-rm-length.yaml").reward_model.name == "length"
    with pytest.raises(ConfigError, match="no such config file"):
        load_serve_config(tmp_path / "missing.yaml")
