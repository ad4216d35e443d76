"""``rmroute serve-rm``: serve any reward model over OpenRLHF's reward-server protocol.

Endpoints (all answers are JSON):

    POST /get_reward   {"query": [...], "prompts": [...], "labels": [...]} -> {"rewards": [...]}
    GET  /info         {"identity": ..., "name": ..., "cost": ..., "protocol": "openrlhf-get_reward"}
    GET  /health       {"status": "ok"}   (no token needed, for liveness probes)

How a request is split back into (prompt, response): ``query[i]`` is prompt and response together
(as OpenRLHF sends it) and ``prompts[i]`` the prompt alone, so ``response = query[i][len(prompts[i]):]``;
a ``query[i]`` that does not start with ``prompts[i]`` is a 400. The rmroute extension field
``responses`` (one string per item), when present, takes precedence and ``query`` may then be left
out. ``labels`` is optional; when present it must have one entry per item (the served RM does not
read it). Unknown top-level fields are ignored. A reward that is NaN or infinite is sent as
``null`` (abstain).

Errors: 400 malformed JSON / JSON nested deeper than ``max_json_depth`` / missing or mistyped
fields / length mismatch / query not starting with its prompt; 401 missing or wrong bearer token
(``WWW-Authenticate: Bearer``); 404 unknown path; 405 wrong method; 408 body not received in time;
411 no Content-Length; 413 Content-Length above ``max_request_bytes``; 500 the reward model raised
or returned the wrong shape; 503 (with ``Retry-After``) ``max_bodies_in_flight`` request bodies
were already being handled for all of ``request_timeout``. Each is ``{"error": "..."}`` and the
server keeps serving.

Resources: every connection gets its own thread; the listen queue holds ``listen_backlog``
connections not yet accepted; at most ``max_bodies_in_flight`` /get_reward bodies are read,
decoded and scored at once (a request beyond that waits, its body unread, for a free slot), and
at most ``concurrency`` of them are in ``rm.score`` at once.

Bound to 127.0.0.1 unless told otherwise. One log line per request (client, method, path, status,
number of items, milliseconds) on the ``rmroute.harness.serve`` logger; the token is never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, StrictFloat, StrictInt

from rmroute.harness.core.config import PluginRef, StrictModel, format_loc, line_of, read_yaml_mapping, validate_model
from rmroute.harness.core.errors import ConfigError, PluginError
from rmroute.harness.core.plugins import check_params, create_ref, get_registry
from rmroute.harness.net import is_loopback

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
#: JSON arrays/objects nested deeper than this are a 400 (the decoder recurses once per level)
DEFAULT_MAX_JSON_DEPTH = 400
#: the most ``max_json_depth`` may be: the json decoder recurses once per level, and Python's
#: default recursion limit (1000) also counts the frames of the server under it
MAX_JSON_DEPTH_CEILING = 900
#: connections the kernel queues until accept(); each is accepted at once into its own thread, so
#: this only has to absorb bursts of new connections (e.g. many clients connecting per request)
DEFAULT_LISTEN_BACKLOG = 128
#: /get_reward bodies read, decoded and scored at once; a body of B bytes holds about 3.2 B of
#: memory while it is handled (bytes, str, Python objects: 44 MiB for a 13.7 MiB body)
DEFAULT_MAX_BODIES_IN_FLIGHT = 8
#: the Retry-After (seconds) of a 503 when no body slot came free in time
_RETRY_AFTER_S = 1
#: after an early error answer, read and discard at most this much of the unread body so the
#: client sees the answer instead of a connection reset
_LINGER_BYTES = 64 * 1024 * 1024
_LINGER_S = 2.0
#: on Ctrl-C / SIGTERM, how long to let requests in flight finish
_DRAIN_S = 10.0


class BadRequest(ValueError):
    """A /get_reward request body that does not follow the protocol (answered 400)."""


#: a JSON string: quote, then characters or backslash escapes, then the closing quote (or the end
#: of the text, so that an unterminated string is consumed once instead of rescanned per quote)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
#: +1 for an opening bracket, -1 for a closing one, indexed by byte value
_BRACKET_STEP = np.zeros(256, dtype=np.int32)
_BRACKET_STEP[list(b"[{")] = 1
_BRACKET_STEP[list(b"]}")] = -1
_DEPTH_CHUNK = 1 << 20


def json_too_deep(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects more than ``limit`` levels deep.

    Exact for valid JSON; for invalid JSON never below the depth the decoder reaches before its
    error, so a body this accepts cannot make ``json.loads`` recurse deeper than ``limit``. Cost:
    two counts when the body holds at most ``limit`` brackets (nearly every request); otherwise
    strings are cut out with one regex pass and the running depth is summed in 1 MiB chunks.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for start in range(0, len(brackets), _DEPTH_CHUNK):
        chunk = np.frombuffer(brackets[start:start + _DEPTH_CHUNK], dtype=np.uint8)
        running = np.cumsum(_BRACKET_STEP[chunk], dtype=np.int64) + depth
        if int(running.max()) > limit:
            return True
        depth = int(running[-1])
    return False


def _string_list(data: dict[str, Any], key: str) -> list[str]:
    value = data[key]
    if not isinstance(value, list):
        raise BadRequest(f"'{key}' must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise BadRequest(f"{key}[{i}] must be a string, got {type(item).__name__}")
    return value


def parse_reward_request(data: Any) -> tuple[list[str], list[str]]:
    """Turn a decoded /get_reward body into (prompts, responses); raise :class:`BadRequest`."""
    if not isinstance(data, dict):
        raise BadRequest(
            f"the body must be a JSON object with 'query' and 'prompts' lists, got {type(data).__name__}"
        )
    if "prompts" not in data:
        raise BadRequest(
            "missing field 'prompts' (one prompt per item; 'query' holds prompt + response)"
        )
    prompts = _string_list(data, "prompts")
    n = len(prompts)

    def same_length(key: str, value: list[Any]) -> None:
        if len(value) != n:
            raise BadRequest(f"'{key}' has {len(value)} items but 'prompts' has {n}")

    if data.get("labels") is not None:
        if not isinstance(data["labels"], list):
            raise BadRequest(f"'labels' must be a list, got {type(data['labels']).__name__}")
        same_length("labels", data["labels"])
    if data.get("responses") is not None:  # rmroute extension: takes precedence over query
        responses = _string_list(data, "responses")
        same_length("responses", responses)
        if data.get("query") is not None:
            same_length("query", _string_list(data, "query"))
        return prompts, responses
    if "query" not in data:
        raise BadRequest("missing field 'query' (one prompt + response string per item)")
    query = _string_list(data, "query")
    same_length("query", query)
    responses = []
    for i, (q, p) in enumerate(zip(query, prompts)):
        if not q.startswith(p):
            raise BadRequest(
                f"query[{i}] does not start with prompts[{i}]; send query[i] = prompts[i] + response, "
                "or the responses themselves in the field 'responses'"
            )
        responses.append(q[len(p):])
    return prompts, responses


def rm_identity(rm: Any) -> str:
    """The served RM's identity: ``rm.identity()`` when it has one, else its name."""
    ident = getattr(rm, "identity", None)
    return str(ident()) if callable(ident) else str(rm.name)


class RMServer(ThreadingHTTPServer):
    """A threaded HTTP server for one reward model. ``stats`` counts (method, path, status);
    ``request_queue_size`` is the listen backlog; ``bodies_waiting`` counts requests waiting for
    one of the ``max_bodies_in_flight`` body slots."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        rm: Any,
        token: str | None,
        max_request_bytes: int,
        concurrency: int,
        request_timeout: float,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        listen_backlog: int = DEFAULT_LISTEN_BACKLOG,
        max_bodies_in_flight: int = DEFAULT_MAX_BODIES_IN_FLIGHT,
    ) -> None:
        self.rm = rm
        self.identity = rm_identity(rm)
        self._token = token.encode("utf-8") if token is not None else None
        self.max_request_bytes = max_request_bytes
        self.request_timeout = request_timeout
        self.max_json_depth = max_json_depth
        self.request_queue_size = listen_backlog  # socketserver passes it to listen()
        self.max_bodies_in_flight = max_bodies_in_flight
        self.body_slots = threading.BoundedSemaphore(max_bodies_in_flight)
        self.bodies_waiting = 0
        self.slots = threading.BoundedSemaphore(concurrency)
        self.stats: Counter[tuple[str, str, int]] = Counter()
        self._stats_lock = threading.Lock()
        self._active = 0
        self._idle = threading.Condition()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # an IPv6 host such as ::1
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def token_ok(self, header: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, value = (header or "").partition(" ")
        given = value.strip().encode("utf-8") if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(given, self._token)

    def record(self, method: str, path: str, status: int) -> None:
        with self._stats_lock:
            self.stats[(method, path, status)] += 1

    def acquire_body_slot(self) -> bool:
        """Take one of the ``max_bodies_in_flight`` slots, waiting up to ``request_timeout``;
        False when none came free. The caller releases it with ``body_slots.release()``."""
        if self.body_slots.acquire(blocking=False):
            return True
        with self._stats_lock:
            self.bodies_waiting += 1
        try:
            return self.body_slots.acquire(timeout=self.request_timeout)
        finally:
            with self._stats_lock:
                self.bodies_waiting -= 1

    def enter(self) -> None:
        with self._idle:
            self._active += 1

    def leave(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled (idle kept-alive connections do not count)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)


def _printable(text: str, limit: int = 200) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class _Handler(BaseHTTPRequestHandler):
    server: RMServer
    server_version = "rmroute-serve-rm"
    protocol_version = "HTTP/1.1"  # keep-alive and `Expect: 100-continue` (curl) work
    #: TCP_NODELAY: headers and body are two writes; with Nagle's algorithm the body waits for the
    #: client's delayed ACK of the headers (~40 ms per answer on a kept-alive connection)
    disable_nagle_algorithm = True

    def version_string(self) -> str:  # no Python version in the Server header
        return self.server_version

    # ---- plumbing -------------------------------------------------------------------------
    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # socket timeout for reads and writes
        self._t0 = time.perf_counter()
        self._n: int | None = None
        self._unread = 0  # declared body bytes not read yet
        self._in_flight = False
        super().setup()

    def parse_request(self) -> bool:
        self._t0 = time.perf_counter()  # per request: a kept-alive connection carries several
        self._n = None
        self._unread = 0
        if not self._in_flight:
            self._in_flight = True
            self.server.enter()
        ok = super().parse_request()
        if ok and (self.headers.get("Transfer-Encoding") or (
                self.command != "POST" and self.headers.get("Content-Length", "0").strip() not in ("", "0"))):
            self.close_connection = True  # a body this server will not read: no keep-alive after it
        return ok

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            if self._in_flight:
                self._in_flight = False
                self.server.leave()

    def log_request(self, code: Any = "-", size: Any = "-") -> None:  # replaced by _reply's line
        pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        log.debug("%s %s", self.address_string(), format % args)

    def _route(self) -> str:
        return urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        self._reply(code, {"error": message or HTTPStatus(code).phrase})

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        method = getattr(self, "command", None) or "-"
        path = _printable(self._route()) if getattr(self, "path", None) else "-"
        # counted and logged before the answer leaves: a client that reads it sees it accounted for
        self.server.record(method, path, status)
        log.info(
            "%s %s %s %d n=%s %.1fms",
            self.address_string(), method, path, status, "-" if self._n is None else self._n,
            (time.perf_counter() - self._t0) * 1000,
        )
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            self.close_connection = True
            log.info("%s %s %s: client went away before the answer (%s)", self.address_string(), method, path, type(exc).__name__)

    def _fail(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """An error answer; then discard what is left of the body so the client can read it."""
        if self._unread:
            self.close_connection = True
        self._reply(status, {"error": message}, headers)
        self._linger()

    def _linger(self) -> None:
        remaining = min(self._unread, _LINGER_BYTES)
        self._unread = 0
        if remaining <= 0:
            return
        deadline = time.monotonic() + _LINGER_S
        try:
            self.connection.settimeout(_LINGER_S)
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _authorized(self) -> bool:
        if self.server.token_ok(self.headers.get("Authorization")):
            return True
        self._fail(
            401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
            {"WWW-Authenticate": 'Bearer realm="rmroute"'},
        )
        return False

    # ---- methods --------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        route = self._route()
        if route == "/health":
            self._reply(200, {"status": "ok"})
        elif route == "/info":
            if self._authorized():
                rm = self.server.rm
                self._reply(200, {
                    "identity": self.server.identity,
                    "name": str(rm.name),
                    "cost": float(getattr(rm, "cost", 0.0)),
                    "protocol": "openrlhf-get_reward",
                    "max_request_bytes": self.server.max_request_bytes,
                })
        elif route == "/get_reward":
            self._fail(405, "use POST for /get_reward", {"Allow": "POST"})
        else:
            self._fail(404, f"no such endpoint {_printable(route)!r}; endpoints: POST /get_reward, GET /info, GET /health")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_POST(self) -> None:  # noqa: N802
        route = self._route()
        length = self.headers.get("Content-Length")
        try:
            self._unread = max(0, int(length)) if length is not None else 0
        except ValueError:
            self._unread = 0
        if route in ("/info", "/health"):
            self._fail(405, f"use GET for {route}", {"Allow": "GET, HEAD"})
        elif route != "/get_reward":
            self._fail(404, f"no such endpoint {_printable(route)!r}; endpoints: POST /get_reward, GET /info, GET /health")
        elif self._authorized():
            self._get_reward(length)

    def _method_not_allowed(self) -> None:
        allow = "POST" if self._route() == "/get_reward" else "GET, HEAD"
        self._fail(405, f"method {self.command} is not allowed here", {"Allow": allow})

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # noqa: N815

    # ---- /get_reward ----------------------------------------------------------------------
    def _get_reward(self, length: str | None) -> None:
        limit = self.server.max_request_bytes
        if length is None:
            self.close_connection = True
            self._fail(411, "a Content-Length header is required")
            return
        try:
            size = int(length)
            if size < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._fail(400, f"Content-Length must be a non-negative integer, got {_printable(length)!r}")
            return
        if size > limit:
            self._fail(413, f"request body of {size} bytes exceeds max_request_bytes={limit}; send smaller batches")
            return
        if not self.server.acquire_body_slot():
            self._fail(
                503,
                f"the server is busy: {self.server.max_bodies_in_flight} request bodies "
                f"(max_bodies_in_flight) were in flight for {self.server.request_timeout:g} s; retry later",
                {"Retry-After": str(_RETRY_AFTER_S)},
            )
            return
        try:
            self._read_and_score(size)
        finally:
            self.server.body_slots.release()

    def _read_and_score(self, size: int) -> None:
        """Read ``size`` body bytes, decode, score and answer (holding one body slot)."""
        try:
            raw = self.rfile.read(size)
        except (TimeoutError, OSError):
            self._unread = 0
            self.close_connection = True
            self._fail(408, f"the request body did not arrive within {self.server.request_timeout:g} s")
            return
        self._unread = 0
        if len(raw) < size:
            self.close_connection = True
            self._fail(400, f"the request body ended after {len(raw)} of {size} bytes")
            return
        depth = self.server.max_json_depth
        too_deep = f"the request body nests JSON arrays/objects more than max_json_depth={depth} levels deep"
        if json_too_deep(raw, depth):
            self._fail(400, too_deep)
            return
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self._fail(400, f"the request body is not valid UTF-8 JSON: {exc}")
            return
        except RecursionError:  # only where the interpreter's recursion limit was lowered below it
            self._fail(400, too_deep)
            return
        try:
            prompts, responses = parse_reward_request(data)
        except BadRequest as exc:
            self._fail(400, str(exc))
            return
        self._n = len(prompts)
        if not prompts:
            self._reply(200, {"rewards": []})
            return
        rm = self.server.rm
        with self.server.slots:
            try:
                scores = rm.score(prompts, responses)
            except Exception as exc:  # the RM's failure is the client's 500, not the server's end
                log.warning("reward model %r raised on a batch of %d: %s: %s", rm.name, self._n, type(exc).__name__, exc)
                self._fail(500, f"reward model {rm.name!r} raised {type(exc).__name__}: {exc}")
                return
        try:
            arr = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            self._fail(500, f"reward model {rm.name!r} returned scores that are not numbers: {exc}")
            return
        if arr.shape != (self._n,):
            self._fail(500, f"reward model {rm.name!r} returned shape {arr.shape} for {self._n} items")
            return
        rewards = [float(x) if math.isfinite(x) else None for x in arr.tolist()]
        self._reply(200, {"rewards": rewards})


def make_server(
    rm: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    concurrency: int = 1,
    request_timeout: float = 60.0,
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    listen_backlog: int = DEFAULT_LISTEN_BACKLOG,
    max_bodies_in_flight: int = DEFAULT_MAX_BODIES_IN_FLIGHT,
) -> RMServer:
    """Bind (not yet serve) a server for ``rm``. ``port=0`` picks a free port: read
    ``server.server_address[1]`` or ``server.url``. Run it with ``server.serve_forever()`` (in a
    thread if you like); stop it with ``server.shutdown()`` then ``server.server_close()``.

    ``concurrency`` is how many ``rm.score`` calls may run at once (1: one at a time, the safe
    choice for a model on one device); ``request_timeout`` bounds each socket read and write, and
    how long a request waits for a body slot. ``max_json_depth`` bounds the nesting of request
    bodies (deeper is a 400); ``listen_backlog`` is the listen queue's length;
    ``max_bodies_in_flight`` (at least ``concurrency``) is how many /get_reward bodies are read,
    decoded and scored at once.
    """
    if not callable(getattr(rm, "score", None)) or not isinstance(getattr(rm, "name", None), str):
        raise TypeError(f"make_server needs a reward model with `name` and `score`, got {rm!r}")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError("make_server: token must be a non-empty string or None")

    def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ValueError(f"make_server: {name} must be an integer {bounds}, got {value!r}")

    check_int("max_request_bytes", max_request_bytes, 1)
    check_int("concurrency", concurrency, 1)
    check_int("max_json_depth", max_json_depth, 1, MAX_JSON_DEPTH_CEILING)
    check_int("listen_backlog", listen_backlog, 1, 65535)
    check_int("max_bodies_in_flight (at least concurrency)", max_bodies_in_flight, concurrency)
    if not (isinstance(request_timeout, (int, float)) and request_timeout > 0):
        raise ValueError(f"make_server: request_timeout must be a number of seconds > 0, got {request_timeout!r}")
    server = RMServer(
        (host, port), rm, token, max_request_bytes, concurrency, float(request_timeout),
        max_json_depth=max_json_depth, listen_backlog=listen_backlog, max_bodies_in_flight=max_bodies_in_flight,
    )
    if token is None and not is_loopback(host):
        log.warning(
            "serve-rm: listening on %s without a bearer token; anyone who can reach it can use it "
            "(set token_env)", host,
        )
    return server


# ---- config ---------------------------------------------------------------------------------
class ServeConfig(StrictModel):
    """``rmroute serve-rm CONFIG``: which RM to serve and how."""

    reward_model: PluginRef
    host: str = "127.0.0.1"
    port: StrictInt = Field(default=5000, ge=0, le=65535, description="0 picks a free port")
    token_env: str | None = Field(default=None, description="environment variable holding the bearer token")
    max_request_bytes: StrictInt = Field(default=DEFAULT_MAX_REQUEST_BYTES, ge=1)
    concurrency: StrictInt = Field(default=1, ge=1, description="rm.score calls at once")
    request_timeout: StrictFloat = Field(
        default=60.0, gt=0, description="seconds per socket read/write, and the longest wait for a body slot",
    )
    max_json_depth: StrictInt = Field(
        default=DEFAULT_MAX_JSON_DEPTH, ge=1, le=MAX_JSON_DEPTH_CEILING,
        description="request bodies nesting arrays/objects deeper than this get 400",
    )
    listen_backlog: StrictInt = Field(
        default=DEFAULT_LISTEN_BACKLOG, ge=1, le=65535,
        description="connections queued until accepted (the kernel caps it at net.core.somaxconn)",
    )
    max_bodies_in_flight: StrictInt = Field(
        default=DEFAULT_MAX_BODIES_IN_FLIGHT, ge=1,
        description="/get_reward bodies read, decoded and scored at once (at least concurrency)",
    )


def load_serve_config(config_path: str | Path) -> ServeConfig:
    """Read and validate a serve-rm config; :class:`ConfigError` names file, line and key."""
    path, data, tree = read_yaml_mapping(config_path, "serve-rm config")
    cfg = validate_model(ServeConfig, path, data, tree)

    def where(*loc: Any) -> str:
        return f"{path}:{line_of(tree, loc) or '?'}: {format_loc(loc)}"

    bare = isinstance(data.get("reward_model"), str)  # `reward_model: length`
    try:
        entry = get_registry().get("reward_model", cfg.reward_model.name)
    except PluginError as exc:
        raise ConfigError(f"{where(*(('reward_model',) if bare else ('reward_model', 'name')))}: {exc}") from None
    try:
        check_params(entry, cfg.reward_model.params)
    except PluginError as exc:
        raise ConfigError(f"{where('reward_model', 'params')}: {exc}") from None
    if cfg.max_bodies_in_flight < cfg.concurrency:  # the body cap would also cap scoring
        key = "max_bodies_in_flight" if "max_bodies_in_flight" in data else "concurrency"
        raise ConfigError(
            f"{where(key)}: max_bodies_in_flight ({cfg.max_bodies_in_flight}"
            f"{'' if key == 'max_bodies_in_flight' else ', the default'}) is below concurrency "
            f"({cfg.concurrency}); set max_bodies_in_flight to at least {cfg.concurrency}"
        )
    if cfg.token_env is not None and not os.environ.get(cfg.token_env):
        raise ConfigError(
            f"{where('token_env')}: the environment variable {cfg.token_env!r} is not set (or empty); "
            "export the bearer token in it"
        )
    return cfg


def _ensure_logging() -> None:
    if not logging.getLogger().handlers and not log.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)


def serve_from_config(config_path: str | Path, host: str | None = None, port: int | None = None) -> None:
    """Serve the RM a config names until interrupted (Ctrl-C or SIGTERM); ``host`` / ``port``
    override the config's. Prints ``serving <identity> on http://HOST:PORT`` to stderr once bound."""
    path = Path(config_path)
    cfg = load_serve_config(path)
    token = os.environ[cfg.token_env] if cfg.token_env else None
    try:
        rm = create_ref("reward_model", cfg.reward_model)
    except (PluginError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: reward_model: building {cfg.reward_model.name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    _ensure_logging()
    server = make_server(
        rm,
        host=cfg.host if host is None else host,
        port=cfg.port if port is None else port,
        token=token,
        max_request_bytes=cfg.max_request_bytes,
        concurrency=cfg.concurrency,
        request_timeout=cfg.request_timeout,
        max_json_depth=cfg.max_json_depth,
        listen_backlog=cfg.listen_backlog,
        max_bodies_in_flight=cfg.max_bodies_in_flight,
    )
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _stop)
    print(
        f"rmroute serve-rm: serving {server.identity} on {server.url} "
        f"(POST /get_reward, GET /info, GET /health{'; bearer token required' if token else ''})",
        file=sys.stderr, flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("serve-rm: stopping; waiting up to %g s for requests in flight", _DRAIN_S)
    finally:
        server.server_close()  # no new connections
        server.wait_idle(_DRAIN_S)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
