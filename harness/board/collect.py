"""Rebuild the leaderboard from the run JSON files, and from nothing else.

``build(root)`` reads ``<root>/runs/**.json`` (:func:`rmroute.harness.results.load_runs`) and writes

* ``<root>/LEADERBOARD.md``: one table per (suite, config hash, scenario);
* ``<root>/leaderboard.html``: the same tables, sortable, one self-contained file (``rmroute.harness.board.html``);
* ``<root>/plots/*.png``: accuracy vs RM calls per item with the Pareto front, cumulative regret,
  RM choice share per domain for the learning routers (``rmroute.harness.board.plots``).

Runs are grouped by suite and by config hash: runs of different configs never merge silently.
Within a group, one table per scenario and one row per router label. Statistics (docs/leaderboard.md):

* per metric, over seeds: mean, sample standard deviation, and a 95% percentile bootstrap interval
  of the mean (exact bootstrap distribution for up to 8 seeds, 20,000 seeded resamples beyond);
* a paired test against the best non-oracle baseline, over seeds *and* test items: the per-item
  test outcomes (``extra.test_outcomes``) of the seeds both routers ran; a two-way bootstrap (seeds
  and items resampled with replacement, items as clusters across seeds) gives the 95% interval of
  the accuracy difference and a two-sided p-value.
"""

from __future__ import annotations

import itertools
import math
import re
import shlex
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

import numpy as np

from rmroute.harness.results import RunRecord, atomic_write_text, load_runs, newest, run_path

LEVEL = 0.95
EXACT_BOOTSTRAP_MAX_SEEDS = 8
SEED_BOOTSTRAP_RESAMPLES = 20_000
PAIRED_BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

# Replay runs: (metric key, column header). The first is the one rows are sorted by.
REPLAY_METRICS: tuple[tuple[str, str], ...] = (
    ("test_routing_accuracy", "routing acc (test)"),
    ("test_accuracy", "pair acc (test)"),
    ("test_calls_per_item", "RM calls/item"),
    ("stream_mean_reward", "stream reward"),
    ("stream_regret", "stream regret"),
)
PRIMARY_FALLBACK = ("test_routing_accuracy", "test_accuracy", "accuracy", "win_rate", "score")
SCENARIO_ORDER = ("iid", "shift", "cold-start", "drift", "default")


# ---- statistics -----------------------------------------------------------------------------


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out.append(float(v))
    return out


def _quantile_inverted_cdf(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` of the total."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    k = int(np.searchsorted(cum, q * cum[-1] - 1e-12 * cum[-1], side="left"))
    return float(values[order][min(k, len(order) - 1)])


def bootstrap_mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds.

    Up to ``EXACT_BOOTSTRAP_MAX_SEEDS`` values the bootstrap distribution is enumerated exactly
    (every multiset of n draws with its multinomial weight), so the interval needs no random numbers;
    beyond, ``SEED_BOOTSTRAP_RESAMPLES`` resamples from a generator seeded with ``BOOTSTRAP_SEED``.
    The bounds are the (1-level)/2 and (1+level)/2 quantiles of that distribution, each the smallest
    resampled mean whose cumulative probability reaches the level (no interpolation). With fewer than
    two values there is no interval: (nan, nan).
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2:
        return (float("nan"), float("nan"))
    a = (1.0 - level) / 2.0
    if n <= EXACT_BOOTSTRAP_MAX_SEEDS:
        means, weights = [], []
        fact = math.factorial(n)
        for combo in itertools.combinations_with_replacement(range(n), n):
            counts = np.bincount(combo, minlength=n)
            means.append(float(np.dot(counts, x)) / n)
            weights.append(fact // math.prod(math.factorial(int(c)) for c in counts))
        m, w = np.asarray(means), np.asarray(weights, dtype=np.float64)
        return (_quantile_inverted_cdf(m, w, a), _quantile_inverted_cdf(m, w, 1.0 - a))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boots = x[rng.integers(0, n, size=(SEED_BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    lo, hi = np.quantile(boots, [a, 1.0 - a], method="inverted_cdf")
    return (float(lo), float(hi))


@dataclass
class Stat:
    """A metric over seeds: mean, sample std (nan for one value), bootstrap CI (nan below two)."""

    mean: float
    std: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: Iterable[Any]) -> "Stat":
        xs = _finite(values)
        if not xs:
            return cls(float("nan"), float("nan"), float("nan"), float("nan"), 0)
        std = statistics.stdev(xs) if len(xs) > 1 else float("nan")
        lo, hi = bootstrap_mean_ci(xs)
        return cls(statistics.fmean(xs), std, lo, hi, len(xs))

    def fmt(self) -> str:
        if self.n == 0:
            return "–"
        if self.n == 1:
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} ± {self.std:.2g}"

    def fmt_ci(self) -> str:
        if self.n < 2:
            return "–"
        return f"[{self.lo:.4g}, {self.hi:.4g}]"


@dataclass
class Paired:
    """Row minus baseline, paired over the seeds both ran and the test items."""

    baseline: str
    diff: float
    lo: float
    hi: float
    p: float
    n_seeds: int
    n_items: int

    def fmt(self) -> str:
        return f"{self.diff:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}]"

    def fmt_p(self) -> str:
        return f"{self.p:.2g}" if self.p < 0.01 else f"{self.p:.3f}"


def outcomes_matrix(outcomes: Sequence[str]) -> np.ndarray:
    """(seeds, items) 0/1 from the runs' ``test_outcomes`` strings ('1' = right)."""
    if not outcomes:
        return np.zeros((0, 0))
    n = len(outcomes[0])
    if any(len(s) != n for s in outcomes):
        raise ValueError("test_outcomes strings of different lengths cannot be paired")
    bad = {c for s in outcomes for c in s} - {"0", "1"}
    if bad:
        raise ValueError(f"test_outcomes may hold only '0' and '1', not {sorted(bad)}")
    return np.array([[c == "1" for c in s] for s in outcomes], dtype=np.float64).reshape(len(outcomes), n)


def paired_test(
    a: Sequence[str], b: Sequence[str], n_boot: int = PAIRED_BOOTSTRAP_RESAMPLES,
    level: float = LEVEL, seed: int = BOOTSTRAP_SEED, baseline: str = "",
) -> Paired:
    """Paired two-way bootstrap of the accuracy difference a − b.

    ``a[s]`` and ``b[s]`` are the per-item outcome strings of the two routers on the same seed s
    (same test items, same order). The statistic is the mean of the (seeds × items) matrix of
    differences, i.e. the mean over seeds of the per-seed accuracy difference. Each of ``n_boot``
    replicates resamples seeds (rows) and items (columns, one draw shared by every seed, so an item
    stays paired with itself across seeds) with replacement. The interval is the percentile interval;
    the two-sided p-value is ``min(1, 2·min(P*(Δ* ≤ 0), P*(Δ* ≥ 0)))`` with the +1 correction
    ``(count + 1) / (n_boot + 1)``, i.e. the smallest level at which the bootstrap interval excludes 0.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired test needs outcome strings for the same seeds ({len(a)} vs {len(b)})")
    A, B = outcomes_matrix(list(a)), outcomes_matrix(list(b))
    if A.shape != B.shape:
        raise ValueError(f"paired test: {A.shape[1]} vs {B.shape[1]} test items")
    D = A - B
    S, N = D.shape
    if N == 0:
        raise ValueError("paired test: no test items")
    # Items with the same column of differences across seeds are exchangeable: resampling N items
    # with replacement is a multinomial draw over the distinct columns (at most 3**S of them), with
    # probabilities their shares. Same distribution as drawing item indices, far less work.
    patterns, counts = np.unique(D.T, axis=0, return_counts=True)  # (P, S), (P,)
    rng = np.random.default_rng(seed)
    seed_w = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot) / S  # (B, S) resampled seed weights
    item_w = rng.multinomial(N, counts / N, size=n_boot)  # (B, P) resampled item counts per column
    boots = np.einsum("bs,ps,bp->b", seed_w, patterns, item_w) / N
    a_ = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [a_, 1.0 - a_], method="inverted_cdf")
    le = (int(np.sum(boots <= 0)) + 1) / (n_boot + 1)
    ge = (int(np.sum(boots >= 0)) + 1) / (n_boot + 1)
    return Paired(baseline, float(D.mean()), float(lo), float(hi), min(1.0, 2.0 * min(le, ge)), S, N)


# ---- model ----------------------------------------------------------------------------------


def router_label(run: RunRecord) -> str:
    if run.router.label:
        return run.router.label
    params = ", ".join(f"{k}={v}" for k, v in sorted(run.router.params.items()))
    return f"{run.router.name}({params})" if params else run.router.name


@dataclass
class RunRef:
    run: RunRecord
    path: Path  # the file as found under root
    rel: str  # path relative to root, with forward slashes (links)

    @property
    def reproduce(self) -> str:
        return shlex.join(["rmroute", "reproduce", str(self.path)])


@dataclass
class Row:
    label: str
    refs: list[RunRef]  # ok runs, one per seed, by seed
    stats: dict[str, Stat]
    replay_only: bool = False
    learns: bool = False
    paired: Paired | None = None
    paired_note: str = ""  # why there is no paired test, when there is none

    @property
    def seeds(self) -> list[int]:
        return [r.run.seed for r in self.refs]

    def outcomes(self) -> dict[int, str]:
        out = {}
        for r in self.refs:
            s = r.run.extra.get("test_outcomes")
            if isinstance(s, str) and s:
                out[r.run.seed] = s
        return out


@dataclass
class Table:
    suite: str
    config_sha256: str
    scenario: str
    replay: bool  # replay metrics (and plots); else the numeric metrics the runs share
    metrics: list[tuple[str, str]]
    primary: str | None
    rows: list[Row]
    baseline: str | None = None
    runner_up: str | None = None
    plots: dict[str, Path] = field(default_factory=dict)  # kind -> file

    @property
    def slug(self) -> str:
        return _slug(f"{self.suite}-{self.config_sha256[:12]}-{self.scenario}")

    @property
    def title(self) -> str:
        return f"{self.suite} · config {self.config_sha256[:12]} · scenario {self.scenario}"

    @property
    def has_paired(self) -> bool:
        return any(r.outcomes() for r in self.rows)


@dataclass
class Group:
    suite: str
    config_sha256: str
    kinds: list[str]
    reward_models: list[str]
    data: str
    tables: list[Table]
    failed: list[RunRef]
    superseded: int
    latest: str  # the newest `created` among its runs


@dataclass
class Board:
    root: Path
    groups: list[Group]
    skipped: list[tuple[Path, str]]
    n_runs: int
    policies: Any = None  # rmroute.harness.board.policy.PolicyTable, from the evaluate runs

    @property
    def tables(self) -> list[Table]:
        return [t for g in self.groups for t in g.tables]


@dataclass
class TopTable:
    """A plain table (strings) for terminals: ``to_rich(top)`` makes a rich Table of it."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


class BuildResult(tuple):
    """``(path, n_runs, n_skipped)`` as before, plus attributes: ``html`` (Path), ``plots``
    (list of Paths), ``top`` (TopTable or None), ``board`` (the Board the files were built from)."""

    def __new__(cls, path: Path, n_runs: int, n_skipped: int, *, html: Path, plots: list[Path],
                top: TopTable | None, board: Board) -> "BuildResult":
        obj = super().__new__(cls, (path, n_runs, n_skipped))
        obj.html, obj.plots, obj.top, obj.board = html, plots, top, board
        return obj

    path = property(lambda self: self[0])
    n_runs = property(lambda self: self[1])
    n_skipped = property(lambda self: self[2])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _scenario_key(name: str) -> tuple[int, str]:
    return (SCENARIO_ORDER.index(name) if name in SCENARIO_ORDER else len(SCENARIO_ORDER), name)


def _sort_key(row: Row, primary: str | None) -> tuple:
    m = row.stats[primary].mean if primary and primary in row.stats else float("nan")
    return (0 if math.isfinite(m) else 1, -m if math.isfinite(m) else 0.0, row.label)


def _ref_paths(root: Path) -> dict[str, Path]:
    """run_id -> the file it was loaded from (files are named <run_id>.json; first one wins)."""
    base = root / "runs"
    out: dict[str, Path] = {}
    for p in sorted(base.rglob("*.json")) if base.is_dir() else []:
        out.setdefault(p.stem, p)
    return out


def _numeric_keys(run: RunRecord) -> set[str]:
    return {k for k, v in run.metrics.items() if _finite([v])}


def _make_table(suite: str, sha: str, scenario: str, refs: list[RunRef]) -> Table:
    runs = [r.run for r in refs]
    replay = all("test_routing_accuracy" in r.metrics for r in runs)
    if replay:
        metrics = list(REPLAY_METRICS)
        primary: str | None = REPLAY_METRICS[0][0]
    else:
        shared = sorted(set.intersection(*(_numeric_keys(r) for r in runs))) if runs else []
        metrics = [(k, k) for k in shared]
        primary = next((k for k in PRIMARY_FALLBACK if k in shared), None)
    by_label: dict[str, list[RunRef]] = defaultdict(list)
    for ref in refs:
        by_label[router_label(ref.run)].append(ref)
    rows = []
    for label, rs in by_label.items():
        rs = sorted(rs, key=lambda r: r.run.seed)
        stats = {k: Stat.of(r.run.metrics.get(k) for r in rs) for k, _ in metrics}
        rows.append(Row(label, rs, stats,
                        replay_only=any(bool(r.run.extra.get("replay_only")) for r in rs),
                        learns=any(bool(r.run.extra.get("learns")) for r in rs)))
    rows.sort(key=lambda r: _sort_key(r, primary))
    table = Table(suite, sha, scenario, replay, metrics, primary, rows)
    _add_paired(table)
    return table


def _add_paired(table: Table) -> None:
    """Set each row's paired test against the best non-oracle row other than itself."""
    p = table.primary
    candidates = [r for r in table.rows
                  if not r.replay_only and p and math.isfinite(r.stats[p].mean)]  # already sorted best first
    if not candidates:
        for r in table.rows:
            r.paired_note = "no non-oracle baseline"
        return
    table.baseline = candidates[0].label
    table.runner_up = candidates[1].label if len(candidates) > 1 else None
    by_label = {r.label: r for r in table.rows}
    for row in table.rows:
        base_label = table.runner_up if row.label == table.baseline else table.baseline
        if base_label is None:
            row.paired_note = "no other non-oracle row"
            continue
        mine, theirs = row.outcomes(), by_label[base_label].outcomes()
        seeds = sorted(s for s in set(mine) & set(theirs) if len(mine[s]) == len(theirs[s]))
        if not seeds:
            row.paired_note = "no per-item outcomes on shared seeds"
            continue
        try:
            row.paired = paired_test([mine[s] for s in seeds], [theirs[s] for s in seeds], baseline=base_label)
        except ValueError as exc:
            row.paired_note = str(exc)


def collect(root: str | Path = "results") -> Board:
    """Load ``<root>/runs/**.json`` and organise it into groups and tables (no files written)."""
    root = Path(root)
    runs, skipped = load_runs(root)
    paths = _ref_paths(root)

    def ref(run: RunRecord) -> RunRef:
        path = paths.get(run.run_id) or run_path(root, run)
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        return RunRef(run, path, rel)

    from rmroute.harness.board.policy import collect_policies

    policies = collect_policies([(r, ref(r).rel) for r in runs if r.kind == "evaluate"])
    grouped: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.kind != "evaluate":  # evaluate runs make the policy table
            grouped[(run.suite, run.config_sha256)].append(run)
    groups = []
    for (suite, sha), members in sorted(grouped.items()):
        # one run per (scenario, router, seed): the newest wins (a resumed or repeated run)
        kept = list(newest(members, lambda r: (r.scenario, router_label(r), r.seed)).values())
        by_scenario: dict[str, list[RunRef]] = defaultdict(list)
        failed = []
        for run in kept:
            if run.status == "ok":
                by_scenario[run.scenario].append(ref(run))
            else:
                failed.append(ref(run))
        tables = [_make_table(suite, sha, sc, by_scenario[sc]) for sc in sorted(by_scenario, key=_scenario_key)]
        failed.sort(key=lambda r: (_scenario_key(r.run.scenario), router_label(r.run), r.run.seed))
        first = members[0]
        groups.append(Group(
            suite=suite, config_sha256=sha, kinds=sorted({r.kind for r in members}),
            reward_models=list(first.reward_models), data=f"{first.data.name} ({first.data.sha256[:12]}, n={first.data.n})",
            tables=tables, failed=failed, superseded=len(members) - len(kept),
            latest=max(r.created for r in members),
        ))
    return Board(root, groups, skipped, len(runs), policies)


# ---- cells shared by the Markdown, HTML and terminal renderings --------------------------------


def header(table: Table) -> list[str]:
    cols = ["router", "seeds"]
    for key, head in table.metrics:
        cols.append(head)
        if key == table.primary:
            cols.append("95% CI")
    if table.has_paired:
        cols += ["paired vs", "Δ pair acc [95% CI]", "p"]
    return cols


def row_cells(table: Table, row: Row) -> list[tuple[str, float | None]]:
    """(text, sort value) per column of :func:`header`, without links: the value is None for a text
    column and NaN for a number that is missing (shown as "–")."""
    nan = float("nan")
    label = row.label + (" †" if row.replay_only else "")
    cells: list[tuple[str, float | None]] = [(label, None), (str(len(row.refs)), float(len(row.refs)))]
    for key, _ in table.metrics:
        st = row.stats[key]
        cells.append((st.fmt(), st.mean if st.n else nan))
        if key == table.primary:
            cells.append((st.fmt_ci(), st.lo if st.n > 1 else nan))
    if table.has_paired:
        if row.paired is not None:
            pr = row.paired
            cells += [(pr.baseline, None), (pr.fmt(), pr.diff), (pr.fmt_p(), pr.p)]
        else:
            cells += [(row.paired_note or "–", None), ("–", nan), ("–", nan)]
    return cells


COMPACT = {"test_routing_accuracy": "routing acc", "test_accuracy": "pair acc", "test_calls_per_item": "calls",
           "stream_mean_reward": "reward", "stream_regret": "regret"}


def compact_cells(table: Table, row: Row) -> list[str]:
    """A narrower row for terminals: means only, except mean ± std and the CI of the primary metric."""
    label = row.label + (" †" if row.replay_only else "")
    cells = [label, str(len(row.refs))]
    for key, _ in table.metrics:
        st = row.stats[key]
        if key == table.primary:
            cells += [st.fmt(), st.fmt_ci()]
        else:
            cells.append("–" if st.n == 0 else f"{st.mean:.4g}")
    if table.has_paired:
        cells += [f"{row.paired.diff:+.3f}", row.paired.fmt_p()] if row.paired else ["–", "–"]
    return cells


def compact_header(table: Table) -> list[str]:
    cols = ["router", "seeds"]
    for key, head in table.metrics:
        cols.append(COMPACT.get(key, head))
        if key == table.primary:
            cols.append("95% CI")
    if table.has_paired:
        cols += ["Δ vs base", "p"]
    return cols


def top_table(board: Board) -> TopTable | None:
    """The first scenario's table of the group with the newest run, in the compact form."""
    groups = [g for g in board.groups if g.tables]
    if not groups:
        return None
    group = max(groups, key=lambda g: g.latest)
    table = group.tables[0]
    notes = []
    if table.baseline and table.has_paired:
        notes.append(f"Δ vs base: paired pair-accuracy difference against {table.baseline} (best non-oracle by "
                     f"{table.primary})" + (f"; {table.baseline} against {table.runner_up}" if table.runner_up else "")
                     + ".")
    if any(r.replay_only for r in table.rows):
        notes.append("† replay only (oracle).")
    note = " ".join(notes)
    return TopTable(title=table.title, columns=compact_header(table),
                    rows=[compact_cells(table, r) for r in table.rows], note=note)


def to_rich(top: TopTable):
    """A rich Table for the terminal (light borders, cells fold rather than being cut)."""
    from rich import box
    from rich.table import Table as RichTable

    t = RichTable(title=top.title, caption=top.note or None, box=box.SIMPLE_HEAD, padding=(0, 1),
                  caption_justify="left")
    for i, col in enumerate(top.columns):
        t.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
    for r in top.rows:
        t.add_row(*r)
    return t


def print_top(console, top: TopTable | None) -> None:
    """Print the top table on a rich Console. Off a terminal (a log, a pipe) it is drawn at its natural
    width instead of being folded into 80 columns."""
    if top is None:
        return
    from rich.console import Console
    from rich.measure import Measurement

    table = to_rich(top)
    if not console.is_terminal:
        need = Measurement.get(console, console.options.update(width=10_000), table).maximum
        if need > console.width:
            console = Console(file=console.file, width=need, color_system=console.color_system,
                              force_terminal=False, highlight=False)
    console.print(table)


# ---- Markdown ---------------------------------------------------------------------------------
#
# Everything a run file or a config supplies (labels, scenario and suite names, errors, paths, metric
# keys, descriptions) goes through one of the three helpers below before it reaches LEADERBOARD.md,
# so such text is always shown literally: never raw HTML, a link, an image, a heading or a broken
# code span. Only the numbers this module formats (means, intervals, p-values) are written as they are.

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


def _first_line(text: str | None, limit: int = 300) -> str:
    text = (text or "").strip().splitlines()[0] if (text or "").strip() else "(no error recorded)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(board: Board) -> str:
    out = ["# rmroute leaderboard", "",
           "Rebuilt by `rmroute leaderboard` from `results/runs/**.json`; do not edit by hand. "
           "Statistics: docs/leaderboard.md. Sortable version: [leaderboard.html](leaderboard.html).", ""]
    if not board.groups and board.policies is None:
        out.append("No runs yet.")
    if board.policies is not None:
        from rmroute.harness.board.policy import render_markdown as policy_markdown

        out += policy_markdown(board.policies)
    for group in board.groups:
        out += [f"## {md_text(group.suite)} · config {md_code(group.config_sha256[:12], in_table=False)} · "
                f"{md_text(', '.join(group.kinds))}", "",
                f"Data {md_text(group.data)}; reward models: {md_text(', '.join(group.reward_models) or '–')}.", ""]
        if group.superseded:
            out += [f"{group.superseded} older run(s) of the same scenario, router and seed are superseded "
                    "by newer ones and not counted.", ""]
        for table in group.tables:
            out += _md_table(table)
        if group.failed:
            out += [f"### Failed runs ({len(group.failed)})", "",
                    "| router | scenario | seed | error | run | reproduce |", "|---|---|---|---|---|---|"]
            for r in group.failed:
                out.append(f"| {md_text(router_label(r.run))} | {md_text(r.run.scenario)} | {r.run.seed} | "
                           f"{md_text(_first_line(r.run.error))} | {md_link('json', r.rel)} | {md_code(r.reproduce)} |")
            out.append("")
    if board.skipped:
        out += ["## Skipped files", ""]
        out += [f"- {md_code(str(p), in_table=False)}: {md_text(why)}" for p, why in board.skipped]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _md_table(table: Table) -> list[str]:
    cols = header(table) + ["runs (seed → JSON)", "reproduce"]
    out = [f"### scenario {md_code(table.scenario, in_table=False)}", ""]
    if table.primary:
        out += [f"Sorted by mean {md_text(table.primary)}.", ""]
    if table.baseline and table.has_paired:
        out.append(f"Paired test baseline: **{md_text(table.baseline)}** "
                   f"(best non-oracle row by mean {md_text(table.primary)})"
                   + (f"; {md_text(table.baseline)} itself is set against **{md_text(table.runner_up)}**."
                      if table.runner_up else "."))
        out.append("")
    out += ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in table.rows:
        cells = [md_text(text) if value is None else text for text, value in row_cells(table, row)]  # numbers as they are
        links = " ".join(md_link(r.run.seed, r.rel) for r in row.refs)
        repro = "<br>".join(md_code(r.reproduce) for r in row.refs)  # <br>: a line break inside a cell
        out.append("| " + " | ".join(cells + [links, repro]) + " |")
    out.append("")
    if any(r.replay_only for r in table.rows):
        out += ["† replay only: sees the gold labels (upper bound), never a baseline.", ""]
    if table.plots:
        out += [f"![{md_text(kind)}]({quote('plots/' + p.name)})" for kind, p in table.plots.items()]
        out.append("")
    return out


# ---- build --------------------------------------------------------------------------------------


def build(root: str | Path = "results", plots: bool = True) -> BuildResult:
    """Write ``<root>/LEADERBOARD.md``, ``<root>/leaderboard.html`` and ``<root>/plots/*.png``.

    Returns a :class:`BuildResult`: unpacks as ``(markdown path, runs used, files skipped)`` and has
    ``.html``, ``.plots`` (files written), ``.top`` (the top table for a terminal) and ``.board``.
    """
    from rmroute.harness.board.html import render_html

    root = Path(root)
    board = collect(root)
    written: list[Path] = []
    if plots:
        from rmroute.harness.board.plots import write_plots

        written = write_plots(board, root / "plots")
    md_path = root / "LEADERBOARD.md"
    atomic_write_text(md_path, render_markdown(board))
    html_path = root / "leaderboard.html"
    atomic_write_text(html_path, render_html(board))
    return BuildResult(md_path, board.n_runs, len(board.skipped), html=html_path, plots=written,
                       top=top_table(board), board=board)
