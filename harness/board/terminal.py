"""The leaderboard in a terminal: the newest group's first table, compact, drawn with rich.

``rmroute leaderboard`` and ``rmroute run`` print it after a build (:func:`print_top`); the build
keeps it as plain strings (:class:`TopTable`, ``BuildResult.top``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table as RichTable

from rmroute.harness.board.collect import BEST_SINGLE, DOMAIN_BEST
from rmroute.harness.board.model import REF_NOTE, Board, Row, Table


@dataclass
class TopTable:
    """A plain table (strings) for terminals: ``to_rich(top)`` makes a rich Table of it."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


#: shorter headers for the replay metrics
COMPACT = {"test_routing_accuracy": "routing acc", "test_accuracy": "pair acc", "test_calls_per_item": "calls",
           "stream_mean_reward": "reward", "stream_regret": "regret"}
#: shorter names of the references in the Δ headers
COMPACT_REFERENCES = {BEST_SINGLE: "single", DOMAIN_BEST: "dom-best"}


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
    for ref in table.compared:
        c = row.vs.get(ref)
        if c is not None:
            cells += [f"{100 * c.diff + 0.0:+.1f}", c.fmt_p()]
        else:
            cells += [row.vs_note.get(ref) if row.vs_note.get(ref) == REF_NOTE else "–", "–"]
    return cells


def compact_header(table: Table) -> list[str]:
    """The column headers of :func:`compact_cells`."""
    cols = ["router", "seeds"]
    for key, head in table.metrics:
        cols.append(COMPACT.get(key, head))
        if key == table.primary:
            cols.append("95% CI")
    for ref in table.compared:
        cols += [f"Δ {COMPACT_REFERENCES.get(ref, ref)}", "p"]
    return cols


def top_table(board: Board) -> TopTable | None:
    """The first scenario's table of the group with the newest run, in the compact form."""
    groups = [g for g in board.groups if g.tables]
    if not groups:
        return None
    group = max(groups, key=lambda g: g.latest)
    table = group.tables[0]
    notes = []
    if table.compared:
        notes.append("Δ: paired test pair-accuracy difference in points (p Holm-adjusted) against "
                     + "; ".join(f"{ref} = {table.references[ref]}" for ref in table.compared) + ".")
    if any(r.replay_only for r in table.rows):
        notes.append("† replay only (oracle).")
    note = " ".join(notes)
    return TopTable(title=table.title, columns=compact_header(table),
                    rows=[compact_cells(table, r) for r in table.rows], note=note)


def to_rich(top: TopTable) -> RichTable:
    """A rich Table for the terminal (light borders, cells fold rather than being cut)."""
    t = RichTable(title=top.title, caption=top.note or None, box=box.SIMPLE_HEAD, padding=(0, 1),
                  caption_justify="left")
    for i, col in enumerate(top.columns):
        t.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
    for r in top.rows:
        t.add_row(*r)
    return t


def print_top(console: Console, top: TopTable | None) -> None:
    """Print the top table on a rich Console. Off a terminal (a log, a pipe) it is drawn at its natural
    width instead of being folded into 80 columns."""
    if top is None:
        return
    table = to_rich(top)
    if not console.is_terminal:
        need = Measurement.get(console, console.options.update(width=10_000), table).maximum
        if need > console.width:
            console = Console(file=console.file, width=need, color_system=console.color_system,
                              force_terminal=False, highlight=False)
    console.print(table)
