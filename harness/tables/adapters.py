"""Adapters: published per-item scores of real RMs and judges -> score tables (format.py).

Papers publish what their reward models and LLM judges said about each item, each in its own file
layout. An adapter reads one such layout and builds a :class:`ScoreTable`, so that routers can be
replayed over the published scores with no model run. A pool config names the adapter and its
params (``load_adapter``); the files are named there as ``{source, sha256}`` and opened only
through the ``resolve`` callback (the pool wires it to the project's pinned-source resolver).
Nothing about the real files is written here beyond the documented structure of each layout;
costs and names come from the params.

- ``judgebench`` (JudgeBench, arXiv 2410.12784): a pairs file (question, response_A/B, label,
  source) and one output file per judge, each judging every pair twice: game 1 shows (A, B),
  game 2 shows (B, A). A ``reward_model`` judge is a scalar scorer (each response's score is
  its mean over the two games); any other judge is a verdict scorer (game 1 gives order "ab",
  game 2 order "ba").
- ``rewardmath`` (RewardMATH, arXiv 2410.01729): per MATH problem one correct solution
  (``human_to_GPT-4``) and nine incorrect ones; one item per (correct, incorrect) pair, grouped
  by problem. Scalar files score every solution (a number, or a PRM's per-step list reduced by
  ``prm_reduce``); pairwise files hold a judge's letter per incorrect solution, shown once in
  one order (``chosen_position``: where the correct one was).
- ``rewardbench-math-prm`` (RewardMATH's runs on RewardBench's math-prm subset): one item per
  problem (chosen vs rejected), from ORM files (one record per problem) or PRM files (one record
  per solution, with the step texts and the subject).

The correct (chosen) solution of the two math tables is put at ``a`` or ``b`` by a hash bit of
the item id (:func:`correct_side`), so gold is not constant and nothing can learn "a wins".
Items of the same problem text share their group key (:func:`text_key`) across the two tables.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from pydantic import BaseModel, Field, ValidationError, model_validator

from rmroute.harness.assets import DataError, iter_jsonl, read_json_list
from rmroute.harness.core.config import StrictModel, format_loc
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.tables.format import Scorer, ScoreTable, TableItem, build_table

#: (source spec, sha256 pin or None) -> a local file
Resolve = Callable[[str, "str | None"], Path]
Pair = tuple["float | None", "float | None"]
Scores = dict[str, dict[str, Pair]]

PRM_REDUCERS = ("min", "mean", "last", "prod")
#: JudgeBench sources -> its four categories (mmlu-pro-<subject> is "knowledge")
JUDGEBENCH_DOMAINS = {"livebench-reasoning": "reasoning", "livebench-math": "math", "livecodebench": "coding"}
#: JudgeBench decisions -> the shown position preferred (+1 first, -1 second, 0 tie)
DECISIONS = {"A>B": 1.0, "A>>B": 1.0, "B>A": -1.0, "B>>A": -1.0, "A=B": 0.0}
#: the correct solution's name in RewardMATH files, and the chosen/rejected names of RewardBench's
CORRECT = "human_to_GPT-4"
CHOSEN_NAMES, REJECTED_NAMES = ("human_to_GPT-4", "chosen"), ("modified_with_GPT-4", "rejected")


# ---- params --------------------------------------------------------------------------------------


class FileRef(StrictModel):
    """A published file: a source spec and its sha256 pin."""

    source: str = Field(min_length=1)
    sha256: str | None = None


class ScorerFile(FileRef):
    """One scorer's output file, its name in the table and its cost per call."""

    name: str = Field(min_length=1)
    cost: float = Field(ge=0)
    cost_note: str = ""


class MathScorerFile(ScorerFile):
    """A RewardMATH scorer file: ``scalar`` (``<X>_reward.json``) or ``pairwise``
    (``<X>_pairwise_reward.json``); ``score_range``: values outside it (a judge's failure marker
    such as -1) are abstentions."""

    kind: Literal["scalar", "pairwise"] = "scalar"
    score_range: tuple[float, float] | None = None


class TableParams(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    licence: str = ""

    @model_validator(mode="after")
    def _distinct_names(self) -> "TableParams":
        names = [s.name for s in getattr(self, "scorers", [])]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"scorer name {dup!r} is used twice in scorers")
        return self


class JudgeBenchParams(TableParams):
    pairs: FileRef
    scorers: list[ScorerFile] = Field(min_length=1)


class RewardMathParams(TableParams):
    scorers: list[MathScorerFile] = Field(min_length=1)
    prm_reduce: Literal["min", "mean", "last", "prod"] = "min"
    domains: FileRef | list[FileRef] | None = None


class RewardBenchParams(TableParams):
    scorers: list[ScorerFile] = Field(min_length=1)
    prm_reduce: Literal["min", "mean", "last", "prod"] = "min"
    domains: FileRef | list[FileRef] | None = None


# ---- shared helpers ---------------------------------------------------------------------------


def text_key(text: str) -> str:
    """A short stable key of a question/problem text (the group of its items)."""
    return "p" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def correct_side(item_id: str) -> str:
    """Where the correct (chosen) solution goes: ``"a"`` or ``"b"`` by the low bit of the item
    id's sha256, so gold varies across items but is the same on every machine."""
    return "a" if hashlib.sha256(item_id.encode("utf-8")).digest()[0] % 2 == 0 else "b"


def reduce_steps(steps: Sequence[float], how: str) -> float:
    """A PRM's per-step scores -> one score (as RewardMATH does: min, mean, last or prod)."""
    if how == "min":
        return min(steps)
    if how == "mean":
        return sum(steps) / len(steps)
    if how == "last":
        return steps[-1]
    if how == "prod":
        return math.prod(steps)
    raise ValueError(f"unknown prm_reduce {how!r} (expected one of {', '.join(PRM_REDUCERS)})")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def score_value(where: str, field: str, value: Any, reduce: str,
                score_range: tuple[float, float] | None = None) -> float | None:
    """One published score -> a float, or None (absent: null, an empty step list, NaN, or outside
    ``score_range``); a number, or a list of numbers reduced by ``reduce``; anything else is an error."""
    if value is None:
        return None
    if isinstance(value, list):
        bad = next((j for j, v in enumerate(value) if not _is_number(v)), None)
        if bad is not None:
            raise DataError(f"{where}: field {field}[{bad}]: expected a number (a PRM step score), got {value[bad]!r}")
        value = reduce_steps(value, reduce) if value else None
    elif not _is_number(value):
        raise DataError(f"{where}: field {field}: expected a number, a list of step scores or null, got {value!r}")
    if value is None or math.isnan(value):
        return None
    if score_range is not None and not score_range[0] <= value <= score_range[1]:
        return None
    return float(value)


def _field(where: str, rec: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if key not in rec:
        raise DataError(f"{where}: missing field {key!r} (fields present: {', '.join(sorted(rec)) or 'none'})")
    if not isinstance(rec[key], kind):
        raise DataError(f"{where}: field {key!r}: expected {what}, got {rec[key]!r:.80}")
    return rec[key]


def _open(resolve: Resolve, ref: FileRef) -> Path:
    return Path(resolve(ref.source, ref.sha256))


def _example(keys: set[str]) -> str:
    return repr(sorted(keys)[0][:80])


# ---- judgebench ---------------------------------------------------------------------------------


def judgebench_domain(where: str, source: Any) -> str:
    """JudgeBench's category of a pair from its ``source``."""
    if isinstance(source, str):
        if source.startswith("mmlu-pro-"):
            return "knowledge"
        if source in JUDGEBENCH_DOMAINS:
            return JUDGEBENCH_DOMAINS[source]
    raise DataError(f"{where}: field 'source': expected mmlu-pro-<subject>, {', '.join(JUDGEBENCH_DOMAINS)}; "
                    f"got {source!r}")


def _judgebench_item(where: str, rec: dict[str, Any]) -> TableItem:
    label = rec.get("label")
    if label not in ("A>B", "B>A"):
        raise DataError(f"{where}: field 'label': expected \"A>B\" or \"B>A\" (the gold label), got {label!r}")
    question = _field(where, rec, "question", str, "a string")
    return TableItem(id=_field(where, rec, "pair_id", str, "a string"), prompt=question,
                     gold="a" if label == "A>B" else "b", group=text_key(question),
                     domain=judgebench_domain(where, rec.get("source")),
                     response_a=_field(where, rec, "response_A", str, "a string"),
                     response_b=_field(where, rec, "response_B", str, "a string"),
                     metadata={"source": rec.get("source"), "original_id": rec.get("original_id")})


def read_judgebench_pairs(path: Path) -> list[TableItem]:
    """The items of a JudgeBench data file (one pair per line)."""
    items, seen = [], {}
    for where, rec in iter_jsonl(path):
        item = _judgebench_item(where, rec)
        if item.id in seen:
            raise DataError(f"{where}: field 'pair_id': {item.id!r} was already used at {seen[item.id]}")
        seen[item.id] = where
        items.append(item)
    if not items:
        raise DataError(f"{path}: no pairs")
    return items


def _games(where: str, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The two games of a JudgeBench output record (``judgments``: a list or its JSON text)."""
    games = _field(where, rec, "judgments", (list, str), "the two games (a list, or its JSON text)")
    if isinstance(games, str):
        try:
            games = json.loads(games)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: field 'judgments': not valid JSON: {exc.msg}") from None
    if not isinstance(games, list) or len(games) != 2 or not all(isinstance(g, dict) for g in games):
        raise DataError(f"{where}: field 'judgments': expected two games (objects), got {str(games)[:80]}")
    return games


def _game_scores(where: str, game: dict[str, Any], n: int) -> tuple[float, float] | None:
    """(first shown, second shown) scores of one game, or None when it has none."""
    judgment = game.get("judgment")
    scores = judgment.get("scores") if isinstance(judgment, dict) else None
    if scores is None:
        return None
    field = f"judgments[{n}].judgment.scores"
    if not isinstance(scores, list) or len(scores) != 2:
        raise DataError(f"{where}: field {field}: expected two numbers, got {scores!r:.80}")
    for j, s in enumerate(scores):
        if not _is_number(s):
            raise DataError(f"{where}: field {field}[{j}]: expected a number, got {s!r:.80}")
    return float(scores[0]), float(scores[1])


def judgebench_scalar(where: str, games: list[dict[str, Any]]) -> Pair:
    """(score of A, score of B): each response's mean over the games that scored it; game 2 shows
    (B, A), so its positions are swapped back."""
    unswapped = []
    for n, game in enumerate(games):
        shown = _game_scores(where, game, n)
        if shown is not None:
            unswapped.append(shown if n == 0 else shown[::-1])
    if not unswapped:
        return None, None
    return (sum(s[0] for s in unswapped) / len(unswapped), sum(s[1] for s in unswapped) / len(unswapped))


def judgebench_verdict(games: list[dict[str, Any]]) -> Pair:
    """(vote in order ab, vote in order ba): +1 = response A preferred, -1 = B, 0 = tie, None =
    no (parseable) decision. Game 2 shows (B, A): its first position is response B."""
    ab, ba = (DECISIONS.get(g.get("decision")) if isinstance(g.get("decision"), str) else None for g in games)
    return ab, (None if ba is None else -ba)


def read_judgebench_output(path: Path, pairs_path: Path, pair_ids: set[str]) -> tuple[str, dict[str, Pair]]:
    """(kind, scores by pair id) of one JudgeBench output file; its pair ids must be the pairs file's."""
    kinds, scores = set(), {}
    for where, rec in iter_jsonl(path):
        pair_id = _field(where, rec, "pair_id", str, "a string")
        kind = "scalar" if rec.get("judge_name") == "reward_model" else "verdict"
        kinds.add(kind)
        if len(kinds) > 1:
            raise DataError(f"{where}: field 'judge_name': {rec.get('judge_name')!r} mixes reward-model scores and verdicts in one file")
        if pair_id in scores:
            raise DataError(f"{where}: field 'pair_id': {pair_id!r} appears twice")
        games = _games(where, rec)
        scores[pair_id] = judgebench_scalar(where, games) if kind == "scalar" else judgebench_verdict(games)
    _same_ids(path, pairs_path, set(scores), pair_ids)
    return kinds.pop() if kinds else "verdict", scores


def _same_ids(path: Path, reference: Path, ids: set[str], expected: set[str]) -> None:
    if ids != expected:
        extra, missing = ids - expected, expected - ids
        which = (f"pair id {_example(extra)} is not in {reference}" if extra
                 else f"pair id {_example(missing)} of {reference} is missing")
        raise DataError(f"{path}: its pair ids differ from {reference}'s ({len(extra)} extra, {len(missing)} missing): {which}")


def build_judgebench(p: JudgeBenchParams, resolve: Resolve) -> ScoreTable:
    """The JudgeBench table: its pairs, each output file one scorer."""
    pairs_path = _open(resolve, p.pairs)
    items = read_judgebench_pairs(pairs_path)
    ids = {it.id for it in items}
    scorers, scores = [], {}
    for s in p.scorers:
        kind, scores[s.name] = read_judgebench_output(_open(resolve, s), pairs_path, ids)
        scorers.append(Scorer(s.name, kind, s.cost, s.cost_note))
    return build_table(p.name, scorers, items, scores, description=p.description or
                       "JudgeBench (arXiv 2410.12784): pairs of responses to hard questions; scores per "
                       "pair and judge in both orders", source=_sources([p.pairs, *p.scorers]), licence=p.licence)


def _sources(refs: Sequence[FileRef]) -> str:
    return "; ".join(r.source for r in refs)


# ---- domains of MATH problems -------------------------------------------------------------------


def _subject(rec: dict[str, Any]) -> Any:
    feature = rec.get("feature")
    return rec.get("subject", feature.get("subject") if isinstance(feature, dict) else None)


def read_domains(paths: Sequence[Path]) -> dict[str, str]:
    """problem text -> subject, from files of MATH problems with ``subject`` (or
    ``feature.subject``); records without one are skipped; two subjects for one problem are an error."""
    found: dict[str, tuple[str, str]] = {}
    for path in paths:
        for n, rec in enumerate(read_json_list(path)):
            where = f"{path}[{n}]"
            subject = _subject(rec) if isinstance(rec, dict) else None
            if subject is None:
                continue
            problem = _field(where, rec, "problem", str, "a string")
            if not isinstance(subject, str):
                raise DataError(f"{where}: field 'subject': expected a string, got {subject!r}")
            if problem in found and found[problem][0] != subject:
                raise DataError(f"{where}: field 'subject': {subject!r}, but {found[problem][1]} gives "
                                f"{found[problem][0]!r} for the same problem")
            found.setdefault(problem, (subject, where))
    return {k: v[0] for k, v in found.items()}


def _domain_files(resolve: Resolve, domains: FileRef | list[FileRef] | None) -> list[Path]:
    refs = [] if domains is None else [domains] if isinstance(domains, FileRef) else domains
    return [_open(resolve, r) for r in refs]


# ---- rewardmath ---------------------------------------------------------------------------------


@dataclass
class MathRecord:
    """One problem of a RewardMATH file: the incorrect solutions' names (in order) and, per
    solution, a scalar file's scores (correct one first) or a pairwise file's (letter, position)."""

    where: str
    incorrect: list[str]
    values: list[Any]


def _problem_records(path: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """problem text -> (where, record); identical repeats collapse, conflicting ones are an error."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for n, rec in enumerate(read_json_list(path)):
        where = f"{path}[{n}]"
        problem = _field(where, rec, "problem", str, "a string")
        if problem in out:
            if json.dumps(rec, sort_keys=True) != json.dumps(out[problem][1], sort_keys=True):
                raise DataError(f"{where}: problem {problem[:60]!r} repeats {out[problem][0]} with different values")
            continue
        out[problem] = (where, rec)
    if not out:
        raise DataError(f"{path}: no records")
    return out


def _list_field(where: str, rec: dict[str, Any], key: str, n: int | None = None) -> list[Any]:
    value = _field(where, rec, key, list, "a list")
    if n is not None and len(value) != n:
        raise DataError(f"{where}: field {key!r}: expected {n} entries (one per solution), got {len(value)}")
    return value


def read_math_scalar(path: Path, reduce: str, score_range: tuple[float, float] | None) -> dict[str, MathRecord]:
    """A RewardMATH ``<X>_reward.json``: per problem, the correct solution's score then the
    incorrect ones' (``values[0]`` = correct)."""
    out = {}
    for problem, (where, rec) in _problem_records(path).items():
        refs = _list_field(where, rec, "solution_reference")
        raw = _list_field(where, rec, "score", len(refs))
        if refs.count(CORRECT) != 1:
            raise DataError(f"{where}: field 'solution_reference': expected exactly one {CORRECT!r}, "
                            f"found {refs.count(CORRECT)}")
        scores = [score_value(where, f"score[{j}]", v, reduce, score_range) for j, v in enumerate(raw)]
        c = refs.index(CORRECT)
        out[problem] = MathRecord(where, refs[:c] + refs[c + 1:], [scores[c], *scores[:c], *scores[c + 1:]])
    return out


def read_math_pairwise(path: Path) -> dict[str, MathRecord]:
    """A RewardMATH ``<X>_pairwise_reward.json``: per incorrect solution, (the judge's letter or
    None, where the correct solution was shown)."""
    out = {}
    for problem, (where, rec) in _problem_records(path).items():
        refs = _list_field(where, rec, "solution_reference")
        letters = _list_field(where, rec, "score", len(refs))
        shown = _list_field(where, rec, "chosen_position", len(refs))
        for j, (letter, pos) in enumerate(zip(letters, shown)):
            if letter not in ("A", "B", None):
                raise DataError(f"{where}: field score[{j}]: expected \"A\", \"B\" or null, got {letter!r}")
            if pos not in ("A", "B"):
                raise DataError(f"{where}: field chosen_position[{j}]: expected \"A\" or \"B\", got {pos!r}")
        out[problem] = MathRecord(where, list(refs), list(zip(letters, shown)))
    return out


def pairwise_vote(letter: str | None, shown: str, correct: str) -> tuple[str, float | None]:
    """(order key, vote) of one pairwise judgment: the correct solution was shown first when
    ``shown == "A"``; it sits at ``correct`` ("a"/"b") in the table. The judgment fills the order it
    was shown in ("ab" when response a was shown first) with +1 (a preferred) or -1 (b)."""
    correct_first = shown == "A"
    order = "ab" if correct_first == (correct == "a") else "ba"
    if letter is None:
        return order, None
    preferred_correct = letter == shown
    return order, 1.0 if preferred_correct == (correct == "a") else -1.0


def _check_same_problems(files: list[tuple[Path, dict[str, MathRecord]]]) -> None:
    """Every scorer file holds the same problems with the same incorrect solutions (in order)."""
    ref_path, ref = files[0]
    for path, recs in files[1:]:
        if set(recs) != set(ref):
            diff = set(recs) ^ set(ref)
            raise DataError(f"{path} and {ref_path} hold different problems ({len(diff)} differ, e.g. {_example(diff)})")
        for problem, rec in recs.items():
            if rec.incorrect != ref[problem].incorrect:
                raise DataError(f"{rec.where} and {ref[problem].where}: field 'solution_reference': the incorrect "
                                f"solutions differ for problem {problem[:60]!r}")


def _math_items(ref: dict[str, MathRecord], subjects: dict[str, str]) -> list[TableItem]:
    items = []
    for problem, rec in ref.items():
        group = text_key(problem)
        for j, source in enumerate(rec.incorrect, 1):
            item_id = f"{group}-{j}"
            items.append(TableItem(id=item_id, prompt=problem, gold=correct_side(item_id), group=group,
                                   domain=subjects.get(problem, "unknown"),
                                   metadata={"incorrect_solution": j, "incorrect_source": source}))
    return items


def _math_scores(kind: str, recs: dict[str, MathRecord], items: list[TableItem]) -> dict[str, Pair]:
    by_id = {it.id: it for it in items}
    out: dict[str, Pair] = {}
    for problem, rec in recs.items():
        group = text_key(problem)
        for j in range(1, len(rec.incorrect) + 1):
            item = by_id[f"{group}-{j}"]
            if kind == "scalar":
                good, bad = rec.values[0], rec.values[j]
                out[item.id] = (good, bad) if item.gold == "a" else (bad, good)
            else:
                order, vote = pairwise_vote(*rec.values[j - 1], item.gold)
                out[item.id] = (vote, None) if order == "ab" else (None, vote)
    return out


def build_rewardmath(p: RewardMathParams, resolve: Resolve) -> ScoreTable:
    """The RewardMATH table: one item per (correct, incorrect) solution pair, grouped by problem."""
    files = []
    for s in p.scorers:
        path = _open(resolve, s)
        files.append((path, read_math_scalar(path, p.prm_reduce, s.score_range) if s.kind == "scalar"
                      else read_math_pairwise(path)))
    _check_same_problems(files)
    subjects = read_domains(_domain_files(resolve, p.domains))
    ref = files[0][1]
    items = _math_items(ref, subjects)
    unknown = sum(1 for problem in ref if problem not in subjects)
    scorers = [Scorer(s.name, "scalar" if s.kind == "scalar" else "verdict", s.cost, s.cost_note) for s in p.scorers]
    scores = {s.name: _math_scores(s.kind, recs, items) for s, (_, recs) in zip(p.scorers, files)}
    return build_table(p.name, scorers, items, scores, description=p.description or
                       f"RewardMATH (arXiv 2410.01729): {len(ref)} MATH problems, the correct solution vs each "
                       f"incorrect one (prm_reduce={p.prm_reduce}); {unknown} problems without a subject "
                       "(domain 'unknown')", source=_sources([*p.scorers, *_refs(p.domains)]), licence=p.licence)


def _refs(domains: FileRef | list[FileRef] | None) -> list[FileRef]:
    return [] if domains is None else [domains] if isinstance(domains, FileRef) else list(domains)


# ---- rewardbench math-prm ------------------------------------------------------------------------


@dataclass
class BenchProblem:
    """One problem of a RewardBench math-prm file: (chosen, rejected) scores, and from a PRM file
    the step texts and subject."""

    where: str
    scores: Pair
    texts: tuple[str, str] | None = None
    subject: str | None = None


def _orm_problem(where: str, rec: dict[str, Any], reduce: str) -> BenchProblem:
    refs = _list_field(where, rec, "solution_reference", 2)
    raw = _list_field(where, rec, "score", 2)
    try:
        c = next(j for j, r in enumerate(refs) if r in CHOSEN_NAMES)
        r = next(j for j, r in enumerate(refs) if r in REJECTED_NAMES)
    except StopIteration:
        raise DataError(f"{where}: field 'solution_reference': expected one of {CHOSEN_NAMES} and one of "
                        f"{REJECTED_NAMES}, got {refs!r}") from None
    return BenchProblem(where, (score_value(where, f"score[{c}]", raw[c], reduce),
                                score_value(where, f"score[{r}]", raw[r], reduce)))


def _prm_solution(where: str, rec: dict[str, Any], reduce: str) -> tuple[str, float | None, str]:
    kind = rec.get("solution_type")
    if kind not in ("chosen", "rejected"):
        raise DataError(f"{where}: field 'solution_type': expected \"chosen\" or \"rejected\", got {kind!r}")
    output = _field(where, rec, "output", dict, "an object with step_scores")
    steps = _field(where, rec, "eval_solution", list, "a list of step texts")
    if not all(isinstance(s, str) for s in steps):
        raise DataError(f"{where}: field 'eval_solution': expected a list of strings")
    if "step_scores" not in output:
        raise DataError(f"{where}: missing field 'output.step_scores'")
    return kind, score_value(where, "output.step_scores", output["step_scores"], reduce), "\n".join(steps)


def _prm_problems(path: Path, records: list[Any], reduce: str) -> dict[str, BenchProblem]:
    """PRM shape: one record per solution; per problem exactly one chosen and one rejected."""
    parts: dict[str, dict[str, tuple[str, float | None, str, Any]]] = {}
    for n, rec in enumerate(records):
        where = f"{path}[{n}]"
        problem = _field(where, rec, "problem", str, "a string")
        kind, score, text = _prm_solution(where, rec, reduce)
        if kind in parts.setdefault(problem, {}):
            raise DataError(f"{where}: field 'solution_type': a second {kind!r} solution of problem {problem[:60]!r} "
                            f"(first at {parts[problem][kind][0]})")
        parts[problem][kind] = (where, score, text, rec.get("subject"))
    out = {}
    for problem, sol in parts.items():
        if len(sol) != 2:
            where = next(iter(sol.values()))[0]
            raise DataError(f"{where}: problem {problem[:60]!r} has no {'rejected' if 'chosen' in sol else 'chosen'} solution")
        c, r = sol["chosen"], sol["rejected"]
        subject = c[3] if isinstance(c[3], str) else None
        out[problem] = BenchProblem(c[0], (c[1], r[1]), (c[2], r[2]), subject)
    return out


def read_rewardbench(path: Path, reduce: str) -> tuple[bool, dict[str, BenchProblem]]:
    """(is a PRM file, problem -> scores) of a ``rewardbench_<X>.json`` in either shape."""
    records = read_json_list(path)
    if not records:
        raise DataError(f"{path}: no records")
    if isinstance(records[0], dict) and "solution_type" in records[0]:
        return True, _prm_problems(path, records, reduce)
    out: dict[str, BenchProblem] = {}
    for n, rec in enumerate(records):
        where = f"{path}[{n}]"
        problem = _field(where, rec, "problem", str, "a string")
        if problem in out:
            raise DataError(f"{where}: problem {problem[:60]!r} repeats {out[problem].where}")
        out[problem] = _orm_problem(where, rec, reduce)
    return False, out


def _bench_texts(files: list[tuple[Path, bool, dict[str, BenchProblem]]]) -> dict[str, BenchProblem]:
    """problem -> the PRM record giving texts and subject (the first PRM file); other PRM files
    must carry the same texts."""
    prm = [(path, recs) for path, is_prm, recs in files if is_prm]
    if not prm:
        return {}
    first_path, first = prm[0]
    for path, recs in prm[1:]:
        for problem, rec in recs.items():
            if rec.texts != first[problem].texts:
                raise DataError(f"{rec.where} and {first[problem].where}: field 'eval_solution': the solution "
                                f"texts differ for problem {problem[:60]!r}")
    return first


def build_rewardbench(p: RewardBenchParams, resolve: Resolve) -> ScoreTable:
    """The RewardBench math-prm table: one item per problem (chosen vs rejected)."""
    files = []
    for s in p.scorers:
        path = _open(resolve, s)
        files.append((path, *read_rewardbench(path, p.prm_reduce)))
    ref_path, _, ref = files[0]
    for path, _, recs in files[1:]:
        if set(recs) != set(ref):
            diff = set(recs) ^ set(ref)
            raise DataError(f"{path} and {ref_path} hold different problems ({len(diff)} differ, e.g. {_example(diff)})")
    texts = _bench_texts(files)
    subjects = read_domains(_domain_files(resolve, p.domains))
    items = []
    for problem in ref:
        group = text_key(problem)
        prm = texts.get(problem)
        correct = correct_side(group)
        pair = prm.texts if prm else (None, None)
        a, b = pair if correct == "a" else pair[::-1]
        items.append(TableItem(id=group, prompt=problem, gold=correct, group=group, response_a=a, response_b=b,
                               domain=(prm and prm.subject) or subjects.get(problem, "unknown")))
    scores = {s.name: {it.id: (recs[it.prompt].scores if it.gold == "a" else recs[it.prompt].scores[::-1])
                       for it in items} for s, (_, _, recs) in zip(p.scorers, files)}
    scorers = [Scorer(s.name, "scalar", s.cost, s.cost_note) for s in p.scorers]
    return build_table(p.name, scorers, items, scores, description=p.description or
                       f"RewardBench math-prm as run by RewardMATH (arXiv 2410.01729): {len(items)} problems, "
                       f"chosen vs rejected (prm_reduce={p.prm_reduce})",
                       source=_sources([*p.scorers, *_refs(p.domains)]), licence=p.licence)


# ---- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Adapter:
    """An adapter: its params model and the function that builds the table."""

    params: type[BaseModel]
    build: Callable[[Any, Resolve], ScoreTable]
    about: str


ADAPTERS: dict[str, Adapter] = {
    "judgebench": Adapter(JudgeBenchParams, build_judgebench, "JudgeBench pairs + reward-model/judge output files"),
    "rewardmath": Adapter(RewardMathParams, build_rewardmath, "RewardMATH results/RewardMATH/*_reward.json"),
    "rewardbench-math-prm": Adapter(RewardBenchParams, build_rewardbench,
                                    "RewardMATH results/Rewardbench/rewardbench_*.json"),
}


def adapter_params(name: str, params: Mapping[str, Any], where: str = "") -> BaseModel:
    """The validated params of adapter ``name``; errors are ConfigErrors naming ``where`` and the key."""
    prefix = f"{where}: " if where else ""
    if name not in ADAPTERS:
        raise ConfigError(f"{prefix}unknown score-table adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    try:
        return ADAPTERS[name].params.model_validate(dict(params))
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"]) + ((err["ctx"]["key"],) if err["type"] == "unknown_key" else ())
            value = "" if err["type"] in ("missing", "unknown_key") else f" (got {str(err['input'])[:80]!r})"
            lines.append(f"{prefix}params.{format_loc(loc)}: {err['msg']}{value}"
                         if loc else f"{prefix}params: {err['msg']}{value}")
        raise ConfigError("\n".join(lines)) from None


def load_adapter(name: str, params: Mapping[str, Any], resolve: Resolve, where: str = "") -> ScoreTable:
    """Build the score table of adapter ``name`` from its params (files opened through ``resolve``)."""
    validated = adapter_params(name, params, where)
    return ADAPTERS[name].build(validated, resolve)
