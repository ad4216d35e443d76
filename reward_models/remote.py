"""``remote-http``: a reward model behind an HTTP server speaking OpenRLHF's reward-server protocol.

Protocol (OpenRLHF ``openrlhf/cli/serve_rm.py`` and ``openrlhf/utils/remote_rm_utils.py``)::

    POST {url}/get_reward
    {"query": [prompt + response, ...], "prompts": [prompt, ...], "labels": [label, ...]}
    -> 200 {"rewards": [float, ...], ...}

``query[i]`` is the *whole* text the RM reads: OpenRLHF's trainer sends the decoded token sequence
of prompt and response together (the chat template already applied to the prompt), and its
reward server scores ``query`` alone. ``prompts[i]`` is that prompt by itself, so
``query[i].startswith(prompts[i])``; ``labels[i]`` is the dataset's reference answer (``""`` when
there is none) and is read only by rule-based reward functions. This client sends
``query[i] = prompts[i] + responses[i]`` verbatim (no template of its own) and ``labels`` as given
to :meth:`RemoteRM.score` (default ``""`` each). A ``null`` reward comes back as NaN (abstain).

rmroute's own server (:mod:`rmroute.harness.serve`) adds ``GET /info`` -> ``{"identity", "name"}``;
the client reads it once for :meth:`RemoteRM.identity` and falls back to the url when a server
(an OpenRLHF one, say) does not have it.

Only the standard library is used (``urllib.request``). The bearer token is sent in the
``Authorization`` header and never logged, shown in ``repr``, in errors or in the identity; with
``token_env`` it is read from the environment at each request and not kept at all.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Sequence

import numpy as np

from rmroute.harness.core.errors import RmrouteError
from rmroute.harness.net import build_opener
from rmroute.reward_models.heuristics import check_batch

log = logging.getLogger(__name__)

#: HTTP statuses worth another try (the server or something in front of it is busy or broken)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: the longest a ``Retry-After`` header may make the client wait between two tries
MAX_RETRY_AFTER_S = 60.0


class RemoteRMError(RmrouteError, RuntimeError):
    """A remote reward server answered, but not with rewards (4xx, or a malformed response)."""


class RemoteRMUnavailableError(RemoteRMError, ConnectionError):
    """Every try failed with a connection error, a timeout, a 5xx or a 429."""


def _base_url(url: str) -> str:
    """Validate ``url`` and return it without a trailing ``/`` or ``/get_reward``."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"remote-http: url must be a non-empty string, got {url!r}")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"remote-http: url must look like http://host:port or https://host, got {url!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "remote-http: the url must not contain credentials; pass a bearer token with "
            "token_env (the name of an environment variable) instead"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"remote-http: the url must not have a query string or fragment: {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith("/get_reward"):
        path = path[: -len("/get_reward")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _server_message(body: bytes) -> str:
    """The server's own error text: ``error`` / ``detail`` of a JSON body, or the body itself."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if key in data:
                return str(data[key])[:500]
    return text[:500]


class RemoteRM:
    """Client for a reward server speaking OpenRLHF's ``/get_reward`` protocol.

    Parameters
    ----------
    url:        the server, ``http://host:port`` (a trailing ``/get_reward`` is accepted and ignored)
    timeout:    seconds to wait for a connection and for each read of the answer
    retries:    further tries after the first one fails with a connection error, a timeout, a 5xx
                or a 429 (so ``retries + 1`` attempts); 4xx answers are never retried
    backoff:    seconds before the first retry, doubling after each (a 429's ``Retry-After`` wins
                when longer, up to 60 s)
    token:      bearer token sent as ``Authorization: Bearer ...``; prefer ``token_env``
    token_env:  name of an environment variable holding the bearer token (read at each request)
    batch_size: items per request; a larger batch is split into several requests
    cost:       relative cost of one call, for the leaderboard's cost axis
    name:       how the RM is named in results
    """

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        token: str | None = None,
        token_env: str | None = None,
        batch_size: int = 64,
        cost: float = 1.0,
        name: str = "remote-http",
    ) -> None:
        self.url = _base_url(url)
        host = urllib.parse.urlsplit(self.url).hostname or ""
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"remote-http: timeout must be a number of seconds > 0, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"remote-http: retries must be an integer >= 0, got {retries!r}")
        if not (isinstance(backoff, (int, float)) and backoff >= 0):
            raise ValueError(f"remote-http: backoff must be a number of seconds >= 0, got {backoff!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"remote-http: batch_size must be an integer >= 1, got {batch_size!r}")
        if not (isinstance(cost, (int, float)) and cost >= 0):
            raise ValueError(f"remote-http: cost must be a number >= 0, got {cost!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"remote-http: name must be a non-empty string, got {name!r}")
        if token is not None and token_env is not None:
            raise ValueError("remote-http: give token or token_env, not both")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("remote-http: token must be a non-empty string")
        if token_env is not None:
            if not isinstance(token_env, str) or not token_env:
                raise ValueError(f"remote-http: token_env must name an environment variable, got {token_env!r}")
            if not os.environ.get(token_env):
                raise ValueError(
                    f"remote-http: token_env names the environment variable {token_env!r}, "
                    "which is not set (or empty)"
                )
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.batch_size = batch_size
        self.cost = float(cost)
        self.name = name
        self.token_env = token_env
        self.__token = token  # name-mangled, never in repr, identity or errors
        self._identity: str | None = None
        self._opener = build_opener(host)

    def __repr__(self) -> str:
        auth = f", token_env={self.token_env!r}" if self.token_env else (", token=***" if self.__token else "")
        return (
            f"RemoteRM(url={self.url!r}, timeout={self.timeout}, retries={self.retries}, "
            f"batch_size={self.batch_size}{auth})"
        )

    # ---- HTTP -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "rmroute-remote-http"}
        token = os.environ.get(self.token_env, "") if self.token_env else self.__token
        if self.token_env and not token:
            raise RemoteRMError(
                f"remote-http {self.url}: the environment variable {self.token_env!r} "
                "(token_env) is not set (or empty)"
            )
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _request(self, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        """One HTTP exchange with retries; returns (status, body) of a non-retryable answer.

        Retries connection errors, timeouts, 5xx and 429; returns 2xx and 4xx answers to the caller;
        raises :class:`RemoteRMUnavailableError` after the last try.
        """
        url = self.url + path
        data = None
        headers = self._headers()
        if payload is not None:
            data = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        attempts = self.retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            retry_after = 0.0
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                try:
                    body = exc.read()
                except (OSError, http.client.HTTPException):
                    body = b""
                finally:
                    exc.close()
                if exc.code not in RETRY_STATUSES:
                    return exc.code, body
                last = f"HTTP {exc.code}: {_server_message(body)}"
                try:
                    retry_after = float(exc.headers.get("Retry-After", 0) or 0)
                except (TypeError, ValueError):
                    retry_after = 0.0
            except (TimeoutError, socket.timeout):
                last = f"timed out after {self.timeout:g} s"
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    last = f"timed out after {self.timeout:g} s"
                else:
                    last = f"connection error: {reason}"
            except (OSError, http.client.HTTPException) as exc:
                last = f"connection error: {type(exc).__name__}: {exc}"
            if attempt < attempts:
                delay = self.backoff * 2 ** (attempt - 1)
                if retry_after > delay:
                    delay = min(retry_after, max(delay, MAX_RETRY_AFTER_S))
                log.warning(
                    "remote-http %s %s: attempt %d/%d failed (%s); retrying in %.2f s",
                    method, url, attempt, attempts, last, delay,
                )
                if delay > 0:
                    time.sleep(delay)
        raise RemoteRMUnavailableError(
            f"remote-http {method} {url}: gave up after {attempts} attempt(s); last error: {last}"
        )

    # ---- identity -------------------------------------------------------------------------
    def identity(self) -> str:
        """``remote-http:<url>:<server identity>``, or ``remote-http:<url>`` when the server has no
        ``GET /info`` (OpenRLHF's does not). Fetched once; the token is never part of it."""
        if self._identity is None:
            status, body = self._request("GET", "/info")
            served = None
            if status == 200:
                try:
                    info = json.loads(body.decode("utf-8"))
                except ValueError:
                    info = None
                if isinstance(info, dict) and isinstance(info.get("identity"), str) and info["identity"]:
                    served = info["identity"]
            elif status in (401, 403):
                raise RemoteRMError(
                    f"remote-http GET {self.url}/info: HTTP {status}: {_server_message(body)} "
                    "(check token / token_env)"
                )
            self._identity = f"remote-http:{self.url}" + (f":{served}" if served else "")
        return self._identity

    # ---- scoring --------------------------------------------------------------------------
    def score(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        labels: Sequence[Any] | None = None,
    ) -> np.ndarray:
        """(B,) float64 rewards; NaN where the server abstained (``null``).

        ``labels`` (optional, one per item) are sent as the protocol's ``labels``; default ``""``.
        """
        check_batch(self.name, prompts, responses)
        n = len(prompts)
        if labels is None:
            labels = [""] * n
        elif len(labels) != n:
            raise ValueError(f"{self.name}: {n} prompts but {len(labels)} labels")
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, self.batch_size):
            stop = min(n, start + self.batch_size)
            out[start:stop] = self._score_batch(
                list(prompts[start:stop]), list(responses[start:stop]), list(labels[start:stop]), start
            )
        return out

    def _score_batch(self, prompts: list[str], responses: list[str], labels: list[Any], offset: int) -> np.ndarray:
        payload = {
            "query": [p + r for p, r in zip(prompts, responses)],
            "prompts": prompts,
            "labels": labels,
        }
        status, body = self._request("POST", "/get_reward", payload)
        where = f"remote-http POST {self.url}/get_reward"
        if status != 200:
            hint = ""
            if status in (401, 403):
                hint = " (check token / token_env)"
            elif status == 413:
                hint = f" (the request was too large for the server; lower batch_size, now {self.batch_size})"
            raise RemoteRMError(f"{where}: HTTP {status}: {_server_message(body)}{hint}")
        return self._parse_rewards(body, len(prompts), offset, where)

    @staticmethod
    def _parse_rewards(body: bytes, n: int, offset: int, where: str) -> np.ndarray:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RemoteRMError(f"{where}: the answer is not JSON ({exc}): {body[:200]!r}") from None
        if not isinstance(data, dict) or "rewards" not in data:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise RemoteRMError(f"{where}: the answer has no 'rewards' list (got {keys})")
        rewards = data["rewards"]
        if not isinstance(rewards, list):
            raise RemoteRMError(f"{where}: 'rewards' must be a list, got {type(rewards).__name__}")
        if len(rewards) != n:
            raise RemoteRMError(f"{where}: sent {n} items but got {len(rewards)} rewards")
        out = np.empty(n, dtype=np.float64)
        for i, r in enumerate(rewards):
            if r is None:
                out[i] = np.nan
            elif isinstance(r, (int, float)) and not isinstance(r, bool):
                try:
                    value = float(r)
                except OverflowError:
                    value = math.inf
                if math.isinf(value):
                    raise RemoteRMError(
                        f"{where}: item {offset + i}: reward is not finite ({r}); "
                        "a server abstains with null instead"
                    )
                out[i] = value
            else:
                raise RemoteRMError(
                    f"{where}: item {offset + i}: reward must be a number or null, got {r!r}"
                )
        return out
