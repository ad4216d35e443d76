"""Score tables: the rmroute-score-table/1 format and the adapters from published layouts.

Every input file here is a small synthetic file in the published layout, written by the test;
expected margins are computed by hand from the raw records written in the test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rmroute.harness.assets import DataError
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.tables.adapters import (ADAPTERS, correct_side, load_adapter, pairwise_vote, reduce_steps,
                                             text_key)
from rmroute.harness.tables.format import Scorer, TableItem, build_table, read_table, scorer_margins, write_table


def local(source: str, sha256: str | None) -> Path:
    return Path(source)


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def jsonfile(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records))
    return path


# ---- JudgeBench ---------------------------------------------------------------------------------

PAIRS = [
    {"pair_id": "p1", "original_id": 7, "source": "mmlu-pro-law", "question": "Q1", "response_A": "r1a",
     "response_B": "r1b", "label": "A>B"},
    {"pair_id": "p2", "original_id": None, "source": "livebench-math", "question": "Q2", "response_A": "r2a",
     "response_B": "r2b", "label": "B>A"},
    {"pair_id": "p3", "original_id": None, "source": "livecodebench", "question": "Q3", "response_A": "r3a",
     "response_B": "r3b", "label": "A>B"},
    {"pair_id": "p4", "original_id": None, "source": "livebench-reasoning", "question": "Q4", "response_A": "r4a",
     "response_B": "r4b", "label": "B>A"},
    {"pair_id": "p5", "original_id": None, "source": "livebench-reasoning", "question": "Q5", "response_A": "r5a",
     "response_B": "r5b", "label": "A>B"},
]


def rm_record(pair_id: str, game1: list[float], game2: list[float], as_text: bool = False) -> dict:
    games = [{"judgment": {"scores": game1}, "decision": "A>B" if game1[0] > game1[1] else "B>A"},
             {"judgment": {"scores": game2}, "decision": "A>B" if game2[0] > game2[1] else "B>A"}]
    return {"pair_id": pair_id, "judge_name": "reward_model", "judgments": json.dumps(games) if as_text else games}


def judge_record(pair_id: str, d1: str | None, d2: str | None) -> dict:
    return {"pair_id": pair_id, "judge_name": "arena_hard",
            "judgments": [{"judgment": {"response": "..."}, "decision": d1}, {"judgment": {}, "decision": d2}]}


#: raw scores per pair: game 1 shows (A, B), game 2 shows (B, A); game 2 is deliberately not an
#: exact swap for p1 so that the mean over the games matters
RM_GAMES = {"p1": ([2.0, 1.0], [0.5, 3.0]), "p2": ([1.0, 4.0], [4.0, 1.0]), "p3": ([-1.0, -1.0], [-1.0, -1.0]),
            "p4": ([0.25, 0.0], [0.0, 0.25]), "p5": ([5.0, 6.0], [7.0, 4.0])}
#: verdicts per pair (game 1, game 2): agree, tie + decision, disagree, one missing, both missing
JUDGE = {"p1": ("A>B", "B>A"), "p2": ("A=B", "A>>B"), "p3": ("A>B", "A>B"), "p4": ("B>A", None),
         "p5": (None, "garbled")}


def judgebench_files(tmp_path: Path) -> dict:
    pairs = jsonl(tmp_path / "pairs.jsonl", PAIRS)
    rm = jsonl(tmp_path / "rm.jsonl", [rm_record(p, *g, as_text=(p == "p2")) for p, g in RM_GAMES.items()])
    judge = jsonl(tmp_path / "judge.jsonl", [judge_record(p, *d) for p, d in JUDGE.items()])
    return {"name": "jb", "pairs": {"source": str(pairs), "sha256": "x"},
            "scorers": [{"name": "rm", "source": str(rm), "cost": 8, "cost_note": "8B"},
                        {"name": "judge", "source": str(judge), "cost": 200}]}


def test_judgebench_items_domains_groups_and_gold(tmp_path):
    table = load_adapter("judgebench", judgebench_files(tmp_path), local)
    assert [it.id for it in table.items] == ["p1", "p2", "p3", "p4", "p5"]
    assert [it.gold for it in table.items] == ["a", "b", "a", "b", "a"]
    assert [it.domain for it in table.items] == ["knowledge", "math", "coding", "reasoning", "reasoning"]
    assert table.items[0].metadata == {"source": "mmlu-pro-law", "original_id": 7}
    assert [it.group for it in table.items] == [text_key(q) for q in ("Q1", "Q2", "Q3", "Q4", "Q5")]
    assert (table.items[1].prompt, table.items[1].response_a, table.items[1].response_b) == ("Q2", "r2a", "r2b")
    assert [s.kind for s in table.scorers] == ["scalar", "verdict"] and table.costs == [8.0, 200.0]


def test_judgebench_scalar_is_the_mean_of_both_games_unswapped(tmp_path):
    table = load_adapter("judgebench", judgebench_files(tmp_path), local)
    for i, (pair, (g1, g2)) in enumerate(RM_GAMES.items()):
        a, b = (g1[0] + g2[1]) / 2, (g1[1] + g2[0]) / 2  # game 2 shows B first
        assert table.values[i, 0].tolist() == [a, b], pair
    # by hand: p1 a=(2+3)/2=2.5, b=(1+0.5)/2=0.75 -> +1.75; p5 a=(5+4)/2=4.5, b=(6+7)/2=6.5 -> -2
    assert table.margins()[:, 0].tolist() == [1.75, -3.0, 0.0, 0.25, -2.0]


def test_judgebench_verdict_orders_combine_as_the_format_states(tmp_path):
    table = load_adapter("judgebench", judgebench_files(tmp_path), local)
    values = table.values[:, 1]
    # game 2 shows (B, A): its "A>B" prefers response b (vote -1 in order ba)
    assert values[0].tolist() == [1.0, 1.0]          # A>B then B>A (= a in game 2): agree on a
    assert values[1].tolist() == [0.0, -1.0]         # tie, then A>>B in game 2 = b
    assert values[2].tolist() == [1.0, -1.0]         # A>B both games: a then b -> disagree
    assert values[3, 0] == -1.0 and math.isnan(values[3, 1])   # one order missing
    assert np.isnan(values[4]).all()                 # none and unparseable: absent
    margins = table.margins()[:, 1]
    assert margins[:4].tolist() == [1.0, -1.0, 0.0, -1.0] and math.isnan(margins[4])


def test_judgebench_mismatched_pair_ids_name_both_files(tmp_path):
    params = judgebench_files(tmp_path)
    short = jsonl(tmp_path / "short.jsonl", [rm_record(p, *g) for p, g in list(RM_GAMES.items())[:4]])
    params["scorers"][0]["source"] = str(short)
    with pytest.raises(DataError) as err:
        load_adapter("judgebench", params, local)
    assert "short.jsonl" in str(err.value) and "pairs.jsonl" in str(err.value) and "'p5'" in str(err.value)


@pytest.mark.parametrize("field,value,expect", [
    ("label", "A=B", "field 'label'"),
    ("label", None, "field 'label'"),
    ("source", "gsm8k", "field 'source'"),
])
def test_judgebench_bad_pair_names_file_line_and_field(tmp_path, field, value, expect):
    params = judgebench_files(tmp_path)
    bad = [dict(r) for r in PAIRS]
    bad[2][field] = value
    params["pairs"]["source"] = str(jsonl(tmp_path / "bad.jsonl", bad))
    with pytest.raises(DataError) as err:
        load_adapter("judgebench", params, local)
    assert f"bad.jsonl:3: {expect}" in str(err.value)


def test_judgebench_score_that_is_not_a_number(tmp_path):
    params = judgebench_files(tmp_path)
    recs = [rm_record(p, *g) for p, g in RM_GAMES.items()]
    recs[1]["judgments"][1]["judgment"]["scores"] = [1.0, "high"]
    params["scorers"][0]["source"] = str(jsonl(tmp_path / "rm_bad.jsonl", recs))
    with pytest.raises(DataError) as err:
        load_adapter("judgebench", params, local)
    assert "rm_bad.jsonl:2: field judgments[1].judgment.scores[1]: expected a number" in str(err.value)


# ---- RewardMATH ---------------------------------------------------------------------------------

P1, P2 = "Solve x+1=2.", "Compute 3*3."
#: two problems, each: the correct solution (listed second in P2's record) and three incorrect ones
REFS = {P1: ["human_to_GPT-4", "m1", "m2", "m2"], P2: ["m3", "human_to_GPT-4", "m1", "m4"]}
ORM = {P1: [0.9, 0.1, 0.95, None], P2: [0.2, 0.7, 0.7, 0.1]}
PRM = {P1: [[0.9, 0.8], [0.5, 0.4, 0.3], [0.99, 0.2], []], P2: [[0.5, 0.5], [0.6, 0.9], [1.0, 0.4], [0.3]]}


def math_file(path: Path, scores: dict, repeat_first: bool = False) -> Path:
    recs = [{"problem": p, "solution_reference": REFS[p], "score": scores[p]} for p in (P1, P2)]
    return jsonfile(path, recs + ([recs[0]] if repeat_first else []))


def pairwise_file(path: Path, letters: dict, shown: dict) -> Path:
    recs = [{"problem": p, "solution_reference": [r for r in REFS[p] if r != "human_to_GPT-4"],
             "score": letters[p], "chosen_position": shown[p]} for p in (P1, P2)]
    return jsonfile(path, recs)


def math_params(tmp_path: Path, **extra) -> dict:
    orm = math_file(tmp_path / "orm_reward.json", ORM, repeat_first=True)
    prm = math_file(tmp_path / "prm_reward.json", PRM)
    return {"name": "rmath", "scorers": [{"name": "orm", "source": str(orm), "cost": 7},
                                         {"name": "prm", "source": str(prm), "cost": 7}], **extra}


def test_prm_reductions_by_hand():
    steps = [0.5, 0.8, 0.25]
    assert reduce_steps(steps, "min") == 0.25
    assert reduce_steps(steps, "mean") == pytest.approx((0.5 + 0.8 + 0.25) / 3)
    assert reduce_steps(steps, "last") == 0.25 and reduce_steps([0.3, 0.9], "last") == 0.9
    assert reduce_steps(steps, "prod") == pytest.approx(0.1)


def _correct_and_incorrect(table, k: int) -> list[tuple[float, float]]:
    """(score of the correct solution, score of the incorrect one) per item, undoing the a/b placement."""
    out = []
    for i, it in enumerate(table.items):
        a, b = table.values[i, k]
        out.append((a, b) if it.gold == "a" else (b, a))
    return out


@pytest.mark.parametrize("how,reduced", [
    ("min", {P1: [0.8, 0.3, 0.2, None], P2: [0.6, 0.5, 0.4, 0.3]}),
    ("mean", {P1: [0.85, 0.4, 0.595, None], P2: [0.75, 0.5, 0.7, 0.3]}),
    ("last", {P1: [0.8, 0.3, 0.2, None], P2: [0.9, 0.5, 0.4, 0.3]}),
    ("prod", {P1: [0.72, 0.06, 0.198, None], P2: [0.54, 0.25, 0.4, 0.3]}),
])
def test_rewardmath_scalar_pairs_and_prm_reduce(tmp_path, how, reduced):
    """``reduced``: by hand from PRM, the correct solution first then the incorrect ones in order
    (P2's correct one is listed second in its record)."""
    table = load_adapter("rewardmath", math_params(tmp_path, prm_reduce=how), local)
    assert len(table.items) == 6 and {it.group for it in table.items} == {text_key(P1), text_key(P2)}
    assert [it.prompt for it in table.items] == [P1] * 3 + [P2] * 3
    assert [it.metadata["incorrect_source"] for it in table.items] == ["m1", "m2", "m2", "m3", "m1", "m4"]
    nan = float("nan")
    orm = [(0.9, 0.1), (0.9, 0.95), (0.9, nan), (0.7, 0.2), (0.7, 0.7), (0.7, 0.1)]
    assert np.allclose(_correct_and_incorrect(table, 0), orm, equal_nan=True)
    prm = [(r[0], x) for r in (reduced[P1], reduced[P2]) for x in r[1:]]
    prm = [(c, nan if x is None else x) for c, x in prm]
    assert np.allclose(_correct_and_incorrect(table, 1), prm, equal_nan=True)


def test_rewardmath_gold_follows_the_hash_rule_and_is_not_constant(tmp_path):
    table = load_adapter("rewardmath", math_params(tmp_path), local)
    assert [it.gold for it in table.items] == [correct_side(it.id) for it in table.items]
    assert {correct_side(f"item-{n}") for n in range(40)} == {"a", "b"}
    golds = [correct_side(f"{text_key(P1)}-{j}") for j in range(1, 200)]
    assert 60 < golds.count("a") < 140
    # the margin of the correct solution's side is + when it scored higher, whichever side it sits on
    signs = table.margins()[:, 0] * table.gold_signs()
    assert signs[0] > 0 and signs[1] < 0


def test_pairwise_vote_goes_in_the_order_shown():
    # correct at a, shown first: order ab; the judge picked it (letter == shown) -> a
    assert pairwise_vote("A", "A", "a") == ("ab", 1.0)
    assert pairwise_vote("B", "A", "a") == ("ab", -1.0)
    # correct at a, shown second: the pair was shown as (b, a) -> order ba
    assert pairwise_vote("B", "B", "a") == ("ba", 1.0)
    # correct at b, shown first: shown as (b, a) -> order ba; picking it is a vote for b
    assert pairwise_vote("A", "A", "b") == ("ba", -1.0)
    assert pairwise_vote("A", "B", "b") == ("ab", 1.0)
    assert pairwise_vote(None, "B", "b") == ("ab", None)


def test_rewardmath_pairwise_file(tmp_path):
    letters = {P1: ["A", "A", None], P2: ["B", "A", "A"]}
    shown = {P1: ["A", "B", "A"], P2: ["B", "B", "A"]}
    pw = pairwise_file(tmp_path / "j_pairwise_reward.json", letters, shown)
    params = math_params(tmp_path)
    params["scorers"].append({"name": "judge-pairwise", "source": str(pw), "cost": 200, "kind": "pairwise"})
    table = load_adapter("rewardmath", params, local)
    assert table.scorers[2].kind == "verdict"
    right = [letters[p][j] == shown[p][j] if letters[p][j] else None for p in (P1, P2) for j in range(3)]
    for i, it in enumerate(table.items):
        ab, ba = table.values[i, 2]
        p, j = (P1, i) if i < 3 else (P2, i - 3)
        correct_first = shown[p][j] == "A"
        in_ab = correct_first == (it.gold == "a")
        assert math.isnan(ba if in_ab else ab)          # only the order it was shown in is filled
        vote = ab if in_ab else ba
        if right[i] is None:
            assert math.isnan(vote)
        else:
            assert vote == (1.0 if right[i] == (it.gold == "a") else -1.0)
    correct = table.margins()[:, 2] * table.gold_signs()
    assert correct[[0, 1, 3, 4, 5]].tolist() == [1.0, -1.0, 1.0, -1.0, 1.0]


def test_rewardmath_direct_judge_range_and_domains(tmp_path):
    judge = math_file(tmp_path / "judge_reward.json", {P1: [9, -1, 3, 9], P2: [2, 8, 8, None]})
    domains = jsonfile(tmp_path / "dom.json", [{"problem": P1, "subject": "Algebra"},
                                               {"problem": "other", "feature": {"subject": "Geometry"}},
                                               {"problem": P2, "feature": {"type": "no subject"}}])
    params = {"name": "r", "domains": {"source": str(domains)},
              "scorers": [{"name": "judge", "source": str(judge), "cost": 200, "score_range": [1, 10]}]}
    table = load_adapter("rewardmath", params, local)
    pairs = _correct_and_incorrect(table, 0)
    assert math.isnan(pairs[0][1]) and pairs[1] == (9, 3) and pairs[2] == (9, 9)   # -1: absent
    assert pairs[3] == (8, 2) and math.isnan(pairs[5][1])                          # None: absent
    assert [it.domain for it in table.items] == ["Algebra"] * 3 + ["unknown"] * 3
    assert "1 problems without a subject" in table.description


def test_rewardmath_conflicting_repeat_and_mismatched_files(tmp_path):
    recs = json.loads(math_file(tmp_path / "a.json", ORM).read_text())
    conflict = jsonfile(tmp_path / "conflict_reward.json", recs + [{**recs[0], "score": [0, 0, 0, 0]}])
    with pytest.raises(DataError, match=r"conflict_reward.json\[2\]: problem .* repeats .*\[0\] with different values"):
        load_adapter("rewardmath", {"name": "r", "scorers": [{"name": "x", "source": str(conflict), "cost": 1}]}, local)
    fewer = jsonfile(tmp_path / "fewer_reward.json", recs[:1])
    params = math_params(tmp_path)
    params["scorers"][1]["source"] = str(fewer)
    with pytest.raises(DataError, match=r"fewer_reward.json and .*orm_reward.json hold different problems"):
        load_adapter("rewardmath", params, local)
    other = jsonfile(tmp_path / "other_reward.json", [recs[0], {**recs[1], "solution_reference": ["m3", "human_to_GPT-4", "m1", "m9"]}])
    params["scorers"][1]["source"] = str(other)
    with pytest.raises(DataError, match=r"other_reward.json\[1\] and .*orm_reward.json\[1\]: field 'solution_reference'"):
        load_adapter("rewardmath", params, local)


def test_rewardmath_score_that_is_not_a_number(tmp_path):
    bad = math_file(tmp_path / "bad_reward.json", {P1: [0.9, "x", 0.1, 0.2], P2: ORM[P2]})
    with pytest.raises(DataError, match=r"bad_reward.json\[0\]: field score\[1\]: expected a number"):
        load_adapter("rewardmath", {"name": "r", "scorers": [{"name": "x", "source": str(bad), "cost": 1}]}, local)
    bad = math_file(tmp_path / "bad2_reward.json", {P1: [[0.9, None], 0.5, 0.1, 0.2], P2: ORM[P2]})
    with pytest.raises(DataError, match=r"bad2_reward.json\[0\]: field score\[0\]\[1\]: expected a number"):
        load_adapter("rewardmath", {"name": "r", "scorers": [{"name": "x", "source": str(bad), "cost": 1}]}, local)


# ---- RewardBench math-prm -------------------------------------------------------------------------


def bench_orm(path: Path, scores: dict, names=("human_to_GPT-4", "modified_with_GPT-4")) -> Path:
    return jsonfile(path, [{"problem": p, "solution_reference": list(names), "score": s} for p, s in scores.items()])


def bench_prm(path: Path, steps: dict) -> Path:
    recs = []
    for n, (p, (subject, chosen, rejected)) in enumerate(steps.items()):
        for kind, sol in (("rejected", rejected), ("chosen", chosen)):
            recs.append({"problem": p, "eval_solution": [t for t, _ in sol], "subject": subject, "level": 1,
                         "output": {"step_scores": [s for _, s in sol]}, "problem_id": n, "solution_type": kind})
    return jsonfile(path, recs)


PRM_STEPS = {P1: ("Algebra", [("x=1", 0.9), ("done", 0.7)], [("x=2", 0.4)]),
             P2: ("Prealgebra", [("9", 0.6)], [("3*3", 0.8), ("=6", 0.1)])}


def test_rewardbench_orm_prm_texts_domains_and_groups(tmp_path):
    orm = bench_orm(tmp_path / "orm.json", {P2: [1.5, -2.0], P1: [0.0, 0.5]})
    orm2 = bench_orm(tmp_path / "orm2.json", {P1: [3.0, 1.0], P2: [1.0, 2.0]}, names=("chosen", "rejected"))
    prm = bench_prm(tmp_path / "prm.json", PRM_STEPS)
    params = {"name": "rb", "prm_reduce": "min", "scorers": [
        {"name": "orm", "source": str(orm), "cost": 8}, {"name": "orm2", "source": str(orm2), "cost": 8},
        {"name": "prm", "source": str(prm), "cost": 7}]}
    table = load_adapter("rewardbench-math-prm", params, local)
    assert [it.prompt for it in table.items] == [P2, P1]
    assert [it.group for it in table.items] == [text_key(P2), text_key(P1)]   # the same groups as rewardmath
    assert [it.domain for it in table.items] == ["Prealgebra", "Algebra"]
    for i, it in enumerate(table.items):
        assert it.gold == correct_side(it.id)
        chosen, rejected = ("9", "3*3\n=6") if it.prompt == P2 else ("x=1\ndone", "x=2")
        assert (it.response_a, it.response_b) == ((chosen, rejected) if it.gold == "a" else (rejected, chosen))
    expect = {P2: [(1.5, -2.0), (1.0, 2.0), (0.6, 0.1)], P1: [(0.0, 0.5), (3.0, 1.0), (0.7, 0.4)]}
    for i, it in enumerate(table.items):
        for k in range(3):
            a, b = table.values[i, k]
            assert ((a, b) if it.gold == "a" else (b, a)) == pytest.approx(expect[it.prompt][k])


def test_rewardbench_without_prm_has_no_texts_and_checks_problem_sets(tmp_path):
    orm = bench_orm(tmp_path / "orm.json", {P1: [0.0, 0.5], P2: [1.5, -2.0]})
    table = load_adapter("rewardbench-math-prm", {"name": "rb", "scorers": [{"name": "o", "source": str(orm), "cost": 1}]}, local)
    assert all(it.response_a is None and it.response_b is None and it.domain == "unknown" for it in table.items)
    one = bench_orm(tmp_path / "one.json", {P1: [0.0, 0.5]})
    with pytest.raises(DataError, match="one.json and .*orm.json hold different problems"):
        load_adapter("rewardbench-math-prm", {"name": "rb", "scorers": [{"name": "o", "source": str(orm), "cost": 1},
                                                                          {"name": "p", "source": str(one), "cost": 1}]}, local)
    recs = json.loads(bench_prm(tmp_path / "prm.json", PRM_STEPS).read_text())
    recs[2]["solution_type"] = "best"
    bad = jsonfile(tmp_path / "badprm.json", recs)
    with pytest.raises(DataError, match=r"badprm.json\[2\]: field 'solution_type'"):
        load_adapter("rewardbench-math-prm", {"name": "rb", "scorers": [{"name": "p", "source": str(bad), "cost": 1}]}, local)


# ---- params ---------------------------------------------------------------------------------------


def test_unknown_adapter_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        load_adapter("judgebanch", {}, local, where="pool.yaml: tables[0]")
    assert "pool.yaml: tables[0]" in str(err.value)
    assert all(name in str(err.value) for name in ADAPTERS)


@pytest.mark.parametrize("params,key", [
    ({"name": "x", "pairs": {"source": "p"}, "scorers": [{"name": "s", "source": "f", "cost": 1, "costt": 2}]},
     "params.scorers[0].costt"),
    ({"name": "x", "pairs": {"source": "p"}, "scorers": [{"name": "s", "source": "f"}]}, "params.scorers[0].cost"),
    ({"name": "x", "pairs": {"source": "p"}, "scorers": [{"name": "s", "source": "f", "cost": -1}]},
     "params.scorers[0].cost"),
    ({"name": "x", "scorers": [{"name": "s", "source": "f", "cost": 1}]}, "params.pairs"),
])
def test_bad_params_name_where_and_key(params, key):
    with pytest.raises(ConfigError) as err:
        load_adapter("judgebench", params, local, where="real.yaml:4: pool.tables[1]")
    assert f"real.yaml:4: pool.tables[1]: {key}" in str(err.value)


def test_bad_rewardmath_params():
    with pytest.raises(ConfigError, match=r"w: params.prm_reduce"):
        load_adapter("rewardmath", {"name": "x", "prm_reduce": "max", "scorers": [{"name": "s", "source": "f", "cost": 1}]},
                     local, where="w")
    with pytest.raises(ConfigError, match=r"w: params.scorers\[0\].kind"):
        load_adapter("rewardmath", {"name": "x", "scorers": [{"name": "s", "source": "f", "cost": 1, "kind": "verdict"}]},
                     local, where="w")
    with pytest.raises(ConfigError, match="scorer name 's' is used twice"):
        load_adapter("rewardmath", {"name": "x", "scorers": [{"name": "s", "source": "f", "cost": 1}] * 2}, local, where="w")


def test_files_are_opened_only_through_resolve(tmp_path):
    params = judgebench_files(tmp_path)
    seen = []

    def resolve(source, sha256):
        seen.append((Path(source).name, sha256))
        return Path(source)

    load_adapter("judgebench", params, resolve)
    assert seen == [("pairs.jsonl", "x"), ("rm.jsonl", None), ("judge.jsonl", None)]


# ---- the generic format ---------------------------------------------------------------------------


def small_table():
    items = [TableItem(id="i1", prompt="p1", gold="a", group="g1", domain="math", response_a="x", response_b="y",
                       metadata={"k": 1}),
             TableItem(id="i2", prompt="p2", gold="b")]
    scorers = [Scorer("rm", "scalar", 7.0, "7B"), Scorer("judge", "verdict", 200.0)]
    scores = {"rm": {"i1": (1.5, None), "i2": (-0.25, 2.0)}, "judge": {"i1": (1.0, 0.0), "i2": (None, -1.0)}}
    return build_table("t", scorers, items, scores, description="d", source="s", licence="MIT")


def test_generic_format_round_trips_with_nan(tmp_path):
    table = small_table()
    back = read_table(write_table(table, tmp_path / "t.jsonl"))
    assert (back.name, back.description, back.source, back.licence) == ("t", "d", "s", "MIT")
    assert back.scorers == table.scorers and back.items == table.items
    assert np.array_equal(back.values, table.values, equal_nan=True)
    assert math.isnan(back.values[0, 0, 1]) and math.isnan(back.values[1, 1, 0])
    assert np.array_equal(back.margins(), table.margins(), equal_nan=True)


def test_adapter_table_round_trips(tmp_path):
    table = load_adapter("judgebench", judgebench_files(tmp_path), local)
    back = read_table(write_table(table, tmp_path / "jb.jsonl"))
    assert back.items == table.items and np.array_equal(back.values, table.values, equal_nan=True)


def test_scorer_margins_by_hand():
    values = np.array([[1.0, -1.0], [1.0, 0.0], [-1.0, np.nan], [np.nan, np.nan], [1.0, 1.0]])
    out = scorer_margins("verdict", values)
    assert out[:3].tolist() == [0.0, 1.0, -1.0] and math.isnan(out[3]) and out[4] == 1.0
    assert scorer_margins("scalar", np.array([[2.0, 0.5]])).tolist() == [1.5]


def _write(path: Path, lines: list) -> Path:
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return path


HEADER = {"format": "rmroute-score-table/1", "name": "t", "scorers": [{"name": "rm", "kind": "scalar", "cost": 1},
                                                                      {"name": "j", "kind": "verdict", "cost": 1}]}


@pytest.mark.parametrize("lines,expect", [
    ([{"id": "i", "prompt": "p", "gold": "a"}], ":1: the first line must be the header"),
    ([HEADER, {"id": "i", "prompt": "p"}], ":2: missing field 'gold'"),
    ([HEADER, {"id": "i", "prompt": "p", "gold": "c"}], ":2: field 'gold': expected"),
    ([HEADER, {"id": "i", "prompt": "p", "gold": "a", "scores": {"rm2": {"a": 1, "b": 2}}}],
     ":2: field scores.rm2: unknown scorer 'rm2'"),
    ([HEADER, {"id": "i", "prompt": "p", "gold": "a", "scores": {"rm": {"a": "1", "b": 2}}}],
     ":2: field scores.rm.a: expected a number"),
    ([HEADER, {"id": "i", "prompt": "p", "gold": "a", "scores": {"j": {"ab": "A", "ba": None}}}],
     ":2: field scores.j.ab: expected \"a\", \"b\", \"tie\" or null"),
    ([HEADER, {"id": "i", "prompt": "p", "gold": "a"}, {"id": "i", "prompt": "q", "gold": "b"}],
     ":3: field 'id': 'i' was already used at"),
])
def test_generic_format_errors_name_file_line_and_field(tmp_path, lines, expect):
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as err:
        read_table(path)
    assert f"{path}{expect}" in str(err.value)
