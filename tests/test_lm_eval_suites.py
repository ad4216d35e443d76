"""The lm-eval suites ``gsm8k`` and ``mmlu``: task YAMLs, data and few-shot pools, the metrics
against hand computations, per-sample logs, and the errors for bad data, devices and params.

Independent references: MMLU log-likelihoods from a direct forward pass of the tiny model; GSM8K
correctness worked out by hand for fixed outputs; Wilson intervals from scipy; data counts and
pool membership from reading the raw source files with ``json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from lm_eval.api.model import LM

from rmroute.harness.core.errors import ConfigError
from rmroute.suites import lm_eval_suites as L
from rmroute.harness.assets import DataError, cache_root, pypi_path

LETTERS = "ABCD"


# ------------------------------------------------------------------------------------ fixtures ----

@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A private cache for the normalized files; the pinned PyPI downloads stay shared (symlink)."""
    shared = cache_root() / "pypi"
    shared.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("rmroute-cache")
    (root / "pypi").symlink_to(shared, target_is_directory=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("RMROUTE_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def policy():
    import torch

    torch.set_num_threads(1)
    from rmroute.harness.pipelines.policy import load_policy

    return load_policy({"model": "tiny"}, device="cpu")


def raw_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def mmlu_raw() -> dict[str, list[dict]]:
    """The raw MMLU file's records per subject, in file order (header rows dropped)."""
    by_subject = defaultdict(list)
    for rec in raw_jsonl(pypi_path(L.MMLU_SOURCE)):
        if rec["question"] != "question":
            by_subject[rec["topic"]].append(rec)
    return by_subject


def read_samples(path: str | Path) -> list[dict]:
    return raw_jsonl(Path(path))


def wilson_ref(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


# -------------------------------------------------------------------------- YAMLs and the data ----

def test_yamls_load_through_task_manager_include_path():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(L.TASKS_DIR), include_defaults=False)
    assert {"rmroute_gsm8k", "rmroute_mmlu"} <= set(tm.all_subtasks)
    gsm = tm.task_index["rmroute_gsm8k"].cfg
    assert (gsm["dataset_path"], gsm["output_type"], gsm["num_fewshot"]) == ("json", "generate_until", 5)
    assert [f["name"] for f in gsm["filter_list"]] == ["strict-match", "flexible-extract"]
    mmlu = tm.task_index["rmroute_mmlu"].cfg
    assert (mmlu["output_type"], mmlu["doc_to_choice"], mmlu["fewshot_config"]["sampler"]) == (
        "multiple_choice", ["A", "B", "C", "D"], "first_n")


def test_gsm8k_task_holds_out_the_pool():
    (task,) = L.Gsm8kSuite().plan().tasks
    raw = raw_jsonl(pypi_path(L.GSM8K_SOURCE))
    test, pool = list(task.test_docs()), list(task.fewshot_docs())
    assert len(raw) == 1319 and len(test) == 1319 - 8
    assert [d["id"] for d in pool] == [f"gsm8k:{i}" for i in range(8)]
    assert [d["question"] for d in pool] == [r["question"] for r in raw[:8]]
    assert test[0]["question"] == raw[8]["question"] and test[-1]["answer"] == raw[-1]["answer"]
    assert not {d["question"] for d in pool} & {d["question"] for d in test}


def test_mmlu_data_per_subject_and_pool(mmlu_raw):
    files = L.prepare_mmlu(pypi_path(L.MMLU_SOURCE))
    assert sorted(files) == sorted(mmlu_raw) and len(files) == 57
    n_test = sum(len(raw_jsonl(Path(f["test"]))) for f in files.values())
    assert sum(len(v) for v in mmlu_raw.values()) == 14042 and n_test == 14042 - 57 * 5
    (task,) = L.MmluSuite(subjects=["anatomy"]).plan().tasks
    dev, test = list(task.fewshot_docs()), list(task.test_docs())
    want = mmlu_raw["anatomy"]
    assert [d["question"] for d in dev] == [r["question"] for r in want[:5]]
    assert [d["question"] for d in test] == [r["question"] for r in want[5:]]
    assert [LETTERS[d["answer"]] for d in test] == [r["correct_answer"] for r in want[5:]]


# ------------------------------------------------------------------- MMLU: log-likelihood choice ----

@pytest.fixture(scope="module")
def mmlu_run(policy, tmp_path_factory):
    suite = L.MmluSuite(n_shot=1, limit=3, subjects=["abstract_algebra", "anatomy"], chat_template=False, batch_size=4)
    out = tmp_path_factory.mktemp("mmlu")
    return suite.evaluate(policy, None, None, out, np.random.default_rng(0)), out


def _prompt(subject: str, rec: dict) -> str:
    opts = "".join(f"\n{c}. {rec[f'answer_{c.lower()}'].strip()}" for c in LETTERS)
    return f"{rec['question'].strip()}{opts}\nAnswer:"


def _loglik(policy, context: str, continuation: str) -> float:
    """log P(continuation | context) from one forward pass: sum of the continuation tokens' log-probs."""
    import torch

    tok = policy.tokenizer
    ctx = tok.encode(context, add_special_tokens=False)
    ids = tok.encode(context + continuation, add_special_tokens=False)
    assert ids[: len(ctx)] == ctx and len(ids) <= policy.model.config.max_position_embeddings
    with torch.no_grad():
        logp = torch.log_softmax(policy.model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return float(sum(logp[t - 1, ids[t]] for t in range(len(ctx), len(ids))))


def test_mmlu_choice_is_the_argmax_of_hand_computed_logliks(policy, mmlu_run, mmlu_raw):
    result, out = mmlu_run
    rows = read_samples(result.samples)
    assert Path(result.samples).parent == out and len(rows) == 6
    right = []
    for row in rows:
        subject = row["doc"]["subject"]
        shot, rec = mmlu_raw[subject][0], mmlu_raw[subject][5 + row["doc_id"]]  # pool = first 5, 1 shot
        context = (f"The following are multiple choice questions (with answers) about {subject}.\n\n"
                   f"{_prompt(subject, shot)} {shot['correct_answer']}\n\n{_prompt(subject, rec)}")
        assert row["arguments"] == [[context, f" {c}"] for c in LETTERS]
        lls = [_loglik(policy, context, f" {c}") for c in LETTERS]
        assert [r[0][0] for r in row["resps"]] == pytest.approx(lls, rel=1e-4, abs=1e-4)
        hand = LETTERS[int(np.argmax(lls))] == rec["correct_answer"]
        assert row["acc"] == float(hand)
        right.append(hand)
    assert 0 < sum(right) < len(right)  # this seed gets some right and some wrong: the check can fail
    assert result.n_items == 6 and result.metrics == {"acc": pytest.approx(sum(right) / 6)}
    assert result.ci["acc"] == pytest.approx(wilson_ref(sum(right), 6))
    assert result.flags["n_shot"] == 1 and result.flags["limit"] == 3 and result.flags["chat_template"] is False
    saved = json.loads((out / "lm_eval_results.jsonl").read_text())
    assert saved["results"]["rmroute_mmlu_anatomy"]["acc,none"] == pytest.approx(
        np.mean([r["acc"] for r in rows if r["doc"]["subject"] == "anatomy"]))


# ---------------------------------------------------------------------------- GSM8K: exact match ----

class ScriptedLM(LM):
    """An lm-eval LM that answers each GSM8K question with a fixed string (no model)."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers, self.prompts = answers, []

    def generate_until(self, requests):
        self.prompts += [r.args[0] for r in requests]
        return [self.answers[r.args[0].rsplit("Question: ", 1)[1].removesuffix("\nAnswer:")] for r in requests]

    def loglikelihood(self, requests):
        raise AssertionError("GSM8K asks for generations only")

    def loglikelihood_rolling(self, requests):
        raise AssertionError("GSM8K asks for generations only")


# (question, reference answer, fixed model output, strict-match right?, flexible-extract right?)
CASES = [
    ("Q1 drive?", "3*60=180 and 180-135=45\n#### 45", "180 - 135 = 45 miles.\n#### 45", True, True),
    ("Q2 apples?", "6*7=42\n#### 42", "The answer is 41", False, False),
    ("Q3 money?", "10*100=1000\n#### 1000", "He has 1,000 dollars.\n#### 1,000", True, True),
    ("Q4 cats?", "3+4=7\n#### 7", "The answer is 7.", False, True),
    ("Q5 eggs?", "9*2=18\n#### 18", "She makes $18.\n#### $18", False, True),
]


@pytest.fixture(scope="module")
def gsm8k_file(tmp_path_factory) -> Path:
    pool = [{"question": f"Pool {i}: what is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(8)]
    path = tmp_path_factory.mktemp("gsm8k-data") / "gsm8k.jsonl"
    rows = pool + [{"question": q, "answer": a} for q, a, *_ in CASES]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_exact_match_on_fixed_outputs(gsm8k_file, tmp_path):
    lm = ScriptedLM({q: out for q, _, out, *_ in CASES})
    suite = L.Gsm8kSuite(n_shot=2, source=f"file:{gsm8k_file}")
    result = suite.run(lm, tmp_path, np.random.default_rng(0), chat=False)
    strict = [s for *_, s, _ in CASES]
    flexible = [f for *_, f in CASES]
    rows = read_samples(result.samples)
    assert len(rows) == 2 * len(CASES)
    by = {(r["filter"], r["doc"]["question"]): r["exact_match"] for r in rows}
    assert [by[("strict-match", q)] for q, *_ in CASES] == [float(x) for x in strict]
    assert [by[("flexible-extract", q)] for q, *_ in CASES] == [float(x) for x in flexible]
    assert result.metrics == {"acc": pytest.approx(2 / 5), "acc_flexible": pytest.approx(4 / 5)}
    assert result.n_items == 5
    assert result.ci["acc"] == pytest.approx(wilson_ref(2, 5)) and result.ci["acc_flexible"] == pytest.approx(wilson_ref(4, 5))
    # two shots, the pool's first two in order, then the question; nothing from the evaluated items
    first = lm.prompts[0]
    assert first.startswith("Question: Pool 0: what is 0 + 1?\nAnswer: 0 + 1 = 1\n#### 1\n\nQuestion: Pool 1:")
    assert first.count("Question: ") == 3 and "Pool 2" not in first


def test_gsm8k_end_to_end_on_the_tiny_policy(policy, tmp_path):
    import re

    policy.model.train()
    suite = L.Gsm8kSuite(n_shot=1, limit=2, max_gen_toks=8, batch_size=2)
    result = suite.evaluate(policy, None, None, tmp_path, np.random.default_rng(1))
    assert policy.model.training  # HFLM's eval() is undone
    rows = read_samples(result.samples)
    assert Path(result.samples) == tmp_path / "samples.jsonl" and len(rows) == 4
    assert sorted({r["doc"]["id"] for r in rows}) == ["gsm8k:8", "gsm8k:9"]  # the pool (0-7) is not evaluated
    raw = raw_jsonl(pypi_path(L.GSM8K_SOURCE))
    prompt = rows[0]["arguments"][0][0]  # tiny's chat template, the shot as a user/assistant turn
    assert prompt.startswith(f"<|user|>Question: {raw[0]['question']}\nAnswer:<|end|><|assistant|>{raw[0]['answer']}<|end|>")
    for r in rows:  # exact match re-derived from the model's own output
        if r["filter"] == "strict-match":
            got = re.search(r"#### (-?[0-9.,]+)", r["resps"][0][0])
            gold = raw[int(r["doc"]["id"].split(":")[1])]["answer"].rsplit("#### ", 1)[1]
            assert r["exact_match"] == float(bool(got) and got.group(1).replace(",", "").rstrip(".") == gold)
    strict = [r["exact_match"] for r in rows if r["filter"] == "strict-match"]
    assert result.n_items == 2 and result.metrics["acc"] == pytest.approx(np.mean(strict))
    assert result.flags["chat_template"] is True and result.flags["acc_filter"] == "strict-match"
    saved = json.loads((tmp_path / "lm_eval_results.jsonl").read_text())
    assert saved["n-samples"]["rmroute_gsm8k"] == {"original": 1311, "effective": 2}


# -------------------------------------------------------------------------------------- errors ----

@pytest.mark.parametrize("suite_cls, record, message", [
    (L.Gsm8kSuite, {"question": "q"}, "missing field 'answer'"),
    (L.Gsm8kSuite, {"question": "q", "answer": "it is 4"}, "must end in a '#### <number>' line"),
    (L.MmluSuite, {"question": "q", "answer_a": "1", "answer_b": "2", "answer_c": "3", "answer_d": "4",
                   "correct_answer": "E", "topic": "t"}, "'correct_answer' must be one of A, B, C, D"),
])
def test_bad_records_are_named_by_file_and_line(tmp_path, suite_cls, record, message):
    path = tmp_path / "bad.jsonl"
    good = '{"question": "fine", "answer": "#### 1"}\n' if suite_cls is L.Gsm8kSuite else ""
    path.write_text(good + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=rf"{path}:{2 if good else 1}: .*{message}"):
        suite_cls(source=f"file:{path}").plan()


def test_missing_file_small_data_and_unknown_subject(tmp_path, mmlu_raw):
    with pytest.raises(DataError, match="no such data file"):
        L.Gsm8kSuite(source=f"file:{tmp_path / 'nope.jsonl'}").plan()
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n" for i in range(8)))
    with pytest.raises(DataError, match="8 GSM8K records; need more than the 8"):
        L.Gsm8kSuite(source=f"file:{few}").plan()
    with pytest.raises(ConfigError, match=r"unknown subject\(s\) \['astrology'\].*known: abstract algebra, anatomy"):
        L.MmluSuite(subjects=["anatomy", "astrology"]).plan()


def test_hub_source_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="source 'hub' loads openai/gsm8k .* HF_HUB_OFFLINE .* source: pypi"):
        L.Gsm8kSuite(source="hub").plan()
    with pytest.raises(DataError, match="cais/mmlu"):
        L.MmluSuite(source="hub").plan()


@pytest.mark.parametrize("device, message", [
    ("cuda:0", "CUDA is not available"),
    ("meta", "policy.device is 'meta' but the policy's model is on 'cpu'"),
    ("banana", "not a torch device"),
])
def test_wrong_device_is_a_clear_error(policy, tmp_path, device, message):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    wrong = dataclasses.replace(policy, device=device)
    with pytest.raises(ConfigError, match=message):
        L.MmluSuite(limit=1).evaluate(wrong, None, None, tmp_path, np.random.default_rng(0))
    assert not (tmp_path / "samples.jsonl").exists()


def test_params_are_checked_and_the_plugins_registered():
    from rmroute.harness.core.errors import PluginError
    from rmroute.harness.core.plugins import create, get_registry
    from rmroute.harness.core.types import EvalSuite

    for name in ("gsm8k", "mmlu"):
        entry = get_registry().get("suite", name)
        suite = create("suite", name, limit=2)
        assert entry.metadata["kind"] == "eval" and isinstance(suite, EvalSuite) and suite.needs_judge is False
    with pytest.raises(ConfigError, match=r"suite gsm8k: params.n_shot: .*less than or equal to 8 \(got 9\)"):
        create("suite", "gsm8k", n_shot=9)
    with pytest.raises(ConfigError, match=r"suite mmlu: params.source: .*'pypi', 'hub' or 'file:"):
        create("suite", "mmlu", source="hf:cais/mmlu")
    with pytest.raises(PluginError, match="unexpected keyword argument 'shots'"):
        create("suite", "mmlu", shots=5)
