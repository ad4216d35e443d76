"""The policy table rendered: trained policies (one row per policy) × evaluation-suite metrics.

The table is collected from the ``evaluate`` run JSONs only (``collect.collect_policies``); this
module writes it as Markdown (:func:`policy_markdown`; the front page for result policies,
results/checks.md for checks): a cell per suite metric with its interval and flag marks, the flags'
footnotes, and the failed evaluation runs with their error.
"""

from __future__ import annotations


from rmroute.harness.board.model import (
    FLAG_NOTES, PolicyTable, eval_suite, first_line, md_code, md_link, md_text, policy_label,
)


def _head(col: tuple[str, str]) -> str:
    return f"{col[0]} {col[1]}"


def _first_key(table: PolicyTable, suite: str) -> str:
    return next(k for s, k in table.columns if s == suite)


def policy_markdown(table: PolicyTable) -> list[str]:
    """The policy table as lines of LEADERBOARD.md: the Policies section, its flags, its failed runs."""
    out = ["## Policies", "",
           "One row per evaluated policy (the router that trained it), one column per suite metric; "
           "mean over seeds with a 95% interval (bootstrap over seeds, or the suite's own interval for "
           "one seed). Links: the run JSONs (per-sample logs next to them).", ""]
    out += [f"- {md_code(name, in_table=False)}: {md_text(desc or '(no description)')}"
            for name, desc in table.sources.items()] + [""]
    cols = ["policy", "trained with"] + [_head(c) for c in table.columns] + ["runs"]
    out += ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for label in sorted(table.rows, key=table.sort_key()):
        cells = table.rows[label]
        texts = [cells[c].text() if c in cells else "–" for c in table.columns]  # numbers formatted here: as they are
        links = " ".join(md_link(f"{c[0]}:{seed}", rel) for c in table.columns
                         if c in cells and c[1] == _first_key(table, c[0]) for seed, rel in cells[c].runs)
        out.append("| " + " | ".join([md_text(label), md_text(table.routers.get(label, ""))] + texts + [links]) + " |")
    out.append("")
    for flag in sorted(table.flags):
        mark, note = FLAG_NOTES[flag]
        out += [f"{mark} {note}.", ""]
    if table.failed:
        out += [f"### Failed evaluation runs ({len(table.failed)})", "", "| policy | suite | seed | error | run |",
                "|---|---|---|---|---|"]
        for r, rel in table.failed:
            out.append(f"| {md_text(policy_label(r))} | {md_text(eval_suite(r))} | {r.seed} | {md_text(first_line(r.error))} | "
                       f"{md_link('json', rel)} |")
        out.append("")
    return out
