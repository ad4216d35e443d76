"""The leaderboard's pages, as Markdown (the HTML site renders the same text: :mod:`site`).

Under the results root:

* ``LEADERBOARD.md``: the front page: the summary table (:mod:`front`), three generated sentences
  per track, the list of track pages and router cards, and the policy line;
* ``board/<track>.md``: one page per replay table (suite, config, scenario): the full table with its
  comparisons, the per-domain accuracy, the plots, the run files and one reproduce command;
* ``board/routers/<router>.md``: one card per router: what it is, its paper, its parameters in each
  config, its row on every track, where it beats and where it trails the references;
* ``checks.md``: pipeline checks (train and evaluate runs unless their config says ``board: result``,
  and any config with ``board: check``): their tables and policy table, off the board.

Every text from a run file goes through the model's ``md_text`` / ``md_code`` / ``md_link``.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from rmroute.harness.board.collect import BEST_SINGLE, DOMAIN_BEST, SINGLE_PREFIX
from rmroute.harness.board.front import (DOWN, UP, Front, calls_text, cell_text, pts, significant)
from rmroute.harness.board.model import (
    COMPARISON_NOTE, Board, Group, Table, file_slug, first_line, header, md_code, md_link, md_text, router_label, row_cells,
)
from rmroute.harness.board.policy import policy_markdown

#: where the pages live under the results root
TRACKS_DIR = "board"
ROUTERS_DIR = "board/routers"


@dataclass
class Page:
    """One page: its path under the results root, its title, its Markdown."""

    path: str
    title: str
    text: str


def track_path(table: Table) -> str:
    return f"{TRACKS_DIR}/{table.slug}.md"


def card_path(name: str) -> str:
    return f"{ROUTERS_DIR}/{file_slug(name)}.md"


def rel(src: str, dst: str) -> str:
    """The relative path from page ``src`` to file ``dst`` (both under the results root), for
    :func:`md_link` (which percent-encodes it once); :func:`url` where the Markdown is written here."""
    return posixpath.relpath(dst, posixpath.dirname(src) or ".")


def url(src: str, dst: str) -> str:
    """:func:`rel`, percent-encoded: a link target written into the Markdown as it is."""
    return quote(rel(src, dst))


# ---- the front page ---------------------------------------------------------------------------


def front_page(board: Board, front: Front, names: dict[str, str]) -> Page:
    """LEADERBOARD.md. ``names``: row label -> router name (for the card links)."""
    src = "LEADERBOARD.md"
    runs = md_code(f"{board.root.as_posix()}/runs/**.json", in_table=False)
    out = ["# rmroute leaderboard", "",
           f"Rebuilt by `rmroute leaderboard` from {runs}; do not edit by hand. Statistics: "
           "docs/leaderboard.md. The site: [leaderboard.html](leaderboard.html) (sortable, filterable).", ""]
    if not front.tracks:
        out += ["No replay results yet.", ""]
    else:
        out += ["## Which router wins where", "",
                f"Test pair accuracy in % (mean over seeds ± half the 95% interval over seeds); {UP} / {DOWN}: "
                f"significantly above / below the **{BEST_SINGLE}** (chosen per seed on offline data; item-bootstrap "
                "interval of the paired difference excludes 0, Holm p < 0.05); `· n`: mean cost per item where the "
                "RMs differ in cost; **bold**: the best in the column (the oracle, which sees the labels, aside). "
                "Each track's page has the Δ against both references with intervals.", ""]
        heads = ["router"] + [md_link(t.label, rel(src, track_path(t.table))) for t in front.tracks] + ["RM calls/item"]
        out += ["| " + " | ".join(heads) + " |", "|---|" + "---|" * (len(front.tracks) + 1)]
        best = [front.best(t) for t in range(len(front.tracks))]
        for label in front.rows:
            name = names.get(label)
            head = md_link(label, rel(src, card_path(name))) if name else md_text(label)
            cells = []
            for t, track in enumerate(front.tracks):
                text = md_text(cell_text(front.cells.get((label, t)), track.costs_differ))
                cells.append(f"**{text}**" if best[t] == label else text)
            out.append(f"| {head} | " + " | ".join(cells) + f" | {calls_text(front, label)} |")
        out += ["", "### What this shows", ""]
        out += [f"- {note}" for note in front.notes]
        out.append("")
    out += ["## Pages", "", "Tracks (every scenario of every result config; the full table, per-domain accuracy, plots, "
            "run files, one reproduce command):", ""]
    for g in board.result_groups:
        links = ", ".join(md_link(t.scenario, rel(src, track_path(t))) for t in g.tables)
        out.append(f"- {md_text(g.suite)} · config {md_code(g.config_sha256[:12], in_table=False)}"
                   + (f" ({md_text(first_line(g.description, 120))})" if g.description else "") + f": {links}")
    routers = sorted(set(names.values()))
    out += ["", "Routers: " + ", ".join(md_link(n, rel(src, card_path(n))) for n in routers) + ".", ""]
    out += ["## Policies", ""]
    if board.policies is not None:
        out += policy_markdown(board.policies)[2:]
    else:
        out += ["No policy has been trained and evaluated as a result yet: the policies evaluated so far are "
                f"pipeline checks (tiny random-weight models), listed in {md_link('checks.md', rel(src, 'checks.md'))}.", ""]
    if board.skipped:
        out += ["## Skipped files", ""]
        out += [f"- {md_code(str(p), in_table=False)}: {md_text(why)}" for p, why in board.skipped]
        out.append("")
    return Page(src, "rmroute leaderboard", "\n".join(out).rstrip("\n") + "\n")


# ---- track pages ---------------------------------------------------------------------------------


def reproduce_glob(table: Table) -> str | None:
    """One shell command that reproduces every run of the table: ``rmroute reproduce <dir>/<scenario>--*--<sha>.json``."""
    refs = [r for row in table.rows for r in row.refs]
    if not refs:
        return None
    first = refs[0]
    parts = first.run.run_id.split("--")
    pattern = f"{parts[0]}--*--{parts[-1]}.json"
    return f"rmroute reproduce {posixpath.join(posixpath.dirname(str(first.path)), pattern)}"


def per_domain(table: Table) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Domains, and per row label the mean test accuracy per domain over its seeds (from ``per_domain``)."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    domains: set[str] = set()
    for row in table.rows:
        for r in row.refs:
            for d, v in (r.run.per_domain or {}).items():
                if isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float)):
                    acc[row.label][d].append(float(v["accuracy"]))
                    domains.add(d)
    return sorted(domains), {lab: {d: sum(v) / len(v) for d, v in ds.items()} for lab, ds in acc.items()}


def table_lines(table: Table, src: str) -> list[str]:
    """The full table of a track page: every metric, both comparisons, seed links (no per-row command)."""
    cols = header(table) + ["runs (seed → JSON)"]
    out = []
    if table.primary:
        out += [f"Sorted by mean {md_text(table.primary)}.", ""]
    if table.compared:
        refs = "; ".join(f"**{md_text(ref)}** = {md_text(table.references[ref])}" for ref in table.compared)
        out += [f"Δ: {COMPARISON_NOTE} References, chosen on offline data only: {refs}.", ""]
    out += ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in table.rows:
        cells = [md_text(text) if value is None else text for text, value in row_cells(table, row)]
        links = " ".join(md_link(r.run.seed, rel(src, r.rel)) for r in row.refs)
        out.append("| " + " | ".join(cells + [links]) + " |")
    out.append("")
    if any(r.replay_only for r in table.rows):
        out += ["† replay only: sees the gold labels (upper bound), never a reference; no p-value.", ""]
    if table.problems:
        out += ["Not compared: " + "; ".join(md_text(p) for p in table.problems) + ".", ""]
    return out


def track_page(group: Group, table: Table, names: dict[str, str]) -> Page:
    src = track_path(table)
    out = [f"# {md_text(table.title)}", "", f"[← leaderboard]({url(src, 'LEADERBOARD.md')})", ""]
    if group.description:
        out += [md_text(group.description), ""]
    out += [f"Data {md_text(group.data)}; reward models: {md_text(', '.join(group.reward_models) or '–')}; "
            f"config_sha256 {md_code(group.config_sha256, in_table=False)}.", ""]
    if group.superseded:
        out += [f"{group.superseded} older run(s) of this config (any scenario), each with the scenario, router and "
                "seed of a newer run, are superseded and not counted.", ""]
    out += table_lines(table, src)
    out += ["Router cards: " + ", ".join(md_link(n, rel(src, card_path(n))) for n in sorted({names[r.label] for r in table.rows if r.label in names})) + ".", ""]
    if table.plots:
        out += ["## Plots", ""]
        out += [f"![{md_text(kind)}]({url(src, 'plots/' + p.name)})" for kind, p in table.plots.items()]
        out.append("")
    domains, accs = per_domain(table)
    if domains:
        out += ["## Accuracy per domain", "", "Test accuracy in % per domain, mean over seeds.", "",
                "| router | " + " | ".join(md_text(d) for d in domains) + " |", "|---|" + "---|" * len(domains)]
        for row in table.rows:
            a = accs.get(row.label, {})
            out.append(f"| {md_text(row.label)} | " + " | ".join(pts(a[d]) if d in a else "–" for d in domains) + " |")
        out.append("")
    command = reproduce_glob(table)
    out += ["## Reproduce", ""]
    if command:
        out += ["Every run of this table, each compared metric by metric with its file (from the repository root):",
                "", f"    {command}", ""]
    failed = [r for r in group.failed if r.run.scenario == table.scenario]
    if failed:
        out += [f"## Failed runs ({len(failed)})", "", "| router | seed | error | run |", "|---|---|---|---|"]
        out += [f"| {md_text(router_label(r.run))} | {r.run.seed} | {md_text(first_line(r.run.error))} | "
                f"{md_link('json', rel(src, r.rel))} |" for r in failed]
        out.append("")
    return Page(src, table.title, "\n".join(out).rstrip("\n") + "\n")


# ---- router cards ----------------------------------------------------------------------------------


def row_names(board: Board) -> dict[str, str]:
    """Row label -> the router (plugin) name its runs ran, over every result table; the best-single
    reference row stands for ``single``."""
    names: dict[str, str] = {BEST_SINGLE: "single"} if any(t.reference_runs.get(BEST_SINGLE) for t in board.tables) else {}
    for t in board.tables:
        for row in t.rows:
            if row.refs:
                names.setdefault(row.label, row.refs[0].run.router.name)
    return names


def _registry_entry(name: str) -> Any:
    try:
        from rmroute.harness.core.plugins import get_registry

        return get_registry().get("router", name)
    except Exception:  # an unregistered name (a plugin not installed here): the card says so
        return None


def router_card(board: Board, name: str, names: dict[str, str]) -> Page:
    src = card_path(name)
    entry = _registry_entry(name)
    meta = dict(getattr(entry, "metadata", {}) or {})
    doc = (getattr(getattr(entry, "factory", None), "__doc__", None) or "").strip().split("\n\n")[0]
    out = [f"# Router {md_code(name, in_table=False)}", "", f"[← leaderboard]({url(src, 'LEADERBOARD.md')})", ""]
    about = meta.get("description") or " ".join(doc.split()) or "(no description registered)"
    out += [md_text(about), ""]
    facts = [f"paper: {md_text(meta['paper'])}" if meta.get("paper") else None,
             f"plugin: {md_text(getattr(entry, 'plugin', '?'))}" if entry is not None else "not registered on this machine",
             f"RM calls per item: {md_text(meta['calls_per_item'])}" if "calls_per_item" in meta else None,
             "learns online" if meta.get("learns") else ("does not learn online" if "learns" in meta else None)]
    out += ["; ".join(f for f in facts if f) + ".", "", "Documentation: docs/routers.md.", ""]
    labels = sorted(lab for lab, n in names.items() if n == name and not lab.startswith(SINGLE_PREFIX)) \
        if name != "single" else [BEST_SINGLE]
    out += ["## Parameters in each config", "", "| config | row | params |", "|---|---|---|"]
    seen = set()
    for g in board.result_groups:
        for t in g.tables:
            for row in t.rows:
                if row.refs and row.refs[0].run.router.name == name:
                    key = (g.suite, g.config_sha256, row.label)
                    if key in seen:
                        continue
                    seen.add(key)
                    params = row.refs[0].run.router.params
                    out.append(f"| {md_text(g.suite)} {md_code(g.config_sha256[:12])} | {md_text(row.label)} | "
                               f"{md_code(params) if params else '–'} |")
    out += ["", "## On every track", "",
            "Test pair accuracy in % (mean over seeds); Δ against the references in points [95% item-bootstrap "
            "interval], Holm p.", "",
            f"| track | row | accuracy | RM calls/item | Δ vs {BEST_SINGLE} | Δ vs {DOMAIN_BEST} |", "|---|---|---|---|---|---|"]
    wins: dict[str, list[str]] = defaultdict(list)  # track -> "row vs reference"
    losses: dict[str, list[str]] = defaultdict(list)
    def belongs(label: str) -> bool:
        return label.startswith(SINGLE_PREFIX) if name == "single" else label in labels

    for t in board.tables:
        if not t.replay:
            continue
        for row in t.rows:
            if not belongs(row.label):
                continue

            def d(ref: str) -> str:
                c = row.vs.get(ref)
                return f"{c.fmt()}, p {c.fmt_p()}" if c else md_text(row.vs_note.get(ref, "–"))

            acc = row.stats["test_accuracy"]
            out.append(f"| {md_link(t.title, rel(src, track_path(t)))} | {md_text(row.label)} | "
                       f"{pts(acc.mean) if acc.n else '–'} | {row.stats['test_calls_per_item'].mean:.3g} | "
                       f"{d(BEST_SINGLE)} | {d(DOMAIN_BEST)} |")
            for ref in (BEST_SINGLE, DOMAIN_BEST):
                s = significant(row.vs.get(ref))
                if s:
                    (wins if s > 0 else losses)[f"{t.suite} · {t.scenario}"].append(f"{row.label} vs {ref}")
    out += ["", "## Where it wins and where it loses", ""]
    for title, found in (("Significantly above a reference", wins), ("Significantly below a reference", losses)):
        out.append(f"{title}:" + ("" if found else " nowhere."))
        out += [f"- {md_text(track)}: {md_text(_some(items))}" for track, items in found.items()]
        out.append("")
    return Page(src, f"router {name}", "\n".join(out).rstrip("\n") + "\n")


def _some(items: list[str], most: int = 4) -> str:
    """``a; b; c; d and 27 more``: a list kept to one short line."""
    shown = "; ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


# ---- checks ----------------------------------------------------------------------------------


def checks_page(board: Board) -> Page:
    src = "checks.md"
    out = ["# Pipeline checks", "", f"[← leaderboard]({url(src, 'LEADERBOARD.md')})", "",
           "Runs of configs that check the pipeline (train and evaluate runs unless their config says "
           "`board: result`; any config with `board: check`): they show that every stage runs and writes its "
           "files; their numbers say nothing about routers.", ""]
    if board.check_policies is not None:
        out += policy_markdown(board.check_policies)
    for g in board.check_groups:
        out += [f"## {md_text(g.suite)} · config {md_code(g.config_sha256[:12], in_table=False)} · "
                f"{md_text(', '.join(g.kinds))}", ""]
        if g.description:
            out += [md_text(g.description), ""]
        for t in g.tables:
            out += [f"### scenario {md_code(t.scenario, in_table=False)}", ""] + table_lines(t, src)
        if g.failed:
            out += ["Failed runs: " + "; ".join(f"{md_text(router_label(r.run))} seed {r.run.seed}: "
                                                f"{md_text(first_line(r.run.error))}" for r in g.failed), ""]
    if board.check_policies is None and not board.check_groups:
        out.append("No check runs.")
    return Page(src, "pipeline checks", "\n".join(out).rstrip("\n") + "\n")


def all_pages(board: Board, front: Front) -> list[Page]:
    """Every Markdown page of the board."""
    names = row_names(board)
    pages = [front_page(board, front, names)]
    pages += [track_page(g, t, names) for g in board.result_groups for t in g.tables]
    pages += [router_card(board, n, names) for n in sorted(set(names.values()))]
    pages.append(checks_page(board))
    return pages
