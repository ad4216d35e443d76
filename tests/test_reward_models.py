"""Reward-model backends, each checked against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmroute.harness.core.testing import check_reward_model
from rmroute.reward_models.heuristics import LengthRM, LexicalOverlapRM
from rmroute.reward_models.hf import HFLogLikRM, HFSeqClsRM, TruncationWarning
from rmroute.reward_models.verifier import MathVerifierRM, final_number
from tests.tiny_models import build_causal_lm, build_seqcls

PROMPTS = ["what is two plus two ?", "why is the cat good", "explain the capital of france", "yes"]
RESPONSES = ["four", "because it is a good cat , so it is good", "paris", "no no no no no no no no no no no no"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "seqcls_chat": build_seqcls(root / "seqcls_chat", chat=True, seed=0),
        "seqcls_plain": build_seqcls(root / "seqcls_plain", chat=False, seed=1),
        "seqcls_other": build_seqcls(root / "seqcls_other", chat=True, seed=2),
        "lm": build_causal_lm(root / "lm", chat=False, seed=3),
        "lm_chat": build_causal_lm(root / "lm_chat", chat=True, seed=3),
    }


def direct_seqcls(folder, text, add_special_tokens):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    ids = tok(text, add_special_tokens=add_special_tokens, return_tensors="pt")
    with torch.no_grad():
        return float(model(**ids).logits[0, 0])


def test_seqcls_chat_template_and_batching(tiny):
    rm = HFSeqClsRM(str(tiny["seqcls_chat"]), batch_size=2)
    scores = rm.score(PROMPTS, RESPONSES)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    texts, special = rm.texts(PROMPTS[:1], RESPONSES[:1])
    assert texts == ["<|user|> what is two plus two ? <|end|> <|assistant|> four <|end|> "] and special is False
    # each item alone, unpadded, straight through transformers: same scores in the same order
    expected = [direct_seqcls(tiny["seqcls_chat"], rm.texts([p], [r])[0][0], False) for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


def test_seqcls_without_template_follows_trl(tiny):
    rm = HFSeqClsRM(str(tiny["seqcls_plain"]))
    texts, special = rm.texts(["what is"], [" four"])
    assert texts == ["what is four[EOS]"] and special is True
    scores = rm.score(PROMPTS, RESPONSES)
    expected = [direct_seqcls(tiny["seqcls_plain"], p + r + "[EOS]", True) for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


def test_truncation_is_reported(tiny):
    rm = HFSeqClsRM(str(tiny["seqcls_chat"]), max_length=12)
    with pytest.warns(TruncationWarning, match=r"2 of 4 input\(s\) longer than max_length=12"):
        scores = rm.score(PROMPTS, RESPONSES)
    assert rm.truncated == 2 and np.isfinite(scores).all()
    # left truncation keeps the end: the score equals the model on the last 12 tokens
    tok_ids = rm._tokenizer(rm.texts(PROMPTS[3:], RESPONSES[3:])[0], add_special_tokens=False)["input_ids"][0]
    import torch
    with torch.no_grad():
        direct = float(rm._model(input_ids=torch.tensor([tok_ids[-12:]])).logits[0, 0])
    assert math.isclose(scores[3], direct, rel_tol=1e-4, abs_tol=1e-5)


def test_safetensors_only_unless_allowed(tiny, tmp_path):
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    # a checkpoint stored only as a pickle (pytorch_model.bin), as older hub models are
    legacy = tmp_path / "legacy"
    shutil.copytree(tiny["seqcls_chat"], legacy)
    state = AutoModelForSequenceClassification.from_pretrained(tiny["seqcls_chat"]).state_dict()
    (legacy / "model.safetensors").unlink()
    torch.save(state, legacy / "pytorch_model.bin")
    with pytest.raises(Exception, match="safetensors"):
        HFSeqClsRM(str(legacy)).score(PROMPTS[:1], RESPONSES[:1])
    allowed = HFSeqClsRM(str(legacy), allow_pickle=True).score(PROMPTS[:2], RESPONSES[:2])
    np.testing.assert_allclose(allowed, HFSeqClsRM(str(tiny["seqcls_chat"])).score(PROMPTS[:2], RESPONSES[:2]), rtol=1e-5)


def test_identity_tracks_weights_and_remote_code_is_off(tiny):
    a, b = HFSeqClsRM(str(tiny["seqcls_chat"])), HFSeqClsRM(str(tiny["seqcls_other"]))
    assert a.identity() != b.identity()
    assert a.identity() == HFSeqClsRM(str(tiny["seqcls_chat"])).identity()
    assert a._load_kwargs()["trust_remote_code"] is False and a._load_kwargs()["use_safetensors"] is True


def direct_loglik(folder, prefix_ids, resp_ids):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = torch.tensor([prefix_ids + resp_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    total = 0.0
    for j, tok in enumerate(resp_ids):  # token at position len(prefix)+j is predicted from the one before
        row = logits[len(prefix_ids) + j - 1]
        total += float(row[tok] - torch.logsumexp(row, 0))
    return total / len(resp_ids)


@pytest.mark.parametrize("which", ["lm", "lm_chat"])
def test_loglik_matches_token_by_token_sum(tiny, which):
    rm = HFLogLikRM(str(tiny[which]), batch_size=3)
    responses = RESPONSES[:3] + [""]
    scores = rm.score(PROMPTS, responses)
    assert np.isnan(scores[3])  # an empty response abstains
    tok = rm._tokenizer
    for i in range(3):
        prefix = tok(rm.prefix(PROMPTS[i]), add_special_tokens=which == "lm")["input_ids"]
        resp = tok(responses[i], add_special_tokens=False)["input_ids"]
        assert math.isclose(scores[i], direct_loglik(tiny[which], prefix, resp), rel_tol=1e-4, abs_tol=1e-5)
    if which == "lm_chat":
        assert rm.prefix("hi").endswith("<|assistant|> ")


def test_hf_backends_pass_conformance(tiny):
    check_reward_model(HFSeqClsRM, model=str(tiny["seqcls_chat"]))
    check_reward_model(HFLogLikRM, model=str(tiny["lm"]))


def test_heuristics():
    assert LengthRM().score(["p"], ["one two  three"]).tolist() == [3.0]
    rm = LexicalOverlapRM()
    s = rm.score(["What is the capital of France?", "the of"], ["Paris is the capital.", "x"])
    assert s[0] == pytest.approx(1 / 2)  # content words {capital, france}; the response repeats 'capital'
    assert np.isnan(s[1])  # a prompt of stopwords only: abstain
    check_reward_model(LexicalOverlapRM)


@pytest.mark.parametrize("text, value", [
    ("so she has 3 + 4 = 7 apples.\n#### 7", 7.0),
    ("The answer is $1,234.50.", 1234.5),
    ("first 3, then 5, finally \\boxed{12}", 12.0),
    ("he loses 2 and ends with -4", -4.0),
    ("no digits here", None),
    ("Final answer: 0.5 of them", 0.5),
])
def test_final_number(text, value):
    assert final_number(text) == value


def test_math_verifier():
    rm = MathVerifierRM(references={"q1": "#### 72"})
    rm.prepare([{"prompt": "q2", "metadata": {"reference": 5}}, {"prompt": "q3", "metadata": {}}])
    s = rm.score(["q1", "q1", "q2", "q3", "q2"], ["... #### 72", "it is 71", "5.0", "#### 1", "no number"])
    np.testing.assert_array_equal(s, [1.0, 0.0, 1.0, np.nan, np.nan])
    assert rm.key_extra("q1") == "72.0" and rm.key_extra("q3") == ""
    with pytest.raises(ValueError, match="has no number"):
        MathVerifierRM(references={"q": "seventy"})
    check_reward_model(MathVerifierRM, references={p: "1" for p in ["What is 2 + 3?", "Name a prime number."]})
