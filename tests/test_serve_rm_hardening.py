"""serve-rm under hostile or heavy load: JSON depth bound, listen backlog, request bodies in flight."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from typing import Any, Callable

import pytest

from rmroute.harness import serve as server_module
from rmroute.reward_models.heuristics import LengthRM
from rmroute.harness.serve import (
    DEFAULT_LISTEN_BACKLOG,
    DEFAULT_MAX_BODIES_IN_FLIGHT,
    DEFAULT_MAX_JSON_DEPTH,
    json_too_deep,
    load_serve_config,
    make_server,
    serve_from_config,
)
from tests.test_remote_rm import (GOOD, REPO, ScriptedRM, assert_serve_config_error, assert_still_serving, raw, serving,
                                  write)

JSON = {"Content-Type": "application/json"}


def wait_until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll until ``condition()`` holds; fail naming ``what`` after ``limit`` seconds (a liveness
    guard against a hung test, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def nesting_depth(value: Any) -> int:
    """Array/object nesting depth of a decoded JSON value, walked without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


# ---- JSON depth ---------------------------------------------------------------------------------
def test_json_nested_5000_deep_gets_400_and_the_server_keeps_serving():
    body = b'{"prompts": ["p"], "query": ["pq"], "labels": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    with serving(LengthRM()) as server:
        status, data, resp = raw(server, "POST", "/get_reward", body, JSON)
        assert status == 400, data
        assert f"max_json_depth={DEFAULT_MAX_JSON_DEPTH}" in data["error"]
        assert resp.getheader("Content-Type").startswith("application/json")
        assert_still_serving(server)


def test_json_depth_limit_is_the_configured_one_and_brackets_in_strings_do_not_count():
    def body(label: Any) -> bytes:
        return json.dumps({"prompts": ["[{p"], "query": ["[{p" + "]" * 50], "labels": [label]}).encode()

    with serving(LengthRM(), max_json_depth=4) as server:
        # object > labels list > label: depth 2 + the label's own nesting
        assert raw(server, "POST", "/get_reward", body([["x"]]), JSON)[:2] == (200, {"rewards": [1.0]})
        status, data, _ = raw(server, "POST", "/get_reward", body([[["x"]]]), JSON)
        assert status == 400 and "max_json_depth=4" in data["error"], data
        strings = json.dumps({"prompts": ["[" * 3000], "query": ["[" * 3000 + "{ a"]}).encode()
        assert raw(server, "POST", "/get_reward", strings, JSON)[:2] == (200, {"rewards": [2.0]})


def test_a_recursion_error_in_the_decoder_is_a_400_too(monkeypatch):
    """Where the interpreter's recursion limit is below the configured depth, the decoder's
    RecursionError gets the same answer."""
    monkeypatch.setattr(server_module, "json_too_deep", lambda raw, limit: False)
    body = b'{"prompts": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with serving(LengthRM()) as server:
        status, data, _ = raw(server, "POST", "/get_reward", body, JSON)
        assert status == 400 and "max_json_depth" in data["error"], data
        assert_still_serving(server)


def _random_json(rng: random.Random, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(['a"[{', "]}\\", '\\"]', 7, None, True, "plain"])
    if rng.random() < 0.5:
        return [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}[\"": _random_json(rng, depth - 1) for i in range(rng.randint(0, 3))}


def test_json_too_deep_matches_the_decoded_depth():
    rng = random.Random(13)
    docs = [_random_json(rng, rng.randint(0, 10)) for _ in range(500)]
    for doc in docs:
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8")
        depth = nesting_depth(doc)
        for limit in range(1, 12):
            assert json_too_deep(text, limit) == (depth > limit), (text, limit, depth)


def test_json_too_deep_never_below_what_the_decoder_reaches_on_broken_json():
    # an unterminated string ends the scan (the decoder stops there too); brackets before it count
    assert json_too_deep(b"[[[" + b'"' + b'\\"[[[' * 1000, 2)
    assert not json_too_deep(b'["' + b'\\"[[[' * 1000, 2)
    assert json_too_deep(b"[" * 10, 9) and not json_too_deep(b"[" * 9, 9)


# ---- listen backlog -----------------------------------------------------------------------------
def test_listen_backlog_default_and_explicit():
    for kwargs, expected in [({}, DEFAULT_LISTEN_BACKLOG), ({"listen_backlog": 37}, 37)]:
        server = make_server(LengthRM(), port=0, **kwargs)
        try:
            assert server.request_queue_size == expected
        finally:
            server.server_close()
    assert DEFAULT_LISTEN_BACKLOG >= 20  # the load test's 20 clients connecting at once


def test_serve_from_config_builds_the_server_the_config_describes(tmp_path, monkeypatch):
    built: list[Any] = []

    def recording_make_server(*args: Any, **kwargs: Any) -> Any:
        built.append(make_server(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(server_module, "make_server", recording_make_server)
    path = write(tmp_path, "reward_model: length\nport: 0\nlisten_backlog: 33\nmax_json_depth: 50\n"
                           "max_bodies_in_flight: 3\nconcurrency: 2\n")
    thread = threading.Thread(target=serve_from_config, args=(path,), daemon=True)
    thread.start()
    wait_until(lambda: bool(built), "serve_from_config to build its server")
    server = built[0]
    try:
        assert (server.request_queue_size, server.max_json_depth, server.max_bodies_in_flight) == (33, 50, 3)
        wait_until(lambda: raw(server, "GET", "/health")[0] == 200, "the server to answer")
    finally:
        server.shutdown()
        thread.join(15)
    assert not thread.is_alive()


# ---- request bodies in flight -------------------------------------------------------------------
def _post_in_thread(server: Any, results: list[Any]) -> threading.Thread:
    def go() -> None:
        results.append(raw(server, "POST", "/get_reward", GOOD, JSON))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_a_body_beyond_the_cap_waits_unread_until_a_slot_frees():
    rm = ScriptedRM(stall=lambda k: k == 1, seconds=30)
    first: list[Any] = []
    second: list[Any] = []
    with serving(rm, max_bodies_in_flight=1, concurrency=1, request_timeout=30) as server:
        a = _post_in_thread(server, first)
        wait_until(lambda: rm.calls == 1, "the first request to reach rm.score")
        b = _post_in_thread(server, second)
        wait_until(lambda: server.bodies_waiting == 1, "the second request to wait for a body slot")
        assert rm.calls == 1 and not second  # not scored, not answered while the slot is taken
        rm.release.set()
        a.join(10)
        b.join(10)
        assert [r[:2] for r in first + second] == [(200, {"rewards": [3.0]})] * 2
        assert rm.calls == 2 and server.bodies_waiting == 0
        assert_still_serving(server)


def test_a_body_that_waits_longer_than_request_timeout_gets_503_with_retry_after():
    rm = ScriptedRM(stall=lambda k: k == 1, seconds=30)
    first: list[Any] = []
    with serving(rm, max_bodies_in_flight=1, concurrency=1, request_timeout=0.3) as server:
        a = _post_in_thread(server, first)
        try:
            wait_until(lambda: rm.calls == 1, "the first request to reach rm.score")
            status, data, resp = raw(server, "POST", "/get_reward", GOOD, JSON)
            assert status == 503 and "max_bodies_in_flight" in data["error"], data
            assert int(resp.getheader("Retry-After")) >= 1
            assert rm.calls == 1
        finally:
            rm.release.set()
            a.join(10)
        assert first[0][:2] == (200, {"rewards": [3.0]})
        assert_still_serving(server)
        assert server.stats[("POST", "/get_reward", 503)] == 1


# ---- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("reward_model: length\nmax_json_depth: 0\n", [":2: max_json_depth:", "greater than or equal to 1"]),
    ("reward_model: length\nmax_json_depth: 901\n", [":2: max_json_depth:", "less than or equal to 900"]),
    ("reward_model: length\nmax_json_depth: deep\n", [":2: max_json_depth:", "valid integer"]),
    ("reward_model: length\nlisten_backlog: 0\n", [":2: listen_backlog:", "greater than or equal to 1"]),
    ("reward_model: length\nlisten_backlog: 70000\n", [":2: listen_backlog:", "less than or equal to 65535"]),
    ("reward_model: length\nlisten_backlog: true\n", [":2: listen_backlog:", "valid integer"]),
    ("reward_model: length\nmax_bodies_in_flight: 0\n", [":2: max_bodies_in_flight:", "greater than or equal to 1"]),
    ("reward_model: length\nmax_bodies_in_flight: 2.5\n", [":2: max_bodies_in_flight:", "valid integer"]),
    ("reward_model: length\nconcurrency: 2\nmax_bodies_in_flight: 1\n",
     [":3: max_bodies_in_flight:", "max_bodies_in_flight (1) is below concurrency (2)"]),
    ("reward_model: length\nconcurrency: 16\n",
     [":2: concurrency:", f"max_bodies_in_flight ({DEFAULT_MAX_BODIES_IN_FLIGHT}, the default) is below concurrency (16)"]),
    ("reward_model: length\nrequest_timeout: true\n", [":2: request_timeout:"]),
])
def test_serve_config_new_keys_are_validated(tmp_path, text, expected):
    assert_serve_config_error(tmp_path, text, expected)


def test_serve_config_new_keys_defaults_and_the_shipped_config(tmp_path):
    cfg = load_serve_config(write(tmp_path, "reward_model: length\n"))
    assert (cfg.max_json_depth, cfg.listen_backlog, cfg.max_bodies_in_flight) == (
        DEFAULT_MAX_JSON_DEPTH, DEFAULT_LISTEN_BACKLOG, DEFAULT_MAX_BODIES_IN_FLIGHT)
    shipped = load_serve_config(REPO / "configs" / "serve-rm-length.yaml")
    assert (shipped.max_json_depth, shipped.listen_backlog, shipped.max_bodies_in_flight) == (400, 128, 8)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_json_depth": 0}, "max_json_depth must be an integer in [1, 900]"),
    ({"max_json_depth": 5000}, "max_json_depth must be an integer in [1, 900]"),
    ({"listen_backlog": True}, "listen_backlog must be an integer in [1, 65535]"),
    ({"max_bodies_in_flight": 0}, "max_bodies_in_flight (at least concurrency) must be an integer >= 1"),
    ({"concurrency": 4, "max_bodies_in_flight": 2}, "max_bodies_in_flight (at least concurrency) must be an integer >= 4"),
])
def test_make_server_rejects_bad_limits(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_server(LengthRM(), port=0, **kwargs)
