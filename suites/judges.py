"""Judges for the chat evaluation suites: ``hf-local``, ``openai-compatible`` and ``rm-judge``.

Every judge satisfies :class:`rmroute.harness.core.types.Judge`:

* ``compare(questions, a, b)`` -> P(answer A is better than answer B) per item, in [0, 1], NaN when
  the judge gave no verdict (counted in ``stats``, never guessed);
* ``grade(questions, answers, references)`` -> a 1..10 score per item, NaN when there is none.

Position bias is cancelled by judging each pair in both orders: with p_AB = P(first answer better)
for the order (A, B) and p_BA the same for the order (B, A), the verdict for A is

    P(A better) = (p_AB + (1 - p_BA)) / 2.

A judge that favours the first position by a constant log-odds shift d gives p_AB = sigmoid(x + d)
and 1 - p_BA = sigmoid(x - d), so for identical answers (x = 0) the result is exactly 0.5.

``hf-local`` (a local causal LM, loaded with :func:`rmroute.harness.pipelines.policy.load_policy`) reads its verdicts
from log-probabilities. The judging prompt goes through the judge model's chat template and ends in
``Verdict: [[``; the candidate continuations are the verdict tokens ``A`` and ``B``, so
P(first better) = softmax(log p(A), log p(B))[0]. ``grade`` ends the prompt in ``Rating: [[`` and
scores the ten continuations ``1]]`` .. ``10]]`` (the closing brackets keep ``1`` from also
counting the mass of ``10``): grade = sum_k k * softmax_k(log p(k]])). The log-probability of a
continuation is the sum of its tokens' log-probabilities given the prompt. A prompt longer than
``max_length`` tokens (with the continuation) loses tokens from its middle: the first quarter of
the room (instructions, question) and the rest from the end (the verdict request) are kept;
counted in ``stats['truncated']``.

``openai-compatible`` posts MT-Bench / Arena-Hard style judging prompts to any chat-completions
endpoint (``POST {base_url}/chat/completions``, temperature 0) and parses ``[[A]]``, ``[[B]]``,
``[[C]]`` (tie = 0.5) or ``Rating: [[7]]`` from the reply; a pair whose two orders do not both
yield a verdict gets NaN (as Arena-Hard drops such battles). The API key is read from the
environment variable named by ``api_key_env`` at each request; it is never stored on the object,
never shown in ``repr``, ``stats`` or error messages, and redacted from anything a server sends
back. Timeouts, connection errors, 429 and 5xx are retried with exponential backoff; a per-run
budget ``max_requests`` caps the requests sent (past it: NaN, counted).

``rm-judge`` uses a reward model from the pool (CPU quick path): compare = sigmoid(s_A - s_B),
grade = 1 + 9 * sigmoid(s). The RM scores answers independently, so there is no order to swap.

``stats`` (flat counters, so a runner can take differences): ``items`` judged, ``no_verdict``,
plus per judge ``forward_passes`` / ``truncated`` (hf-local), ``requests`` / ``retries`` /
``failed_<reason>`` (openai-compatible; reasons ``timeout``, ``connection``, ``http_<status>``,
``bad_response``, ``unparseable``, ``budget``, ``missing_key``), ``rm_abstained`` (rm-judge).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.plugins import create, parse_ref
from rmroute.harness.net import build_opener
from rmroute.harness.pipelines.policy import load_policy

GRADES = tuple(range(1, 11))


# ---------------------------------------------------------------------------------- shared maths --
def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Numerically stable logistic function (NaN stays NaN)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.exp(-np.logaddexp(0.0, -x))


def swap_average(p_ab: np.ndarray, p_ba: np.ndarray) -> np.ndarray:
    """P(A better) from both orders: (p_AB + 1 - p_BA) / 2, with p_XY = P(first answer better)."""
    return (np.asarray(p_ab, dtype=np.float64) + 1.0 - np.asarray(p_ba, dtype=np.float64)) / 2.0


def softmax_rows(logp: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (B, C) array of log-scores."""
    z = logp - logp.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_grade(logp: np.ndarray) -> np.ndarray:
    """sum_k k * softmax(logp)_k for the (B, 10) log-probabilities of the grades 1..10."""
    return softmax_rows(logp) @ np.asarray(GRADES, dtype=np.float64)


def middle_truncate(tokens: list[int], room: int) -> list[int]:
    """``tokens`` cut to ``room`` by dropping the middle: the first room // 4 and the last ones kept."""
    if len(tokens) <= room:
        return tokens
    head = room // 4
    return tokens[:head] + tokens[len(tokens) - (room - head):]


def check_compare_batch(judge: str, questions: Sequence[str], a: Sequence[str], b: Sequence[str]) -> None:
    if not (len(questions) == len(a) == len(b)):
        raise ValueError(f"{judge}: compare got {len(questions)} questions, {len(a)} answers A, {len(b)} answers B")
    for i, row in enumerate(zip(questions, a, b)):
        if not all(isinstance(x, str) for x in row):
            raise ValueError(f"{judge}: compare item {i}: question, A and B must be strings, got "
                             f"{', '.join(type(x).__name__ for x in row)}")


def check_grade_batch(judge: str, questions: Sequence[str], answers: Sequence[str],
                      references: Sequence[str | None]) -> None:
    if not (len(questions) == len(answers) == len(references)):
        raise ValueError(f"{judge}: grade got {len(questions)} questions, {len(answers)} answers, "
                         f"{len(references)} references")
    for i, (q, ans, ref) in enumerate(zip(questions, answers, references)):
        if not isinstance(q, str) or not isinstance(ans, str) or not (ref is None or isinstance(ref, str)):
            raise ValueError(f"{judge}: grade item {i}: question and answer must be strings and the "
                             f"reference a string or None, got {type(q).__name__}, {type(ans).__name__}, "
                             f"{type(ref).__name__}")


# ----------------------------------------------------------------------------------- the prompts --
PAIR_SYSTEM = (
    "You are an impartial judge of AI assistants. Read the user's question and two answers, and decide "
    "which answer serves the user better: it follows the instructions, is correct, relevant, helpful and "
    "as detailed as the question needs. The order in which the answers appear, their length and the "
    "assistants' names must not sway you."
)
PAIR_VERDICT_API = (
    "Explain your comparison briefly, then give your final verdict on its own line as [[A]] if answer A "
    "is better, [[B]] if answer B is better, or [[C]] for a tie."
)
GRADE_SYSTEM = (
    "You are an impartial judge of an AI assistant. Rate how well its answer serves the user: it follows "
    "the instructions, is correct, relevant, helpful and as detailed as the question needs. When a "
    "reference answer is given, check the answer against it and count every mistake."
)
GRADE_VERDICT_API = (
    "Explain your rating briefly, then rate the answer from 1 (useless) to 10 (excellent) on its own line "
    "in exactly this form: Rating: [[5]]"
)


def pair_body(question: str, first: str, second: str) -> str:
    """The question and the two answers, labelled A (first) and B (second)."""
    return (f"[Question]\n{question}\n\n[Answer A]\n{first}\n[End of answer A]\n\n"
            f"[Answer B]\n{second}\n[End of answer B]")


def grade_body(question: str, answer: str, reference: str | None) -> str:
    ref = f"[Reference answer]\n{reference}\n[End of reference answer]\n\n" if reference is not None else ""
    return f"[Question]\n{question}\n\n{ref}[Answer]\n{answer}\n[End of answer]"


# ====================================================================================== hf-local ==
class HFLocalJudge:
    """A local causal LM as the judge: verdicts and grades from continuation log-probabilities.

    Build it with ``HFLocalJudge(model, ...)`` (loads ``model`` with :func:`rmroute.harness.pipelines.policy.load_policy`:
    a :class:`rmroute.harness.pipelines.policy.PolicySpec` dict, ``"tiny"``, a folder or a hub id) or, for a model you
    already hold, :meth:`from_policy`. ``max_length`` (prompt + continuation tokens) defaults to the
    model's ``max_position_embeddings``, at most 8192; longer prompts lose tokens from the middle.
    """

    VERDICTS = ("A", "B")

    def __init__(self, model: str | dict[str, Any], device: str = "auto", batch_size: int = 8,
                 max_length: int | None = None) -> None:
        spec = {"model": model} if isinstance(model, str) else model
        if not isinstance(spec, dict):
            raise ConfigError(f"hf-local: model must be a string or a policy spec mapping, got {type(model).__name__}")
        try:
            policy = load_policy(spec, device=None if device == "auto" else device)
        except ConfigError as exc:
            raise ConfigError(f"hf-local judge: {exc}") from None
        policy.model.eval()  # our own copy: no dropout while judging
        self._setup(policy, batch_size, max_length)

    @classmethod
    def from_policy(cls, policy: Any, batch_size: int = 8, max_length: int | None = None) -> HFLocalJudge:
        """A judge around an already loaded :class:`rmroute.harness.pipelines.policy.Policy` (model, tokenizer, device)."""
        judge = cls.__new__(cls)
        judge._setup(policy, batch_size, max_length)
        return judge

    def _setup(self, policy: Any, batch_size: int, max_length: int | None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"hf-local: batch_size must be an integer >= 1, got {batch_size!r}")
        if max_length is None:
            config = getattr(policy.model, "config", None)
            max_length = min(int(getattr(config, "max_position_embeddings", None) or 4096), 8192)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 16:
            raise ConfigError(f"hf-local: max_length must be an integer >= 16, got {max_length!r}")
        self.policy, self.batch_size, self.max_length = policy, batch_size, max_length
        self.name = f"hf-local:{policy.spec.model}"
        self.stats: dict[str, int] = {"items": 0, "no_verdict": 0, "forward_passes": 0, "truncated": 0}
        self._keep_logits: bool | None = None  # does the model accept logits_to_keep? (found on first call)
        tok = policy.tokenizer
        self._pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self._verdict_ids = [self._encode(v) for v in self.VERDICTS]
        self._grade_ids = [self._encode(f"{k}]]") for k in GRADES]

    def __repr__(self) -> str:
        return f"HFLocalJudge(model={self.policy.spec.model!r}, device={self.policy.device!r}, batch_size={self.batch_size})"

    # ---- prompts ------------------------------------------------------------------------------
    def compare_text(self, question: str, first: str, second: str) -> str:
        """The exact text whose continuation ``A`` / ``B`` is scored, for one order."""
        body = f"{PAIR_SYSTEM}\n\n{pair_body(question, first, second)}\n\nWhich answer is better? A or B"
        return self.policy.format_prompt(body) + "Verdict: [["

    def grade_text(self, question: str, answer: str, reference: str | None) -> str:
        """The exact text whose continuations ``1]]`` .. ``10]]`` are scored."""
        body = f"{GRADE_SYSTEM}\n\n{grade_body(question, answer, reference)}\n\nRate the answer from 1 to 10."
        return self.policy.format_prompt(body) + "Rating: [["

    # ---- Judge protocol -----------------------------------------------------------------------
    def compare(self, questions: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        check_compare_batch(self.name, questions, a, b)
        n = len(questions)
        texts = [self.compare_text(q, x, y) for q, x, y in zip(questions, a, b)]
        texts += [self.compare_text(q, y, x) for q, x, y in zip(questions, a, b)]
        probs = softmax_rows(self.continuation_logprobs(texts, self._verdict_ids))[:, 0]
        out = swap_average(probs[:n], probs[n:])
        self._count(out)
        return out

    def grade(self, questions: Sequence[str], answers: Sequence[str],
              references: Sequence[str | None]) -> np.ndarray:
        check_grade_batch(self.name, questions, answers, references)
        texts = [self.grade_text(q, x, r) for q, x, r in zip(questions, answers, references)]
        out = expected_grade(self.continuation_logprobs(texts, self._grade_ids))
        self._count(out)
        return out

    def _count(self, out: np.ndarray) -> None:
        self.stats["items"] += int(out.size)
        self.stats["no_verdict"] += int(np.isnan(out).sum())

    # ---- scoring ------------------------------------------------------------------------------
    def _encode(self, text: str, special: bool = False) -> list[int]:
        ids = list(self.policy.tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])
        if not ids:
            raise ConfigError(f"hf-local: the judge's tokenizer encodes {text!r} as no tokens")
        return ids

    def _encode_context(self, text: str) -> list[int]:
        """Context tokens; special tokens are added unless a chat template already wrote BOS."""
        bos = getattr(self.policy.tokenizer, "bos_token", None)
        return self._encode(text, special=not (bos and text.startswith(bos)))

    def continuation_logprobs(self, texts: Sequence[str], candidates: Sequence[list[int]]) -> np.ndarray:
        """(len(texts), len(candidates)) array: log p(candidate tokens | text), summed over tokens.

        Candidates sharing all but their last token share one forward pass (``A``/``B``: one pass;
        ``1]]``..``10]]`` with a digit-level tokenizer: one pass per distinct prefix).
        """
        contexts = [self._encode_context(t) for t in texts]
        out = np.zeros((len(texts), len(candidates)), dtype=np.float64)
        by_prefix: dict[tuple[int, ...], list[int]] = {}
        for j, cand in enumerate(candidates):
            by_prefix.setdefault(tuple(cand[:-1]), []).append(j)
        longest = max(len(c) for c in candidates)
        room = self.max_length - longest
        self.stats["truncated"] += sum(len(c) > room for c in contexts)
        contexts = [middle_truncate(c, room) for c in contexts]
        for prefix, cols in by_prefix.items():
            for start in range(0, len(contexts), self.batch_size):
                chunk = [c + list(prefix) for c in contexts[start:start + self.batch_size]]
                logp = self._last_logprobs(chunk, keep=len(prefix) + 1)  # (b, keep, V)
                for j in cols:
                    cand = candidates[j]
                    steps = logp[:, np.arange(len(cand)), cand]  # position t predicts cand[t]
                    out[start:start + len(chunk), j] = steps.sum(axis=1)
        return out

    def _last_logprobs(self, rows: list[list[int]], keep: int) -> np.ndarray:
        """Log-softmax of the last ``keep`` positions' logits for left-padded ``rows``: (b, keep, V)."""
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = self.policy.device
        kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}
        model = self.policy.model
        with torch.inference_mode():
            if self._keep_logits is not False:
                try:
                    logits = model(**kwargs, logits_to_keep=keep).logits
                    self._keep_logits = True
                except TypeError:
                    if self._keep_logits:
                        raise
                    self._keep_logits = False
            if self._keep_logits is False:
                logits = model(**kwargs).logits
            self.stats["forward_passes"] += 1
            logits = logits[:, -keep:, :].float()
            return torch.log_softmax(logits, dim=-1).cpu().numpy().astype(np.float64)


# ============================================================================= openai-compatible ==
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_RATING_LOOSE = re.compile(r"Rating:\s*\[?\s*(\d+(?:\.\d+)?)")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def parse_verdict(text: str) -> float:
    """P(first answer better) from a reply: [[A]] -> 1, [[B]] -> 0, [[C]] -> 0.5; NaN when the reply
    holds no verdict or contradictory ones."""
    found = set(_VERDICT.findall(text))
    if len(found) != 1:
        return math.nan
    return {"A": 1.0, "B": 0.0, "C": 0.5}[found.pop()]


def parse_rating(text: str) -> float:
    """The last ``[[x]]`` (or ``Rating: x``) in a reply when 1 <= x <= 10, else NaN."""
    found = _RATING.findall(text) or _RATING_LOOSE.findall(text)
    if not found:
        return math.nan
    value = float(found[-1])
    return value if 1.0 <= value <= 10.0 else math.nan


class JudgeRequestError(Exception):
    """One request's failure; ``reason`` is the stats key suffix (``failed_<reason>``), ``retry``
    whether another try may help. The message is the reason only: never a server text or a key."""

    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.reason, self.retry = reason, retry


class OpenAICompatibleJudge:
    """A judge behind an OpenAI-style chat-completions endpoint (OpenAI, vLLM's server, ...).

    base_url:     e.g. ``http://localhost:8000/v1`` (requests go to ``{base_url}/chat/completions``)
    model:        the model name the server expects
    api_key_env:  NAME of the environment variable holding the API key (None: no Authorization header)
    timeout_s:    seconds per request; max_retries further tries after a timeout, connection error,
                  408/429/5xx, with backoff_s * 2**attempt seconds in between (capped at 30 s)
    max_requests: requests this judge may send in its life (one run); past it items get NaN
    max_tokens:   reply length cap; concurrency: requests in flight at once
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, timeout_s: float = 120.0,
                 max_retries: int = 3, backoff_s: float = 1.0, max_requests: int | None = None,
                 max_tokens: int = 1024, concurrency: int = 8) -> None:
        self.base_url = self._check_url(base_url)
        if not isinstance(model, str) or not model:
            raise ConfigError(f"openai-compatible: model must be a non-empty string, got {model!r}")
        if api_key_env is not None:
            if not isinstance(api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
                raise ConfigError("openai-compatible: api_key_env must be the NAME of an environment variable "
                                  "(letters, digits, underscores), not the key itself")
            if not os.environ.get(api_key_env):
                # the name is not echoed: a key pasted into api_key_env by mistake must not land in logs
                raise ConfigError("openai-compatible: the environment variable named by api_key_env is not set "
                                  "or empty (api_key_env takes the variable's NAME; export the key in it)")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ConfigError(f"openai-compatible: timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        if isinstance(backoff_s, bool) or not isinstance(backoff_s, (int, float)) or not backoff_s >= 0:
            raise ConfigError(f"openai-compatible: backoff_s must be a number of seconds >= 0, got {backoff_s!r}")
        for key, value, low in (("max_retries", max_retries, 0), ("max_tokens", max_tokens, 1),
                                ("concurrency", concurrency, 1), ("max_requests", max_requests, 0)):
            if value is None and key == "max_requests":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"openai-compatible: {key} must be an integer >= {low}, got {value!r}")
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = float(timeout_s), max_retries, float(backoff_s)
        self.max_requests, self.max_tokens, self.concurrency = max_requests, max_tokens, concurrency
        self.name = f"openai-compatible:{model}"
        self.stats: dict[str, int] = {"items": 0, "no_verdict": 0, "requests": 0, "retries": 0}
        self._lock = threading.Lock()
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        self._opener = build_opener(host)

    def __repr__(self) -> str:
        return (f"OpenAICompatibleJudge(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, max_requests={self.max_requests})")

    @staticmethod
    def _check_url(url: Any) -> str:
        parts = urllib.parse.urlsplit(url.strip()) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"openai-compatible: base_url must look like http://host:port/v1, got {url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ConfigError("openai-compatible: base_url must not carry credentials, a query or a fragment "
                              "(put the key in the environment variable named by api_key_env)")
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    # ---- Judge protocol -----------------------------------------------------------------------
    def compare(self, questions: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        check_compare_batch(self.name, questions, a, b)
        n = len(questions)
        user = [pair_body(q, x, y) for q, x, y in zip(questions, a, b)]
        user += [pair_body(q, y, x) for q, x, y in zip(questions, a, b)]
        firsts = self._ask_all(PAIR_SYSTEM, [u + "\n\n" + PAIR_VERDICT_API for u in user], parse_verdict)
        out = swap_average(firsts[:n], firsts[n:])  # NaN when either order has no verdict
        self._count(out)
        return out

    def grade(self, questions: Sequence[str], answers: Sequence[str],
              references: Sequence[str | None]) -> np.ndarray:
        check_grade_batch(self.name, questions, answers, references)
        user = [grade_body(q, x, r) + "\n\n" + GRADE_VERDICT_API for q, x, r in zip(questions, answers, references)]
        out = self._ask_all(GRADE_SYSTEM, user, parse_rating)
        self._count(out)
        return out

    def _count(self, out: np.ndarray) -> None:
        with self._lock:
            self.stats["items"] += int(out.size)
            self.stats["no_verdict"] += int(np.isnan(out).sum())

    # ---- requests -----------------------------------------------------------------------------
    def _ask_all(self, system: str, users: list[str], parse: Callable[[str], float]) -> np.ndarray:
        def one(user: str) -> float:
            try:
                text = self.chat(system, user)
            except JudgeRequestError as exc:
                self._bump(f"failed_{exc.reason}")
                return math.nan
            value = parse(text)
            if math.isnan(value):
                self._bump("failed_unparseable")
            return value

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return np.array(list(pool.map(one, users)), dtype=np.float64)

    def _bump(self, key: str, by: int = 1) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + by

    def _take_budget(self) -> bool:
        with self._lock:
            if self.max_requests is not None and self.stats["requests"] >= self.max_requests:
                return False
            self.stats["requests"] += 1
            return True

    def chat(self, system: str, user: str) -> str:
        """One judged prompt: the reply text (API key redacted); raises :class:`JudgeRequestError`
        (whose ``reason`` names the stats key) when the retries or the budget run out."""
        body = json.dumps({
            "model": self.model, "temperature": 0.0, "max_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            if not self._take_budget():
                raise JudgeRequestError("budget", retry=False)
            try:
                return self._post(body)
            except JudgeRequestError as exc:
                if not exc.retry or attempt == self.max_retries:
                    raise
                self._bump("retries")
                time.sleep(min(30.0, self.backoff_s * 2 ** attempt))
        raise AssertionError("unreachable")

    def _key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise JudgeRequestError("missing_key", retry=False)
        return key

    def redact(self, text: str) -> str:
        """``text`` with the API key (if the server echoed it) replaced by ``***``."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, "***") if key else text

    def _post(self, body: bytes) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "rmroute-judge"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.base_url + "/chat/completions", data=body, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            raise JudgeRequestError(f"http_{exc.code}", retry=exc.code in RETRY_STATUSES) from None
        except TimeoutError:
            raise JudgeRequestError("timeout", retry=True) from None
        except urllib.error.URLError as exc:
            timed_out = isinstance(exc.reason, (TimeoutError, socket.timeout))
            raise JudgeRequestError("timeout" if timed_out else "connection", retry=True) from None
        except (ConnectionError, OSError):
            raise JudgeRequestError("connection", retry=True) from None
        try:
            content = json.loads(raw.decode("utf-8"))["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeRequestError("bad_response", retry=False) from None
        if not isinstance(content, str):
            raise JudgeRequestError("bad_response", retry=False)
        return self.redact(content)


# ===================================================================================== rm-judge ==
class RMJudge:
    """A reward model from the pool as the judge: compare = sigmoid(s_A - s_B), grade = 1 + 9 sigmoid(s).

    ``reward_model`` is a plugin ref (:func:`rmroute.harness.core.plugins.parse_ref`): a registered
    RM name or ``{"name": ..., "params": {...}}``. References are not used (an RM scores (prompt,
    response) only).
    """

    def __init__(self, reward_model: str | dict[str, Any]) -> None:
        name, params = parse_ref(reward_model, "rm-judge: reward_model")
        self.rm = create("reward_model", name, **params)
        self.name = f"rm-judge:{name}"
        self.stats: dict[str, int] = {"items": 0, "no_verdict": 0, "rm_abstained": 0}

    def __repr__(self) -> str:
        return f"RMJudge(reward_model={self.rm.name!r})"

    def _score(self, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        scores = np.asarray(self.rm.score(list(questions), list(answers)), dtype=np.float64)
        if scores.shape != (len(answers),):
            raise ValueError(f"{self.name}: the RM returned shape {scores.shape} for {len(answers)} answers")
        self.stats["rm_abstained"] += int(np.isnan(scores).sum())
        return scores

    def compare(self, questions: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        check_compare_batch(self.name, questions, a, b)
        out = sigmoid(self._score(questions, a) - self._score(questions, b))
        self._count(out)
        return out

    def grade(self, questions: Sequence[str], answers: Sequence[str],
              references: Sequence[str | None]) -> np.ndarray:
        check_grade_batch(self.name, questions, answers, references)
        out = 1.0 + 9.0 * sigmoid(self._score(questions, answers))
        self._count(out)
        return out

    def _count(self, out: np.ndarray) -> None:
        self.stats["items"] += int(out.size)
        self.stats["no_verdict"] += int(np.isnan(out).sum())
