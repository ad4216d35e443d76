"""``results/LEADERBOARD.md``: the leaderboard as Markdown, one table per (suite, config, scenario).

Every text that comes from a run file or a config goes through the model's ``md_text``, ``md_code``
or ``md_link``, so it is shown literally (docs/leaderboard.md); the numbers are formatted by the
model's cells. Each row links its run JSON files and gives the ``rmroute reproduce`` command of each.
"""

from __future__ import annotations

from urllib.parse import quote

from rmroute.harness.board.model import (
    COMPARISON_NOTE, Board, Table, first_line, header, md_code, md_link, md_text, router_label, row_cells,
)
from rmroute.harness.board.policy import policy_markdown


def render_markdown(board: Board) -> str:
    """The whole of LEADERBOARD.md: the policy table, then per group its scenario tables and failed
    runs, then the skipped files."""
    out = ["# rmroute leaderboard", "",
           "Rebuilt by `rmroute leaderboard` from `results/runs/**.json`; do not edit by hand. "
           "Statistics: docs/leaderboard.md. Sortable version: [leaderboard.html](leaderboard.html).", ""]
    if not board.groups and board.policies is None:
        out.append("No runs yet.")
    if board.policies is not None:
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
                           f"{md_text(first_line(r.run.error))} | {md_link('json', r.rel)} | {md_code(r.reproduce)} |")
            out.append("")
    if board.skipped:
        out += ["## Skipped files", ""]
        out += [f"- {md_code(str(p), in_table=False)}: {md_text(why)}" for p, why in board.skipped]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _md_table(table: Table) -> list[str]:
    cols = header(table) + ["runs (seed → JSON)", "reproduce"]
    feedback = f" · feedback {md_text(table.feedback)}" if table.feedback else ""
    out = [f"### scenario {md_code(table.scenario, in_table=False)}{feedback}", ""]
    if table.primary:
        out += [f"Sorted by mean {md_text(table.primary)}.", ""]
    if table.compared:
        refs = "; ".join(f"**{md_text(ref)}** = {md_text(table.references[ref])}" for ref in table.compared)
        out += [f"Δ: {COMPARISON_NOTE} References, chosen on offline data only: {refs}.", ""]
    out += ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in table.rows:
        cells = [md_text(text) if value is None else text for text, value in row_cells(table, row)]  # numbers as they are
        links = " ".join(md_link(r.run.seed, r.rel) for r in row.refs)
        repro = "<br>".join(md_code(r.reproduce) for r in row.refs)  # <br>: a line break inside a cell
        out.append("| " + " | ".join(cells + [links, repro]) + " |")
    out.append("")
    if any(r.replay_only for r in table.rows):
        out += ["† replay only: sees the gold labels (upper bound), never a reference; no p-value.", ""]
    if table.problems:
        out += ["Not compared: " + "; ".join(md_text(p) for p in table.problems) + ".", ""]
    if table.plots:
        out += [f"![{md_text(kind)}]({quote('plots/' + p.name)})" for kind, p in table.plots.items()]
        out.append("")
    return out
