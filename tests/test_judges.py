"""Judges: hf-local (log-probability verdicts, position swap), openai-compatible (a local HTTP server
that answers, times out, returns garbage, fails then answers, echoes the key) and rm-judge."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.plugins import create
from rmroute.harness.pipelines.policy import Policy, PolicySpec, build_byte_tokenizer
from rmroute.suites.judges import (
    GRADES,
    HFLocalJudge,
    OpenAICompatibleJudge,
    RMJudge,
    middle_truncate,
    parse_rating,
    parse_verdict,
    swap_average,
)

KEY = "sk-test-Zq81-secret-value"


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ====================================================================== hf-local with fixed logits ==
class FixedLogitLM(torch.nn.Module):
    """A causal-LM stand-in whose next-token logits are set by a rule on the (unpadded) input.

    ``rule(tokens) -> (V,) logits`` gets the real tokens of a row (attention mask 1) and gives the
    logits used at every position, so the hand formula needs only the prompt's tokens.
    """

    def __init__(self, vocab: int, rule) -> None:
        super().__init__()
        self.vocab, self.rule = vocab, rule
        self.calls: list[dict[str, Any]] = []

    def forward(self, input_ids, attention_mask, position_ids=None, logits_to_keep=0):
        self.calls.append({"shape": tuple(input_ids.shape), "keep": logits_to_keep})
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            real = ids[mask.bool()].tolist()
            # left padding: the real tokens are the last ones, numbered from 0 by position_ids
            assert position_ids is None or position_ids[0, -1].item() >= 0
            rows.append(torch.as_tensor(self.rule(real), dtype=torch.float32).expand(input_ids.shape[1], -1))
        logits = torch.stack(rows)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return type("Out", (), {"logits": logits})()


@pytest.fixture(scope="module")
def byte_tok():
    return build_byte_tokenizer()


def fake_judge(tok, rule, **kw) -> HFLocalJudge:
    model = FixedLogitLM(len(tok), rule)
    policy = Policy(spec=PolicySpec(model="fixed-logits"), model=model, tokenizer=tok, device="cpu")
    return HFLocalJudge.from_policy(policy, **kw)


def tid(tok, text: str) -> int:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1
    return ids[0]


def test_constant_first_position_bias_cancels_exactly(byte_tok):
    a_id = tid(byte_tok, "A")

    def favour_first(tokens):
        logits = np.zeros(len(byte_tok))
        logits[a_id] = 2.5  # always "A": a pure first-position preference of 2.5 log-odds
        return logits

    judge = fake_judge(byte_tok, favour_first)
    got = judge.compare(["Which is bigger?", "q2"], ["same answer", "short"], ["same answer", "a much longer answer"])
    assert got.tolist() == [0.5, 0.5]
    # one order alone would have said sigmoid(2.5) for the first answer: that is what the swap removes
    assert judge.policy.model.calls and sig(2.5) > 0.9


def test_swapped_probability_matches_the_hand_formula(byte_tok):
    b_id, z_id = tid(byte_tok, "B"), tid(byte_tok, "z")

    def first_z_position(tokens):
        logits = np.zeros(len(byte_tok))
        logits[b_id] = tokens.index(z_id) / 50.0 if z_id in tokens else 0.0
        return logits

    judge = fake_judge(byte_tok, first_z_position, batch_size=3)
    q, a, b = "Name a fruit.", "kiwi, I guess zz", "apple"

    def p_first(text: str) -> float:  # P(first better) = sigmoid(logit_A - logit_B)
        ids = byte_tok(text, add_special_tokens=False)["input_ids"]
        return sig(0.0 - ids.index(z_id) / 50.0)

    p_ab, p_ba = p_first(judge.compare_text(q, a, b)), p_first(judge.compare_text(q, b, a))
    assert p_ab != pytest.approx(1 - p_ba)  # the two orders really disagree here
    expected = (p_ab + (1.0 - p_ba)) / 2.0
    got = judge.compare([q, q], [a, b], [b, a])
    assert got[0] == pytest.approx(expected, abs=1e-6)
    assert got[1] == pytest.approx(1.0 - expected, abs=1e-6)
    assert swap_average(np.array([p_ab]), np.array([p_ba]))[0] == pytest.approx(expected)


def test_grade_is_the_expected_score_over_1_to_10(byte_tok):
    logits = np.random.default_rng(3).normal(size=len(byte_tok))
    judge = fake_judge(byte_tok, lambda tokens: logits)
    log_z = np.log(np.exp(logits).sum())
    lp = [sum(logits[t] - log_z for t in byte_tok(f"{k}]]", add_special_tokens=False)["input_ids"]) for k in GRADES]
    w = np.exp(np.array(lp) - max(lp))
    expected = float(np.dot(w / w.sum(), GRADES))
    got = judge.grade(["What is 2+2?", "Say hi."], ["4", "hi"], ["4", None])
    assert got == pytest.approx([expected, expected], abs=1e-6)
    assert "Reference answer" in judge.grade_text("q", "a", "r") and "Reference answer" not in judge.grade_text("q", "a", None)


# =================================================================== hf-local with the tiny Llama ==
@pytest.fixture(scope="module")
def tiny_judge() -> HFLocalJudge:
    torch.set_num_threads(1)
    return create("judge", "hf-local", model={"model": "tiny", "tiny": {"seed": 7}}, batch_size=2)


def manual_logprob(judge: HFLocalJudge, text: str, cont: str, max_length: int | None = None) -> float:
    """log p(cont | text) from one unpadded forward pass over text + cont (independent of batching)."""
    tok, model = judge.policy.tokenizer, judge.policy.model
    ctx = tok(text, add_special_tokens=True)["input_ids"]
    cand = tok(cont, add_special_tokens=False)["input_ids"]
    if max_length is not None and len(ctx) > max_length - len(cand):
        room = max_length - len(cand)
        ctx = ctx[: room // 4] + ctx[len(ctx) - (room - room // 4):]  # the middle goes
    ids = torch.tensor([ctx + cand])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return float(sum(logp[len(ctx) - 1 + j, t] for j, t in enumerate(cand)))


def test_batched_left_padded_scores_equal_unpadded_forward_passes(tiny_judge):
    texts = ["short", "a somewhat longer context here", "mid length text"]
    conts = ["A", "B", "10]]", "7]]"]
    cands = [tiny_judge.policy.tokenizer(c, add_special_tokens=False)["input_ids"] for c in conts]
    got = tiny_judge.continuation_logprobs(texts, cands)
    want = np.array([[manual_logprob(tiny_judge, t, c) for c in conts] for t in texts])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_real_judge_is_swap_consistent_and_in_range(tiny_judge):
    qs, a, b = ["What is 2+2?", "Name a colour."], ["4", "blue"], ["five", "the sky is often blue"]
    ab, ba = tiny_judge.compare(qs, a, b), tiny_judge.compare(qs, b, a)
    assert np.all((ab > 0) & (ab < 1))
    np.testing.assert_allclose(ab + ba, 1.0, atol=1e-9)  # P(A>B) + P(B>A) = 1 by construction
    g = tiny_judge.grade(qs, a, [None, "blue"])
    assert np.all((g >= 1) & (g <= 10))


def test_long_prompts_lose_their_middle_and_are_counted(tiny_judge):
    judge = HFLocalJudge.from_policy(tiny_judge.policy, max_length=40)
    text = "Question: " + "x" * 100 + " end"
    cand = judge.policy.tokenizer("A", add_special_tokens=False)["input_ids"]
    got = judge.continuation_logprobs([text], [cand])
    assert judge.stats["truncated"] == 1
    assert got[0, 0] == pytest.approx(manual_logprob(judge, text, "A", max_length=40), abs=1e-4)
    assert middle_truncate(list(range(10)), 8) == [0, 1, 4, 5, 6, 7, 8, 9]
    assert middle_truncate([1, 2], 8) == [1, 2]


def test_hf_local_bad_params_are_clear_errors(tiny_judge):
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        HFLocalJudge.from_policy(tiny_judge.policy, batch_size=0)
    with pytest.raises(ValueError, match="item 1: question, A and B must be strings"):
        tiny_judge.compare(["q", "q"], ["a", None], ["b", "c"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="hf-local judge: policy.model '/no/such/model'"):
        create("judge", "hf-local", model="/no/such/model")


# ============================================================================== openai-compatible ==
class JudgeServer(BaseHTTPRequestHandler):
    """Chat-completions stand-in; the first path segment picks a behaviour:

    ok       verdict [[A]]/[[B]] for the answer holding 'good', [[C]] otherwise; Rating 7 / 3 likewise
    first    always [[A]] (a judge with a pure first-position bias)
    slow     sleeps past the client's timeout
    garbage  200 with a body that is not JSON
    chatter  valid JSON, a reply without any verdict
    flaky    500 on the first request for each prompt, then as 'ok'
    echo     repeats the Authorization header it got, then [[A]]
    """

    seen: ClassVar[dict[str, int]] = {}
    auth: ClassVar[list[str]] = []
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        mode = self.path.strip("/").split("/")[0]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        with self.lock:
            self.auth.append(self.headers.get("Authorization", ""))
            n = self.seen[user] = self.seen.get(user, 0) + 1
        assert body["temperature"] == 0.0
        if mode == "slow":
            time.sleep(0.5)
        if mode == "garbage":
            return self._send(200, b"<html>not json")
        if mode == "flaky" and n == 1:
            return self._send(500, b'{"error": "overloaded"}')
        if mode == "chatter":
            text = "Both answers have merits; I cannot decide."
        elif mode == "first":
            text = "Answer A reads well. [[A]]"
        elif mode == "echo":
            text = f"You sent {self.headers.get('Authorization')}. [[A]]"
        elif "[Answer A]" in user:
            a = user.split("[Answer A]\n", 1)[1].split("\n[End of answer A]")[0]
            b = user.split("[Answer B]\n", 1)[1].split("\n[End of answer B]")[0]
            text = "Verdict: " + ("[[A]]" if "good" in a else "[[B]]" if "good" in b else "[[C]]")
        else:
            ans = user.split("[Answer]\n", 1)[1]
            text = "Fine. Rating: [[7]]" if "good" in ans.split("[End of answer]")[0] else "Rating: [[3]]"
        self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode())

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), JudgeServer)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def key_env(monkeypatch) -> str:
    monkeypatch.setenv("RMROUTE_TEST_JUDGE_KEY", KEY)
    return "RMROUTE_TEST_JUDGE_KEY"


def api_judge(server: str, mode: str, key_env: str | None = None, **kw: Any) -> OpenAICompatibleJudge:
    params = {"timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01, **kw}
    return create("judge", "openai-compatible", base_url=f"{server}/{mode}/v1", model="judge-x",
                  api_key_env=key_env, **params)


def test_api_judge_verdicts_ties_and_grades(server, key_env):
    judge = api_judge(server, "ok", key_env)
    got = judge.compare(["q1", "q2", "q3"], ["a good one", "meh", "same"], ["meh", "a good one", "same"])
    assert got.tolist() == [1.0, 0.0, 0.5]
    assert judge.grade(["q", "q"], ["good", "bad"], ["ref", None]).tolist() == [7.0, 3.0]
    assert judge.stats["requests"] == 8 and judge.stats["items"] == 5 and judge.stats["no_verdict"] == 0
    assert f"Bearer {KEY}" in JudgeServer.auth


def test_api_judge_first_position_bias_cancels(server):
    judge = api_judge(server, "first")
    assert judge.compare(["q", "q"], ["x", "good"], ["x", "bad"]).tolist() == [0.5, 0.5]


def test_api_judge_timeout_gives_nan_after_retries(server):
    judge = api_judge(server, "slow", timeout_s=0.2, max_retries=1)
    got = judge.compare(["q"], ["good"], ["bad"])
    assert np.isnan(got).all()
    assert judge.stats["failed_timeout"] == 2  # both orders timed out, each after 1 retry
    assert judge.stats["retries"] == 2 and judge.stats["requests"] == 4 and judge.stats["no_verdict"] == 1


def test_api_judge_garbage_and_unparseable_replies_are_counted(server):
    bad = api_judge(server, "garbage")
    assert np.isnan(bad.grade(["q"], ["a"], [None])).all()
    assert bad.stats["failed_bad_response"] == 1 and bad.stats["requests"] == 1  # not retried
    chatty = api_judge(server, "chatter")
    assert np.isnan(chatty.compare(["q"], ["a"], ["b"])).all()
    assert chatty.stats["failed_unparseable"] == 2


def test_api_judge_retries_a_500_then_succeeds(server):
    judge = api_judge(server, "flaky")
    assert judge.compare(["flaky question"], ["good"], ["bad"]).tolist() == [1.0]
    assert judge.stats["retries"] == 2 and judge.stats["requests"] == 4
    assert not any(k.startswith("failed_") for k in judge.stats)


def test_api_judge_budget_gives_nan_past_it(server):
    judge = api_judge(server, "ok", max_requests=3, concurrency=1)
    got = judge.compare(["b1", "b2"], ["good", "good"], ["bad", "bad"])
    assert judge.stats["requests"] == 3 and judge.stats["failed_budget"] == 1
    assert got[0] == 1.0 and np.isnan(got[1])  # the second pair lost one of its orders


def test_api_key_never_leaks(server, key_env, caplog):
    judge = api_judge(server, "echo", key_env)
    reply = judge.chat("system", "user text")
    assert KEY not in reply and "Bearer ***" in reply
    assert judge.compare(["q"], ["a"], ["b"]).tolist() == [0.5]
    for shown in (repr(judge), str(vars(judge)), json.dumps(judge.stats), caplog.text):
        assert KEY not in shown
    with pytest.raises(ConfigError) as err:  # the key pasted where the variable's name belongs
        api_judge(server, "ok", KEY)
    assert KEY not in str(err.value)
    with pytest.raises(ConfigError) as err:
        api_judge(server, "ok", "SKTESTKEYNOTSET0123")
    assert "SKTESTKEYNOTSET0123" not in str(err.value) and "not set" in str(err.value)


def test_api_judge_rejects_bad_config(server):
    with pytest.raises(ConfigError, match="base_url must look like"):
        create("judge", "openai-compatible", base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError, match="must not carry credentials"):
        create("judge", "openai-compatible", base_url="http://user:pw@localhost:8000/v1", model="m")
    with pytest.raises(ConfigError, match="timeout_s must be a number of seconds > 0"):
        api_judge(server, "ok", timeout_s=0)


@pytest.mark.parametrize("text, want", [("[[A]]", 1.0), ("so [[B]].", 0.0), ("[[C]]", 0.5), ("[[ A ]]", 1.0),
                                        ("[[A]] or [[B]]", math.nan), ("A is better", math.nan)])
def test_parse_verdict(text, want):
    got = parse_verdict(text)
    assert (math.isnan(got) and math.isnan(want)) or got == want


@pytest.mark.parametrize("text, want", [("Rating: [[7]]", 7.0), ("[[2]] then Rating: [[8.5]]", 8.5),
                                        ("Rating: 4", 4.0), ("Rating: [[11]]", math.nan), ("no idea", math.nan)])
def test_parse_rating(text, want):
    got = parse_rating(text)
    assert (math.isnan(got) and math.isnan(want)) or got == want


# ======================================================================================= rm-judge ==
def test_rm_judge_maths_on_the_length_rm():
    judge = create("judge", "rm-judge", reward_model="length")
    got = judge.compare(["q", "q"], ["one two three", "x"], ["one", "x y"])
    assert got == pytest.approx([sig(3 - 1), sig(1 - 2)])
    assert judge.grade(["q"], ["a b"], [None]) == pytest.approx([1 + 9 * sig(2.0)])


def test_rm_judge_abstention_is_nan_and_counted():
    judge: RMJudge = create("judge", "rm-judge",
                            reward_model={"name": "verifier-math", "params": {"references": {"2+3?": "5"}}})
    got = judge.compare(["2+3?", "unknown"], ["it is 5", "a"], ["it is 4", "b"])
    assert got[0] == pytest.approx(sig(1.0)) and np.isnan(got[1])
    assert judge.stats["no_verdict"] == 1 and judge.stats["rm_abstained"] == 2
    with pytest.raises(ConfigError, match="unknown keys"):
        create("judge", "rm-judge", reward_model={"name": "length", "param": {}})
