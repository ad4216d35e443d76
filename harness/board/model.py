"""The leaderboard's model: what a board holds, and the text helpers every renderer shares. No I/O.

A :class:`Board` (``collect.collect``) holds :class:`Group` s (one per suite and config hash), each
with one :class:`Table` per scenario, each with one :class:`Row` per router label: its runs
(:class:`RunRef`, one per seed) and a :class:`~rmroute.harness.board.stats.Stat` per metric. The
evaluate runs make one :class:`PolicyTable` of :class:`Cell` s. :func:`header` and :func:`row_cells`
give a table's columns as text, for the Markdown and HTML renderers alike; :func:`md_text`,
:func:`md_code`, :func:`md_link` and :func:`html_td` put text from run files on a page literally.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from rmroute.harness.results import RunRecord
from rmroute.harness.board.stats import Comparison, Stat


# ---- replay and train tables ---------------------------------------------------------------------


def router_label(run: RunRecord) -> str:
    """A run's row label: its router's ``label``, else ``name(key=value, ...)`` of its parameters."""
    if run.router.label:
        return run.router.label
    params = ", ".join(f"{k}={v}" for k, v in sorted(run.router.params.items()))
    return f"{run.router.name}({params})" if params else run.router.name


@dataclass
class RunRef:
    """A run and the file it was read from."""

    run: RunRecord
    path: Path  # the file as found under root
    rel: str  # path relative to root, with forward slashes (links)

    @property
    def reproduce(self) -> str:
        """The shell command that reruns it and compares (``rmroute reproduce <file>``)."""
        return shlex.join(["rmroute", "reproduce", str(self.path)])


@dataclass
class Row:
    """One router label of a table: its ok runs (one per seed), a Stat per metric, and per reference
    (``Table.compared``) its :class:`~rmroute.harness.board.stats.Comparison`, or in ``vs_note`` why
    there is none ("ref" for the reference's own row)."""

    label: str
    refs: list[RunRef]  # ok runs, one per seed, by seed
    stats: dict[str, Stat]
    replay_only: bool = False
    learns: bool = False
    vs: dict[str, Comparison] = field(default_factory=dict)
    vs_note: dict[str, str] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return [r.run.seed for r in self.refs]


#: what a reference's own row shows in its Δ column
REF_NOTE = "ref"
#: what the Δ columns hold, as the pages say it above a table
COMPARISON_NOTE = ("test pair accuracy of the row minus the reference's, in points, paired over seeds and test "
                   "pairs; the 95% CI resamples test items (clusters), p is an item sign-flip test, Holm-adjusted "
                   "across the table's rows per reference (docs/leaderboard.md). This is the interval to read; "
                   "the CI column beside a mean is over seeds only.")


@dataclass
class Table:
    """One scenario of a group: rows sorted by the mean of the primary metric, best first.

    ``references`` maps each reference a row is compared with (in column order) to what it is on this
    table's seeds (e.g. "single:rm-a (seeds 0, 1, 2)"); ``feedback`` is the online feedback its runs
    got (``extra.feedback``), as text, when they record it."""

    suite: str
    config_sha256: str
    scenario: str
    replay: bool  # replay metrics (and plots); else the numeric metrics the runs share
    metrics: list[tuple[str, str]]
    primary: str | None
    rows: list[Row]
    references: dict[str, str] = field(default_factory=dict)
    feedback: str | None = None
    problems: list[str] = field(default_factory=list)  # comparisons the run files did not allow, and why
    plots: dict[str, Path] = field(default_factory=dict)  # kind -> file
    reference_runs: dict[str, dict[int, "RunRef"]] = field(default_factory=dict)  # reference -> seed -> its run

    @property
    def slug(self) -> str:
        return file_slug(f"{self.suite}-{self.config_sha256[:12]}-{self.scenario}")

    @property
    def title(self) -> str:
        fb = f" · feedback {self.feedback}" if self.feedback else ""
        return f"{self.suite} · config {self.config_sha256[:12]} · scenario {self.scenario}{fb}"

    @property
    def compared(self) -> list[str]:
        """The references that have a Δ column: those some row is compared with."""
        return [ref for ref in self.references if any(ref in r.vs for r in self.rows)]


@dataclass
class Group:
    """The runs of one results suite and config hash: a table per scenario, and the failed runs."""

    suite: str
    config_sha256: str
    kinds: list[str]
    reward_models: list[str]
    data: str
    tables: list[Table]
    failed: list[RunRef]
    superseded: int
    latest: str  # the newest `created` among its runs
    role: str = "result"  # "result": on the board; "check": results/checks.md (config `board`, runners' default)
    description: str = ""  # the config's description


@dataclass
class Board:
    """Everything the leaderboard shows, from one results root."""

    root: Path
    groups: list[Group]
    skipped: list[tuple[Path, str]]
    n_runs: int
    policies: PolicyTable | None = None  # from the evaluate runs of result configs
    check_policies: PolicyTable | None = None  # from the evaluate runs of check configs

    @property
    def tables(self) -> list[Table]:
        """The tables of the result groups (the board); checks are in :attr:`check_groups`."""
        return [t for g in self.result_groups for t in g.tables]

    @property
    def result_groups(self) -> list[Group]:
        return [g for g in self.groups if g.role == "result"]

    @property
    def check_groups(self) -> list[Group]:
        return [g for g in self.groups if g.role == "check"]


def file_slug(text: str) -> str:
    """``text`` as a file name stem: runs of other characters than letters, digits, ``._-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


# ---- the policy table (evaluate runs) -------------------------------------------------------------

#: flags (``extra.flags`` keys) shown as a footnote marker in a cell, and what they mean
FLAG_NOTES: dict[str, tuple[str, str]] = {
    "lc_without_gamed_baselines": ("‡", "length-controlled win rate fitted without AlpacaEval's gamed baselines "
                                        "(df_gamed.csv unavailable offline)"),
    "limit": ("§", "evaluated on a subset of the suite (the suite's `limit` parameter)"),
}


@dataclass
class Cell:
    """One policy × suite metric: the mean over seeds and its interval, with footnote marks."""

    mean: float
    lo: float | None
    hi: float | None
    n_seeds: int
    n_items: int
    marks: str = ""
    runs: list[tuple[int, str]] = field(default_factory=list)  # (seed, run JSON path relative to results/)

    def text(self) -> str:
        """``mean [lo, hi]`` and the marks, as the cell shows it."""
        def num(x: float, digits: int) -> str:
            return f"{(0.0 if abs(x) < 1e-9 else x):.{digits}g}"  # a bound of 5.6e-17 is 0

        s = num(self.mean, 4)
        if self.lo is not None and self.hi is not None:
            s += f" [{num(self.lo, 3)}, {num(self.hi, 3)}]"
        return s + self.marks


@dataclass
class PolicyTable:
    """Trained policies (rows) × evaluation-suite metrics (columns), from the evaluate runs."""

    columns: list[tuple[str, str]]  # (eval suite, metric key)
    rows: dict[str, dict[tuple[str, str], Cell]]  # policy label -> column -> cell
    routers: dict[str, str]  # policy label -> the router that trained it ("base" for base models)
    failed: list[tuple[RunRecord, str]]
    flags: set[str]
    sources: dict[str, str] = field(default_factory=dict)  # results suite -> its config's description

    def sort_key(self) -> Callable[[str], Any]:
        """Rows by the first column's mean, best first; rows without it last; then by label."""
        first = self.columns[0] if self.columns else None

        def key(label: str):
            cell = self.rows[label].get(first) if first else None
            return (cell is None, -(cell.mean if cell else 0.0), label)

        return key


def policy_label(run: RunRecord) -> str:
    """An evaluate run's policy label: ``extra.policy_label``, else its router's label or name."""
    return str(run.extra.get("policy_label") or run.router.label or run.router.name)


def eval_suite(run: RunRecord) -> str:
    """An evaluate run's evaluation suite: ``extra.eval_suite``, else its scenario."""
    return str(run.extra.get("eval_suite") or run.scenario)


# ---- cells shared by the Markdown and HTML renderings --------------------------------------------


def delta_header(reference: str) -> str:
    """The Δ column's header for ``reference``."""
    return f"Δ vs {reference} [95% CI]"


def header(table: Table) -> list[str]:
    """The column headers of a replay or train table (before the links and reproduce columns)."""
    cols = ["router", "seeds"]
    for key, head in table.metrics:
        cols.append(head)
        if key == table.primary:
            cols.append("95% CI")
    for ref in table.compared:
        cols += [delta_header(ref), "p (Holm)"]
    return cols


def row_cells(table: Table, row: Row) -> list[tuple[str, float | None]]:
    """(text, sort value) per column of :func:`header`, without links: the value is None for a text
    column and NaN for a number that is missing (shown as "–"); a reference's own row shows "ref"
    (sorted as a difference of 0)."""
    nan = float("nan")
    label = row.label + (" †" if row.replay_only else "")
    cells: list[tuple[str, float | None]] = [(label, None), (str(len(row.refs)), float(len(row.refs)))]
    for key, _ in table.metrics:
        st = row.stats[key]
        cells.append((st.fmt(), st.mean if st.n else nan))
        if key == table.primary:
            cells.append((st.fmt_ci(), st.lo if st.n > 1 else nan))
    for ref in table.compared:
        c = row.vs.get(ref)
        if c is not None:
            cells += [(c.fmt(), c.diff), (c.fmt_p(), c.p_holm)]
        elif row.vs_note.get(ref) == REF_NOTE:
            cells += [(REF_NOTE, 0.0), ("–", nan)]
        else:
            cells += [("–", nan), ("–", nan)]
    return cells


# ---- text from run files, shown literally ------------------------------------------------------
#
# Everything a run file or a config supplies (labels, scenario and suite names, errors, paths, metric
# keys, descriptions) goes through one of the three Markdown helpers below before it reaches
# LEADERBOARD.md, so such text is always shown literally: never raw HTML, a link, an image, a heading
# or a broken code span. Only the numbers the renderers format (means, intervals, p-values) are
# written as they are. The HTML page escapes such text with ``html.escape`` (:func:`html_td`).

#: every character that can open Markdown or HTML syntax inside a line: backslash-escaped by md_text
#: (``<`` raw HTML and autolinks, ``&`` entities, ``[ ]`` links and images, `` ` `` code spans,
#: ``* ~`` emphasis, ``#`` headings, ``|`` table cells, ``\`` the escapes themselves; ``_`` below)
_MD_SPECIAL = re.compile(r"([\\`*~\[\]<>&|#])")
#: a run of underscores: emphasis unless it has a letter or digit on both sides (``lc_win_rate``)
_UNDERSCORES = re.compile(r"_+")
#: what CommonMark, or a reader splitting lines, could take as a line break: replaced by a space, so
#: no text from a run file starts a line of its own (a heading, a list, a table row)
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def _underscores(m: re.Match) -> str:
    text, i, j = m.string, m.start(), m.end()
    intraword = i > 0 and j < len(text) and text[i - 1].isalnum() and text[j].isalnum()
    return m.group() if intraword else m.group().replace("_", "\\_")


def md_text(text: Any) -> str:
    """``text`` as literal Markdown text on one line (also inside a table cell)."""
    return _UNDERSCORES.sub(_underscores, _MD_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(text))))


def md_code(text: Any, in_table: bool = True) -> str:
    """``text`` as one literal code span. Backslash escapes do not work inside a code span, so the
    fence is one backtick longer than the longest run of backticks in ``text`` (padded with a space
    where ``text`` starts or ends with a backtick or a space). In a table cell (``in_table``) a pipe
    would end the cell: each gets a backslash, so that an odd number of them precedes it (a pipe that
    already had an odd number shows one backslash more)."""
    text = _LINE_BREAKS.sub(" ", str(text)) or " "
    if in_table:
        text = re.sub(r"(\\*)\|", lambda m: m.group(1) + "\\" * (1 if len(m.group(1)) % 2 == 0 else 2) + "|", text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.strip(" ") and (text[0] in "` " or text[-1] in "` ") else ""  # all spaces: kept as is
    return f"{fence}{pad}{text}{pad}{fence}"


def md_link(text: Any, target: str) -> str:
    """A link to a file relative to the page: ``text`` escaped, the target percent-encoded (so no
    ``:`` scheme such as ``javascript:``, no parenthesis or space ends it early)."""
    return f"[{md_text(text)}]({quote(target)})"


def first_line(text: str | None, limit: int = 300) -> str:
    """The first non-empty line of an error, cut to ``limit`` characters ("(no error recorded)" if none)."""
    text = (text or "").strip().splitlines()[0] if (text or "").strip() else "(no error recorded)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_td(text: str, value: float | None = None, raw: bool = False) -> str:
    """A ``<td>``: ``text`` escaped (as it is when ``raw``); with a ``value``, a right-aligned numeric cell
    that sorts by it (``data-value``; a missing number, NaN, sorts last)."""
    inner = text if raw else escape(text)
    if value is None:
        return f"<td>{inner}</td>"
    key = repr(float(value)) if math.isfinite(value) else ""  # missing numbers sort last
    return f'<td class="num" data-value="{key}">{inner}</td>'
