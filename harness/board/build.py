"""Rebuild the leaderboard from the run JSON files, and from nothing else: the one entry point.

``build(root)`` collects ``<root>/runs/**.json`` into a :class:`~rmroute.harness.board.model.Board`
(:mod:`~rmroute.harness.board.collect`) and writes

* ``<root>/LEADERBOARD.md``: one table per (suite, config hash, scenario) (:mod:`~rmroute.harness.board.markdown`);
* ``<root>/leaderboard.html``: the same tables, sortable, one self-contained file (:mod:`~rmroute.harness.board.html`);
* ``<root>/plots/*.png``: accuracy vs RM calls per item with the Pareto front, cumulative regret,
  RM choice share per domain for the learning routers (:mod:`~rmroute.harness.board.plots`).

The plots are written first: they set ``Table.plots``, which both pages link.
"""

from __future__ import annotations

from pathlib import Path

from rmroute.harness.results import atomic_write_text
from rmroute.harness.board.collect import collect
from rmroute.harness.board.html import render_html
from rmroute.harness.board.markdown import render_markdown
from rmroute.harness.board.model import Board
from rmroute.harness.board.plots import write_plots
from rmroute.harness.board.terminal import TopTable, top_table


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


def build(root: str | Path = "results", plots: bool = True) -> BuildResult:
    """Write ``<root>/LEADERBOARD.md``, ``<root>/leaderboard.html`` and ``<root>/plots/*.png``.

    Returns a :class:`BuildResult`: unpacks as ``(markdown path, runs used, files skipped)`` and has
    ``.html``, ``.plots`` (files written), ``.top`` (the top table for a terminal) and ``.board``.
    """
    root = Path(root)
    board = collect(root)
    written: list[Path] = []
    if plots:
        written = write_plots(board, root / "plots")
    md_path = root / "LEADERBOARD.md"
    atomic_write_text(md_path, render_markdown(board))
    html_path = root / "leaderboard.html"
    atomic_write_text(html_path, render_html(board))
    return BuildResult(md_path, board.n_runs, len(board.skipped), html=html_path, plots=written,
                       top=top_table(board), board=board)
