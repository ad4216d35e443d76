"""Text perturbations that turn a gold response into a worse one, for the routing benchmark.

Math (GSM8K): :func:`carry_error` changes ONE intermediate result of a reference solution and
recomputes every later calculation that uses it, so the solution stays internally consistent after
the slip and ends on a wrong final answer. Chat: :func:`truncate_words`, :func:`match_length`,
:func:`shuffle_units` and :func:`ranked_neighbours` (TF-IDF cosine in numpy) build the degraded
answers. Everything random takes a seeded ``numpy.random.Generator``; nothing reads global state.

GSM8K solutions mark every calculation with a calculator annotation ``<<expr=result>>`` placed right
after the written equation and right before the displayed result::

    She makes 9 * 2 = $<<9*2=18>>18 every day.
    #### 18

Annotations are machine-readable and would give a perturbation away, so both responses of a pair are
rendered without them (:func:`strip_annotations`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Container, Sequence

import numpy as np

ANNOTATION = re.compile(r"<<([^<>]*)>>")
# a written number: 1,234.5 | 1234.5 | .5 (no trailing comma or full stop)
NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
NUM_RE = re.compile(NUM)
_DISPLAYED = re.compile(rf"\s*\$?\s*({NUM})")
_ENDS_WITH_EQ = re.compile(r"=\s*\$?\s*$")
FINAL_MARK = "####"


class NotArithmetic(ValueError):
    """An expression is not plain arithmetic over numbers."""


def safe_eval(expr: str) -> Fraction:
    """Evaluate plain arithmetic (numbers, + - * / // % **, unary minus, parentheses) exactly.

    Raises :class:`NotArithmetic` for anything else (names, calls, huge powers, division by 0).
    """
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise NotArithmetic(f"not an expression: {expr!r}") from exc

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            op = node.op
            if isinstance(op, ast.Add):
                return a + b
            if isinstance(op, ast.Sub):
                return a - b
            if isinstance(op, ast.Mult):
                return a * b
            if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)):
                if b == 0:
                    raise NotArithmetic(f"division by zero in {expr!r}")
                if isinstance(op, ast.Div):
                    return a / b
                return Fraction(a // b) if isinstance(op, ast.FloorDiv) else a % b
            if isinstance(op, ast.Pow):
                if b.denominator != 1 or abs(b) > 12:
                    raise NotArithmetic(f"unsupported power in {expr!r}")
                return a ** int(b)
        raise NotArithmetic(f"not plain arithmetic: {expr!r}")

    return ev(tree)


@lru_cache(maxsize=1 << 16)
def parse_number(text: str) -> Fraction:
    """'1,234.50' / '$12' / '.5' -> Fraction."""
    return Fraction(text.replace(",", "").replace("$", "").strip())


def format_number(value: Fraction, like: str = "") -> str:
    """Write ``value`` the way ``like`` was written: thousands commas, and at least as many decimal
    places ("3.00" stays two-place: 5 -> "5.00")."""
    commas = "," in like
    shown = like.replace(",", "").replace("$", "")
    places = len(shown.split(".", 1)[1]) if "." in shown else 0
    needed = _decimals(value)
    if needed is None:
        needed = 6
    places = max(places, needed)
    if places == 0:
        return f"{int(value):,}" if commas else str(int(value))
    return f"{float(value):,.{places}f}" if commas else f"{float(value):.{places}f}"


def _decimals(value: Fraction) -> int | None:
    """Number of decimal places of a finite decimal, None if the expansion does not terminate (<= 6)."""
    for places in range(7):
        if (value * 10**places).denominator == 1:
            return places
    return None


def strip_annotations(text: str) -> str:
    """Remove GSM8K calculator annotations ``<<expr=result>>``."""
    return ANNOTATION.sub("", text)


@dataclass
class Step:
    """One annotated calculation of a GSM8K solution."""

    index: int
    expr: str                # annotation expression, e.g. "16-3-4"
    result: str              # annotation result, e.g. "9"
    span: tuple[int, int]    # the annotation's span in the raw solution
    shown: tuple[int, int] | None  # span of the displayed result right after the annotation
    lhs: tuple[int, int] | None    # the written text before it on its line, when that ends in "="
    value: Fraction | None = None  # the result, when the annotation is consistent arithmetic
    consistent: bool = False
    faithful: bool = False   # the written text shows every operand of the annotation


@dataclass
class Solution:
    raw: str
    steps: list[Step]
    final: str               # the text after '####'
    final_span: tuple[int, int]

    @property
    def final_value(self) -> Fraction | None:
        try:
            return parse_number(self.final)
        except (ValueError, ZeroDivisionError):
            return None


def _values(text: str) -> list[Fraction]:
    return [parse_number(t) for t in NUM_RE.findall(text)]


def _contains(big: list[Fraction], small: list[Fraction]) -> bool:
    """Multiset inclusion."""
    pool = list(big)
    for v in small:
        if v not in pool:
            return False
        pool.remove(v)
    return True


def parse_solution(raw: str) -> Solution:
    """Find every calculation of a GSM8K solution and check that each one is consistent arithmetic.

    A calculation's *written* part is the text between the previous displayed result (or the line
    start) and its annotation, when that text ends in "=" (e.g. "She makes 9 * 2 = $"); it is
    *faithful* when it shows every number of the annotation's expression.
    """
    cut = raw.rfind(FINAL_MARK)
    if cut < 0:
        raise ValueError("solution has no '####' final answer line")
    final_start = cut + len(FINAL_MARK)
    final = raw[final_start:].strip()
    fs = raw.index(final, final_start) if final else len(raw)
    steps: list[Step] = []
    prev_end = 0
    for i, m in enumerate(ANNOTATION.finditer(raw, 0, cut)):
        expr, eq, result = m.group(1).rpartition("=")
        line_start = raw.rfind("\n", 0, m.start()) + 1
        seg_start = max(prev_end, line_start)
        segment = raw[seg_start:m.start()]
        lhs = (seg_start, m.start()) if _ENDS_WITH_EQ.search(segment) and NUM_RE.search(segment) else None
        shown_m = _DISPLAYED.match(raw, m.end())
        shown = (shown_m.start(1), shown_m.end(1)) if shown_m else None
        step = Step(i, expr.strip(), result.strip(), (m.start(), m.end()), shown, lhs)
        if eq:
            try:
                value = parse_number(step.result)
                ok = safe_eval(step.expr.replace(",", "")) == value
                ok = ok and shown is not None and parse_number(raw[shown[0]:shown[1]]) == value
                step.value, step.consistent = value, bool(ok)
                step.faithful = lhs is not None and _contains(_values(segment), _values(step.expr))
            except (NotArithmetic, ValueError, ZeroDivisionError, OverflowError):
                pass
        steps.append(step)
        prev_end = shown[1] if shown else m.end()
    return Solution(raw=raw, steps=steps, final=final, final_span=(fs, fs + len(final)))


def question_numbers(question: str) -> set[Fraction]:
    return {parse_number(m.group(0)) for m in NUM_RE.finditer(question)}


@dataclass
class CarriedError:
    """A reference solution and its perturbed twin, both without annotations."""

    gold: str
    wrong: str
    step: int                 # index of the changed calculation
    old: str                  # its correct result
    new: str                  # the wrong result written instead
    gold_final: str
    wrong_final: str
    recomputed: list[int] = field(default_factory=list)  # later calculations redone with the error


def _candidates(value: Fraction, rng: np.random.Generator) -> list[Fraction]:
    """Plausible slips for one result: small offsets at the value's scale, doubling, halving."""
    out: list[Fraction] = []
    if value.denominator == 1:
        digits = len(str(abs(int(value))))
        scale = 10 ** max(0, digits - 2)
        for d in range(1, 10):
            out += [value + d * scale, value - d * scale]
            if scale > 1:
                out += [value + d, value - d]
        out += [value * 2, value + 10 * scale]
        if value % 2 == 0:
            out.append(value / 2)
    else:
        for d in (Fraction(1, 2), Fraction(1, 4), Fraction(1), Fraction(2), Fraction(1, 10)):
            out += [value + d, value - d]
        out.append(value * 2)
    seen, uniq = set(), []
    for c in out:
        if c != value and (c > 0 or value <= 0) and c not in seen:
            seen.add(c)
            uniq.append(c)
    order = rng.permutation(len(uniq))
    return [uniq[i] for i in order]


def _replace_numbers(text: str, mapping: dict[Fraction, Fraction]) -> tuple[str, bool]:
    """Replace every written number whose value is a key of ``mapping``; keep its formatting style."""
    changed = False

    def sub(m: re.Match) -> str:
        nonlocal changed
        v = parse_number(m.group(0))
        if v in mapping:
            changed = True
            return format_number(mapping[v], m.group(0))
        return m.group(0)

    return NUM_RE.sub(sub, text), changed


def _clean(new: Fraction, old: Fraction) -> bool:
    """A recomputed result must look like a GSM8K result: integer when the old one was, short decimals."""
    if old >= 0 and new < 0:
        return False
    if old.denominator == 1:
        return new.denominator == 1
    places = _decimals(new)
    return places is not None and places <= max(2, _decimals(old) or 0)


def eligible_steps(sol: Solution, question: str) -> list[int]:
    """Calculations whose result may be changed: intermediate (not the last), consistent, with a written
    equation (so the slip is visible), a result that is not a number of the question nor of another
    calculation (so every later use of it is unambiguous), and that a later calculation uses."""
    qnums = question_numbers(question)
    values = [s.value for s in sol.steps]
    out = []
    for s in sol.steps[:-1]:
        if not (s.consistent and s.faithful and s.value is not None and s.value != 0):
            continue
        if s.value in qnums or values.count(s.value) > 1:
            continue
        used_later = any(
            any(parse_number(t) == s.value for t in NUM_RE.findall(t2.expr))
            for t2 in sol.steps[s.index + 1:]
        )
        if used_later:
            out.append(s.index)
    return out


def carry_error(raw: str, question: str, rng: np.random.Generator, steps: Sequence[int] | None = None,
                avoid: Container[str] = (), max_tries: int = 40) -> CarriedError | None:
    """Change one intermediate result of ``raw`` and carry the error through to the final answer.

    Every later calculation that uses a changed value is recomputed from its (rewritten) expression,
    in both the annotation and the written text; its displayed result is replaced. The changed
    calculation keeps its written left-hand side, so it is the only equation that does not add up.
    ``steps`` restricts which eligible calculations may change; a result whose wrong text is in
    ``avoid`` is passed over. Returns None when no eligible calculation gives a clean, consistent,
    wrong final answer.
    """
    sol = parse_solution(raw)
    gold_final = sol.final_value
    if gold_final is None:
        return None
    allowed = eligible_steps(sol, question)
    if steps is not None:
        allowed = [j for j in allowed if j in set(steps)]
    for j in [allowed[i] for i in rng.permutation(len(allowed))]:
        target = sol.steps[j]
        for new_value in _candidates(target.value, rng)[:max_tries]:
            result = _propagate(sol, j, new_value, gold_final)
            if result is not None and result.wrong not in avoid:
                return result
    return None


def _propagate(sol: Solution, j: int, new_value: Fraction, gold_final: Fraction) -> CarriedError | None:
    raw = sol.raw
    target = sol.steps[j]
    mapping: dict[Fraction, Fraction] = {target.value: new_value}
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) on the raw text
    shown = raw[target.shown[0]:target.shown[1]]
    edits.append((target.shown[0], target.shown[1], format_number(new_value, shown)))
    edits.append((target.span[0], target.span[1], f"<<{target.expr}={format_number(new_value)}>>"))
    recomputed = []
    for s in sol.steps[j + 1:]:
        tokens = [parse_number(t) for t in NUM_RE.findall(s.expr)]
        if not any(t in mapping for t in tokens):
            # untouched; a written equation must not mention a changed value either
            if s.lhs is not None and any(v in mapping for v in _values(raw[s.lhs[0]:s.lhs[1]])):
                return None
            continue
        if not s.consistent or s.shown is None:
            return None
        new_expr, _ = _replace_numbers(s.expr, mapping)
        try:
            new_val = safe_eval(new_expr.replace(",", ""))
        except (NotArithmetic, ZeroDivisionError, OverflowError):
            return None
        if not _clean(new_val, s.value):
            return None
        if s.lhs is not None:
            # the written operands must follow the annotation: every changed operand it uses is shown
            lhs_text = raw[s.lhs[0]:s.lhs[1]]
            new_lhs, _ = _replace_numbers(lhs_text, mapping)
            shown_changed = sum(v in mapping for v in _values(lhs_text))
            if shown_changed < sum(t in mapping for t in tokens):
                return None
            edits.append((s.lhs[0], s.lhs[1], new_lhs))
        edits.append((s.span[0], s.span[1], f"<<{new_expr}={format_number(new_val)}>>"))
        edits.append((s.shown[0], s.shown[1], format_number(new_val, raw[s.shown[0]:s.shown[1]])))
        recomputed.append(s.index)
        if new_val != s.value:
            if s.value in mapping and mapping[s.value] != new_val:
                return None
            mapping[s.value] = new_val
    if gold_final not in mapping:
        return None  # the slip does not reach the final answer
    wrong_final = mapping[gold_final]
    if wrong_final == gold_final:
        return None
    edits.append((sol.final_span[0], sol.final_span[1], format_number(wrong_final, sol.final)))
    cut = target.shown[1]
    head, tail = raw[:cut], raw[cut:]
    for start, end, rep in sorted(edits, key=lambda e: e[0], reverse=True):
        if start >= cut:
            tail = tail[:start - cut] + rep + tail[end - cut:]
        else:
            head = head[:start] + rep + head[end:]
    wrong = head + tail
    # a stale use of a changed value left after the slip (an unannotated equation, a mention in
    # prose) would contradict the carried error: refuse rather than guess
    annotations = [st.span for st in sol.steps]
    for m in NUM_RE.finditer(raw, cut):
        pos = m.start()
        if any(a <= pos < b for a, b in annotations) or any(a <= pos < b for a, b, _ in edits):
            continue
        if parse_number(m.group(0)) in mapping:
            return None
    return CarriedError(
        gold=strip_annotations(raw), wrong=strip_annotations(wrong), step=j,
        old=format_number(target.value), new=format_number(new_value),
        gold_final=format_number(gold_final), wrong_final=format_number(wrong_final),
        recomputed=recomputed,
    )


# --------------------------------------------------------------------------------------- chat ----

_WORD = re.compile(r"\S+")


def truncate_words(text: str, fraction: float = 0.7) -> str:
    """The first ``round(fraction * n_words)`` words of ``text`` (cut at a word boundary, layout kept)."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    keep = max(1, min(len(words) - 1, round(fraction * len(words)))) if len(words) > 1 else 1
    return text[: words[keep - 1].end()]


def match_length(texts: Sequence[str], target: int, sep: str = "\n\n") -> str:
    """Concatenate ``texts`` (in order) until at least ``target`` characters, then cut at the last word
    boundary at or before ``target`` (hard cut when no boundary lies within 5% + 20 characters)."""
    out = ""
    for t in texts:
        out = t if not out else out + sep + t
        if len(out) >= target:
            break
    if len(out) <= target:
        return out
    slack = int(0.05 * target) + 20
    cut = max(out.rfind(" ", 0, target + 1), out.rfind("\n", 0, target + 1))
    if cut <= 0 or target - cut > slack:
        cut = target
    return out[:cut].rstrip()


def text_units(text: str) -> tuple[list[str], str]:
    """Split into lines (when there are at least three) or else sentences; returns (units, joiner)."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) >= 3:
        return lines, "\n"
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    return sentences, " "


def shuffle_units(text: str, rng: np.random.Generator) -> str | None:
    """The same lines / sentences in a different order; None when there are fewer than three."""
    units, joiner = text_units(text)
    if len(units) < 3 or len(set(units)) < 2:
        return None
    for _ in range(20):
        order = rng.permutation(len(units))
        shuffled = [units[i] for i in order]
        if shuffled != units:
            return joiner.join(shuffled)
    return joiner.join(units[1:] + units[:1])


_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
""".split())


def tfidf_matrix(docs: Sequence[str]) -> np.ndarray:
    """L2-normalized TF-IDF rows (sublinear tf, smoothed idf) over lower-cased alphanumeric terms, minus
    English stop words, found in at least two documents (a term in one document cannot make two
    documents similar)."""
    counts: list[dict[str, int]] = []
    df: dict[str, int] = {}
    for doc in docs:
        c: dict[str, int] = {}
        for tok in _TOKEN.findall(doc.lower()):
            if tok not in STOPWORDS:
                c[tok] = c.get(tok, 0) + 1
        counts.append(c)
        for tok in c:
            df[tok] = df.get(tok, 0) + 1
    vocab = {t: i for i, t in enumerate(sorted(t for t, n in df.items() if n >= 2))}
    n = len(docs)
    x = np.zeros((n, len(vocab)), dtype=np.float64)
    idf = np.zeros(len(vocab))
    for t, i in vocab.items():
        idf[i] = np.log((1 + n) / (1 + df[t])) + 1.0
    for r, c in enumerate(counts):
        for tok, k in c.items():
            i = vocab.get(tok)
            if i is not None:
                x[r, i] = (1.0 + np.log(k)) * idf[i]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def ranked_neighbours(docs: Sequence[str], groups: Sequence[str] | None = None, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """For each document, the ``k`` most TF-IDF-cosine-similar OTHER documents, best first, and their
    similarities. Documents of the same group (the same underlying question) never count as
    neighbours. Similarities are rounded to 1e-9 and ties go to the lower index, so the choice does
    not hang on floating-point noise."""
    n = len(docs)
    if n < 2:
        raise ValueError("ranked_neighbours needs at least two documents")
    x = tfidf_matrix(docs)
    sim = np.round(x @ x.T, 9)
    np.fill_diagonal(sim, -np.inf)
    if groups is not None:
        ids: dict[str, int] = {}
        g = np.asarray([ids.setdefault(str(v), len(ids)) for v in groups])
        sim[g[:, None] == g[None, :]] = -np.inf
    k = min(k, n - 1)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sim, order, axis=1)


def nearest_neighbours(docs: Sequence[str], groups: Sequence[str] | None = None) -> np.ndarray:
    """For each document, the index of the most similar other document (see :func:`ranked_neighbours`)."""
    return ranked_neighbours(docs, groups, k=1)[0][:, 0]
