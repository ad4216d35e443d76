"""``results/leaderboard.html``: the leaderboard as one self-contained page.

Inline CSS and JavaScript, no network: it opens from disk. One sortable table per (suite, config,
scenario) — click a header to sort ascending, again for descending; numeric columns sort by number
(each numeric cell carries its value in ``data-value``), empty cells last. Run JSON files and plots
are linked relatively (``runs/...json``, ``plots/...png``), so the page works wherever ``results/``
is copied.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from rmroute.harness.board.model import (
    COMPARISON_NOTE, Board, Table, first_line, header, html_td, router_label, row_cells,
)
from rmroute.harness.board.policy import policy_html

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #1d1d1f; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 7px; vertical-align: top; }
th { background: #f2f2f2; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td code { font-size: 11px; white-space: nowrap; } td:first-child { white-space: nowrap; }
summary { cursor: pointer; color: #555; white-space: nowrap; } .wrap { overflow-x: auto; } tr:nth-child(even) td { background: #fafafa; }
.note { color: #555; } .plots img { max-width: 48%; margin: 0 1% 1em 0; border: 1px solid #eee; }
.err { color: #a00; }
@media print { th { cursor: auto; } .plots img { max-width: 100%; page-break-inside: avoid; } }
"""

JS = """
(function () {
  "use strict";
  function key(cell) {
    var v = cell.getAttribute("data-value");
    return v === null ? cell.textContent.trim() : v;
  }
  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var keys = rows.map(function (r) { return key(r.cells[col]); });
    var numeric = keys.every(function (k) { return k === "" || isFinite(Number(k)); }) &&
                  keys.some(function (k) { return k !== ""; });
    var order = rows.map(function (r, i) { return i; });
    order.sort(function (a, b) {
      var ka = keys[a], kb = keys[b];
      if (ka === "" || kb === "") { return ka === kb ? a - b : (ka === "" ? 1 : -1); }
      var c = numeric ? Number(ka) - Number(kb) : ka.localeCompare(kb);
      if (dir === "descending") { c = -c; }
      return c !== 0 ? c : a - b;
    });
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    order.forEach(function (i) { body.appendChild(rows[i]); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.title = "click to sort";
      th.addEventListener("click", function () { sortTable(table, col, th); });
    });
  });
  document.body.setAttribute("data-ready", "1");
})();
"""


def _table(table: Table, tid: str) -> list[str]:
    feedback = f" · feedback {escape(table.feedback)}" if table.feedback else ""
    out = [f'<h3 id="{escape(tid)}">scenario {escape(table.scenario)}{feedback}</h3>']
    if table.primary:
        out.append(f'<p class="note">Sorted by mean {escape(table.primary)}.</p>')
    if table.compared:
        refs = "; ".join(f"<b>{escape(ref)}</b> = {escape(table.references[ref])}" for ref in table.compared)
        out.append(f'<p class="note">Δ: {escape(COMPARISON_NOTE)} References, chosen on offline data only: {refs}.</p>')
    cols = header(table) + ["runs (seed → JSON)", "reproduce"]
    out.append(f'<div class="wrap"><table class="sortable" id="{escape(tid)}-table">')
    out.append("<thead><tr>" + "".join(f'<th scope="col">{escape(c)}</th>' for c in cols) + "</tr></thead><tbody>")
    for row in table.rows:
        cells = [html_td(text, value) for text, value in row_cells(table, row)]
        links = " ".join(f'<a href="{escape(quote(r.rel))}">{r.run.seed}</a>' for r in row.refs)
        repro = (f"<details><summary>{len(row.refs)} command(s)</summary>"
                 + "<br>".join(f"<code>{escape(r.reproduce)}</code>" for r in row.refs) + "</details>")
        cells += [html_td(links, raw=True), html_td(repro, raw=True)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if any(r.replay_only for r in table.rows):
        out.append('<p class="note">† replay only: sees the gold labels (upper bound), never a reference; no p-value.</p>')
    if table.problems:
        out.append(f'<p class="note">Not compared: {escape("; ".join(table.problems))}.</p>')
    if table.plots:
        out.append('<div class="plots">' + "".join(
            f'<img src="plots/{escape(quote(p.name))}" alt="{escape(kind)} · {escape(table.title)}">'
            for kind, p in table.plots.items()) + "</div>")
    return out


def render_html(board: Board) -> str:
    """The whole page: the policy table, then per group its scenario tables, failed runs, skipped files."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<link rel="icon" href="data:,">',  # no favicon request
           "<title>rmroute leaderboard</title>", f"<style>{CSS}</style></head><body>",
           "<h1>rmroute leaderboard</h1>",
           '<p class="note">Rebuilt by <code>rmroute leaderboard</code> from <code>results/runs/**.json</code>; '
           "do not edit by hand. Click a column header to sort. Mean ± sample std over seeds, 95% bootstrap "
           "CI of the mean over seeds; Δ columns: paired test pair-accuracy differences against the best single RM "
           "and domain-best, with item-level (cluster) bootstrap CIs and Holm-adjusted p-values "
           "(docs/leaderboard.md).</p>"]
    if not board.groups and board.policies is None:
        out.append("<p>No runs yet.</p>")
    if board.policies is not None:
        out += policy_html(board.policies)
    for gi, group in enumerate(board.groups):
        out.append(f"<h2>{escape(group.suite)} · config <code>{escape(group.config_sha256[:12])}</code> · "
                   f"{escape(', '.join(group.kinds))}</h2>")
        out.append(f'<p class="note">Data {escape(group.data)}; reward models: '
                   f"{escape(', '.join(group.reward_models) or '–')}; config_sha256 "
                   f"<code>{escape(group.config_sha256)}</code>.</p>")
        if group.superseded:
            out.append(f'<p class="note">{group.superseded} older run(s) of the same scenario, router and seed '
                       "are superseded by newer ones and not counted.</p>")
        for table in group.tables:
            out += _table(table, f"g{gi}-{table.slug}")
        if group.failed:
            out.append(f"<h3>Failed runs ({len(group.failed)})</h3>")
            out.append(f'<table class="sortable failed" id="g{gi}-failed"><thead><tr>'
                       + "".join(f'<th scope="col">{c}</th>' for c in ("router", "scenario", "seed", "error", "run", "reproduce"))
                       + "</tr></thead><tbody>")
            for r in group.failed:
                out.append("<tr>" + html_td(router_label(r.run)) + html_td(r.run.scenario)
                           + html_td(str(r.run.seed), float(r.run.seed))
                           + f'<td class="err">{escape(first_line(r.run.error))}</td>'
                           + html_td(f'<a href="{escape(quote(r.rel))}">json</a>', raw=True)
                           + html_td(f"<code>{escape(r.reproduce)}</code>", raw=True) + "</tr>")
            out.append("</tbody></table>")
    if board.skipped:
        out.append("<h2>Skipped files</h2><ul>")
        out += [f"<li><code>{escape(str(p))}</code>: {escape(why)}</li>" for p, why in board.skipped]
        out.append("</ul>")
    out.append(f"<script>{JS}</script></body></html>")
    return "\n".join(out) + "\n"
