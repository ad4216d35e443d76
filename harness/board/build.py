"""Rebuild the leaderboard from the run JSON files, and from nothing else: the one entry point.

``build(root)`` collects ``<root>/runs/**.json`` into a :class:`~rmroute.harness.board.model.Board`
(:mod:`~rmroute.harness.board.collect`), picks the front page's tracks (:mod:`~rmroute.harness.board.front`,
``<root>/board.yaml``) and writes (:mod:`~rmroute.harness.board.pages`, :mod:`~rmroute.harness.board.site`):

* ``<root>/LEADERBOARD.md`` and ``<root>/leaderboard.html``: the front page;
* ``<root>/board/<track>.md|.html``: one page per replay table; ``<root>/board/routers/<router>.md|.html``:
  one card per router; ``<root>/checks.md|.html``: the pipeline checks;
* ``<root>/plots/*.png``: accuracy vs RM calls (and vs cost) per item with the Pareto front,
  cumulative regret, RM choice share per domain for the learning routers (:mod:`~rmroute.harness.board.plots`).

The plots are written first: they set ``Table.plots``, which the pages link. ``build(root, site=out)``
also writes the same HTML pages with the plots and run files into a folder any static host serves.
"""

from __future__ import annotations

from pathlib import Path

from rmroute.harness.board.collect import collect
from rmroute.harness.board.front import Front, build_front, load_spec
from rmroute.harness.board.model import Board
from rmroute.harness.board.pages import TRACKS_DIR, Page, all_pages
from rmroute.harness.board.plots import write_plots
from rmroute.harness.board.site import write_html, write_site
from rmroute.harness.board.terminal import TopTable, top_table
from rmroute.harness.results import atomic_write_text


class BuildResult(tuple):
    """``(path, n_runs, n_skipped)`` as before, plus attributes: ``html`` (the front page), ``plots``
    (list of Paths), ``pages`` (every Markdown and HTML page written), ``top`` (TopTable or None),
    ``board`` and ``front``."""

    def __new__(cls, path: Path, n_runs: int, n_skipped: int, *, html: Path, plots: list[Path], pages: list[Path],
                top: TopTable | None, board: Board, front: Front) -> "BuildResult":
        obj = super().__new__(cls, (path, n_runs, n_skipped))
        obj.html, obj.plots, obj.pages, obj.top, obj.board, obj.front = html, plots, pages, top, board, front
        return obj

    path = property(lambda self: self[0])
    n_runs = property(lambda self: self[1])
    n_skipped = property(lambda self: self[2])


def _pages(root: Path, plots: bool) -> tuple[Board, Front, list[Page], list[Path]]:
    board = collect(root)
    written = write_plots(board, root / "plots") if plots else []
    front = build_front(board, load_spec(root))
    return board, front, all_pages(board, front), written


def build(root: str | Path = "results", plots: bool = True, site: str | Path | None = None) -> BuildResult:
    """Write the pages (Markdown and HTML) and the plots under ``root``; pages of tracks or routers
    that are gone are removed; with ``site``, also the static site there (:func:`write_site`, from
    the same pages). Returns a :class:`BuildResult` (unpacks as ``(LEADERBOARD.md, runs used, files
    skipped)``)."""
    root = Path(root)
    board, front, pages, written = _pages(root, plots)
    if site is not None:
        write_site(root, Path(site), pages, front)
    files = []
    for page in pages:
        path = root / page.path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, page.text)
        files.append(path)
    files += write_html(root, pages, front)
    keep = {p.resolve() for p in files}
    for stale in (root / TRACKS_DIR).rglob("*") if (root / TRACKS_DIR).is_dir() else []:
        if stale.is_file() and stale.suffix in (".md", ".html") and stale.resolve() not in keep:
            stale.unlink()
    return BuildResult(root / "LEADERBOARD.md", board.n_runs, len(board.skipped), html=root / "leaderboard.html",
                       plots=written, pages=files, top=top_table(board), board=board, front=front)
