"""The leaderboard's front page: which router wins where, at what cost, in one table.

Columns are *tracks*: chosen replay tables (a suite's scenario), named in ``<root>/board.yaml``::

    front:
      - {suite: rmroute-pairs-v1, scenarios: [iid, shift, cold-start, drift], label: CPU pool}
      - {suite: judgebench-gpt4o, scenarios: [iid], label: JudgeBench}

(without the file: every result group's first scenario). Rows are routers: every router label of
those tables except the per-RM ``single:`` rows, which the row **best single RM** stands for (per
seed, the single RM with the best offline accuracy: the reference every row is compared with). A
cell is the mean test pair accuracy over seeds with the half-width of its 95% interval, marked ▲
(▼) when the row is significantly above (below) the best single RM (item-bootstrap interval
excludes 0 and Holm p < 0.05), and the mean cost per item where the track's RMs differ in cost.
Under the table, three sentences per track, generated from the numbers. No I/O but reading
``board.yaml``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rmroute.harness.board.collect import BEST_SINGLE, COST_METRIC, DOMAIN_BEST, SINGLE_PREFIX
from rmroute.harness.board.model import Board, Row, Table, md_text, router_label
from rmroute.harness.board.stats import Comparison, Stat
from rmroute.harness.core.errors import ConfigError

#: the metric a front cell shows
HEADLINE = "test_accuracy"
#: significance for the ▲ / ▼ marks
ALPHA = 0.05
UP, DOWN = "▲", "▼"


@dataclass
class Track:
    """One front column: a replay table and its short name."""

    label: str
    table: Table

    @property
    def costs_differ(self) -> bool:
        return COST_METRIC in self.table.metrics


@dataclass
class FrontCell:
    acc: Stat
    calls: Stat
    cost: Stat | None
    vs: dict[str, Comparison] = field(default_factory=dict)
    is_reference: str | None = None  # the reference this row is on the track


@dataclass
class Front:
    tracks: list[Track]
    rows: list[str]  # row labels, best first
    cells: dict[tuple[str, int], FrontCell]  # (row label, track index) -> cell
    families: dict[str, str]  # row label -> router family (for filters)
    notes: list[str]  # one paragraph per track

    def best(self, t: int) -> str | None:
        """The row with the highest mean accuracy on track ``t`` (the oracle excluded)."""
        scored = [(c.acc.mean, r) for (r, i), c in self.cells.items() if i == t and r != "oracle" and c.acc.n]
        return max(scored)[1] if scored else None


def load_spec(root: Path) -> list[dict[str, Any]] | None:
    """The ``front`` list of ``<root>/board.yaml`` (None without the file)."""
    path = root / "board.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    front = data.get("front") if isinstance(data, dict) else None
    if not isinstance(front, list) or not all(isinstance(e, dict) and isinstance(e.get("suite"), str) for e in front):
        raise ConfigError(f"{path}: front: expected a list of {{suite, scenarios, label}}")
    return front


def choose_tracks(board: Board, spec: list[dict[str, Any]] | None) -> list[Track]:
    """The front's columns: the spec's (suite, scenario) tables in its order (the newest config of a
    suite when several have the scenario), else each result group's first replay table."""
    replay = [(g, t) for g in board.result_groups for t in g.tables if t.replay]
    if spec is None:
        firsts = {}
        for g, t in replay:
            firsts.setdefault((g.suite, g.config_sha256), (g, t))
        suites = Counter(g.suite for g, _ in firsts.values())
        return [Track(f"{g.suite}{' · ' + g.config_sha256[:6] if suites[g.suite] > 1 else ''} · {t.scenario}", t)
                for g, t in firsts.values()]
    tracks = []
    for entry in spec:
        label = str(entry.get("label") or entry["suite"])
        for scenario in entry.get("scenarios") or ["iid"]:
            found = sorted(((g.latest, t) for g, t in replay if g.suite == entry["suite"] and t.scenario == scenario),
                           key=lambda x: x[0])
            if found:
                tracks.append(Track(f"{label} · {scenario}", found[-1][1]))
    return tracks


def family(label: str) -> str:
    """The router family of a row label, for the page's filter: bayesian, laser, ensembles, references."""
    name = label.split(":")[0].split("(")[0]
    if name.startswith("bayesian"):
        return "bayesian"
    if name.startswith("laser"):
        return "laser"
    if name in ("majority-vote", "mean-ensemble", "min-ensemble"):
        return "ensemble"
    if label in (BEST_SINGLE, DOMAIN_BEST, "oracle", "random") or label.startswith(SINGLE_PREFIX):
        return "baseline"
    return "other"


def _reference_cell(table: Table) -> FrontCell | None:
    runs = table.reference_runs.get(BEST_SINGLE)
    if not runs:
        return None
    rs = list(runs.values())
    cost = Stat.of(r.run.metrics.get("test_cost_per_item") for r in rs) if COST_METRIC in table.metrics else None
    return FrontCell(Stat.of(r.run.metrics.get(HEADLINE) for r in rs),
                     Stat.of(r.run.metrics.get("test_calls_per_item") for r in rs), cost, {}, BEST_SINGLE)


def _cell(table: Table, row: Row) -> FrontCell:
    cost = row.stats.get("test_cost_per_item") if COST_METRIC in table.metrics else None
    ref = next((r for r, note in row.vs_note.items() if note == "ref"), None)
    return FrontCell(row.stats[HEADLINE], row.stats["test_calls_per_item"], cost, dict(row.vs), ref)


def significant(c: Comparison | None) -> int:
    """+1 / −1 when the comparison is significant (interval excludes 0, Holm p < ALPHA), else 0."""
    if c is None or not math.isfinite(c.p_holm) or c.p_holm >= ALPHA:
        return 0
    return 1 if c.lo > 0 else -1 if c.hi < 0 else 0


def build_front(board: Board, spec: list[dict[str, Any]] | None = None) -> Front:
    tracks = choose_tracks(board, spec)
    cells: dict[tuple[str, int], FrontCell] = {}
    for t, track in enumerate(tracks):
        ref = _reference_cell(track.table)
        if ref is not None:
            cells[(BEST_SINGLE, t)] = ref
        for row in track.table.rows:
            if not row.label.startswith(SINGLE_PREFIX):
                cells[(row.label, t)] = _cell(track.table, row)
    labels = sorted({r for r, _ in cells})

    def mean_acc(label: str) -> float:
        accs = [c.acc.mean for (r, _), c in cells.items() if r == label and c.acc.n]
        return sum(accs) / len(accs) if accs else -1.0

    order = sorted(labels, key=lambda r: (r != "oracle", -mean_acc(r), r))
    front = Front(tracks, order, cells, {r: family(r) for r in order}, [])
    front.notes = [narrative(front, t) for t in range(len(tracks))]
    return front


def pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _single_choice(table: Table) -> str:
    """Which single RM the best-single reference is: ``o1-mini (10 of 10 seeds)``, the most chosen."""
    runs = table.reference_runs.get(BEST_SINGLE) or {}
    picks = Counter(router_label(r.run)[len(SINGLE_PREFIX):] for r in runs.values())
    if not picks:
        return "none"
    name, k = picks.most_common(1)[0]
    return f"{name}, {k} of {len(runs)} seeds" if k < len(runs) else f"{name}, every seed"


def _versus(c: Comparison | None, what: str) -> str:
    if c is None:
        return f"not compared with the {what}"
    word = {1: "significantly above", -1: "significantly below", 0: "not significantly different from"}[significant(c)]
    return f"{word} the {what} ({c.fmt()} points, Holm p {c.fmt_p()})"


def narrative(front: Front, t: int) -> str:
    """Three sentences on track ``t``, from its numbers only: who leads and what the references
    reach; how the leading router (the best one that is not the best single RM) compares with the
    references; how many routers are significantly above and below the best single RM."""
    track = front.tracks[t]
    label = md_text(track.label)  # names from run files are shown literally (the note is Markdown)
    leader = front.best(t)
    if leader is None:
        return f"**{label}**: no numbers."
    ref = front.cells.get((BEST_SINGLE, t))
    db = front.cells.get((DOMAIN_BEST, t))
    choice = md_text(_single_choice(track.table))
    refs = (f"the {BEST_SINGLE} ({choice}) has {pts(ref.acc.mean)}%" if ref else f"no {BEST_SINGLE}") + \
        (f", {DOMAIN_BEST} {pts(db.acc.mean)}%" if db and leader != DOMAIN_BEST else "")
    if leader == BEST_SINGLE:
        s1 = f"**{label}**: the {BEST_SINGLE} leads ({choice}: {pts(ref.acc.mean)}% pair accuracy)" + \
             (f"; {DOMAIN_BEST} has {pts(db.acc.mean)}%." if db else ".")
    else:
        s1 = f"**{label}**: {md_text(leader)} leads with {pts(front.cells[(leader, t)].acc.mean)}% pair accuracy; {refs}."
    routers = sorted(((c.acc.mean, r) for (r, i), c in front.cells.items()
                      if i == t and r not in ("oracle", BEST_SINGLE) and c.acc.n), reverse=True)
    if routers:
        top = routers[0][1]
        c = front.cells[(top, t)]
        parts = [_versus(c.vs.get(BEST_SINGLE), BEST_SINGLE)]
        if top != DOMAIN_BEST:
            parts.append(_versus(c.vs.get(DOMAIN_BEST), DOMAIN_BEST))
        s2 = f"The best router, {md_text(top)} ({pts(c.acc.mean)}%), is " + " and ".join(parts) + "."
    else:
        s2 = "No router besides the references ran."
    up = sorted(r for _, r in routers if significant(front.cells[(r, t)].vs.get(BEST_SINGLE)) > 0)
    down = sum(1 for _, r in routers if significant(front.cells[(r, t)].vs.get(BEST_SINGLE)) < 0)
    s3 = (f"Of {len(routers)} routers, {len(up)} {'is' if len(up) == 1 else 'are'} significantly above the "
          f"{BEST_SINGLE}" + (f" ({md_text(', '.join(up))})" if up else "") + f" and {down} significantly below it.")
    return f"{s1} {s2} {s3}"


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def cell_text(cell: FrontCell | None, show_cost: bool) -> str:
    """``77.3 ±0.9 ▲ · 200``: mean accuracy in %, the half-width of its interval over seeds, the mark
    against the best single RM, the mean cost per item where RMs differ in cost."""
    if cell is None or not cell.acc.n:
        return "–"
    half = (cell.acc.hi - cell.acc.lo) / 2 if cell.acc.n > 1 and math.isfinite(cell.acc.hi) else None
    text = pts(cell.acc.mean) + (f" ±{100 * half:.1f}" if half is not None else "")
    mark = {1: f" {UP}", -1: f" {DOWN}", 0: ""}[significant(cell.vs.get(BEST_SINGLE))]
    text += mark
    if show_cost and cell.cost is not None and cell.cost.n:
        text += f" · {_num(cell.cost.mean)}"
    return text


def calls_text(front: Front, label: str) -> str:
    """The row's RM calls per item over the tracks: one value, or the range."""
    vals = sorted({round(c.calls.mean, 2) for (r, _), c in front.cells.items() if r == label and c.calls.n})
    if not vals:
        return "–"
    return f"{vals[0]:g}" if len(vals) == 1 else f"{vals[0]:g}–{vals[-1]:g}"
