"""The leaderboard as HTML: every Markdown page of :mod:`pages`, rendered, as a static site.

Each page's Markdown is rendered by markdown-it-py (CommonMark + tables, raw HTML off: text from run
files stays text) into a page with inline CSS and JavaScript and no network: every table sorts by
a click on its header (numbers by value), the front page's summary table filters by router family
and hides or shows tracks, and the pages print. Links between pages are relative (``.md`` links
become ``.html``; the front page is ``leaderboard.html``, and ``index.html`` in a site folder), so
the folder works from disk or from any static host. ``write_site(root, out)`` copies the pages,
the plots and the run files into ``out``.
"""

from __future__ import annotations

import re
import shutil
from html import escape
from pathlib import Path

from markdown_it import MarkdownIt

from rmroute.harness.board.front import Front
from rmroute.harness.board.pages import Page

FRONT_HTML = "leaderboard.html"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #1d1d1f; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 12.5px; }
th, td { border: 1px solid #d0d0d0; padding: 2px 6px; vertical-align: top; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
td { white-space: nowrap; } tr:nth-child(even) td { background: #fafafa; }
table.front td, table.front th { font-size: 12px; } table.front th { white-space: normal; max-width: 9em; }
.controls { margin: .5em 0; font-size: 13px; } .controls label { margin-right: .8em; white-space: nowrap; }
.controls button { margin-right: .3em; } .controls button[aria-pressed="true"] { font-weight: bold; }
img { max-width: 48%; margin: 0 1% 1em 0; border: 1px solid #eee; vertical-align: top; }
pre, code { font-size: 12px; } pre { background: #f6f6f6; padding: .5em; overflow-x: auto; }
.wrap { overflow-x: auto; }
@media print { th { cursor: auto; } .controls { display: none; } img { max-width: 100%; page-break-inside: avoid; }
  body { margin: 0; max-width: none; } }
"""

JS = """
(function () {
  "use strict";
  function key(cell) {
    var t = cell.textContent.trim();
    var m = t.match(/^[+\\u2212-]?\\d+(\\.\\d+)?/);
    return m ? String(Number(m[0].replace("\\u2212", "-"))) : (t === "\\u2013" || t === "" ? "" : t);
  }
  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var keys = rows.map(function (r) { return r.cells[col] ? key(r.cells[col]) : ""; });
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
  document.querySelectorAll("table").forEach(function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    table.classList.add("sortable");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.title = "click to sort";
      th.addEventListener("click", function (ev) {
        if (ev.target.tagName === "A") { return; }
        sortTable(table, col, th);
      });
    });
  });
  var front = document.querySelector("table.front");
  var controls = document.getElementById("controls");
  if (front && controls) {
    var family = "all";
    function applyFamily() {
      Array.prototype.forEach.call(front.tBodies[0].rows, function (tr) {
        tr.style.display = (family === "all" || tr.getAttribute("data-family") === family) ? "" : "none";
      });
      controls.querySelectorAll("button").forEach(function (b) {
        b.setAttribute("aria-pressed", b.getAttribute("data-family") === family ? "true" : "false");
      });
    }
    controls.querySelectorAll("button").forEach(function (b) {
      b.addEventListener("click", function () { family = b.getAttribute("data-family"); applyFamily(); });
    });
    controls.querySelectorAll("input[data-col]").forEach(function (box) {
      box.addEventListener("change", function () {
        var col = Number(box.getAttribute("data-col"));
        Array.prototype.forEach.call(front.rows, function (tr) {
          if (tr.cells[col]) { tr.cells[col].style.display = box.checked ? "" : "none"; }
        });
      });
    });
    applyFamily();
  }
  document.body.setAttribute("data-ready", "1");
})();
"""

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")
_MD_LINK = re.compile(r'href="([^"#:]*?)\.md(#[^"]*)?"')


def _html_links(html: str, front_name: str) -> str:
    """``.md`` links -> ``.html``; LEADERBOARD.md -> the front page's file."""
    def sub(m: re.Match) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        if target.rsplit("/", 1)[-1] == "LEADERBOARD":
            target = target[:-len("LEADERBOARD")] + front_name
        else:
            target += ".html"
        return f'href="{target}{anchor}"'
    return _MD_LINK.sub(sub, html)


def _front_controls(front: Front) -> str:
    families = ["all"] + sorted(set(front.families.values()))
    buttons = "".join(f'<button type="button" data-family="{escape(f)}">{escape(f)}</button>' for f in families)
    boxes = "".join(f'<label><input type="checkbox" data-col="{i + 1}" checked> {escape(t.label)}</label>'
                    for i, t in enumerate(front.tracks))
    return (f'<div class="controls" id="controls"><div>Router family: {buttons}</div>'
            f"<div>Tracks: {boxes}</div></div>")


def _mark_front(html: str, front: Front) -> str:
    """The first table of the front page: class ``front``, controls above it, ``data-family`` per row."""
    start = html.find("<table>")
    if start < 0:
        return html
    end = html.find("</table>", start)
    table = html[start:end]
    body_at = table.find("<tbody>")
    head, body = table[:body_at], table[body_at:]
    rows = body.split("<tr>")
    for i, label in enumerate(front.rows, start=1):
        if i < len(rows):
            rows[i] = f'<tr data-family="{escape(front.families[label])}">' + rows[i]
        else:
            break
    body = rows[0] + "".join(r if r.startswith("<tr data-family") else "<tr>" + r for r in rows[1:])
    table = head.replace("<table>", '<table class="front">', 1) + body
    return html[:start] + _front_controls(front) + table + html[end:]


def page_html(page: Page, front: Front | None = None, front_name: str = FRONT_HTML) -> str:
    """One page as a standalone HTML document."""
    body = _html_links(_MD.render(page.text), front_name)
    if front is not None:
        body = _mark_front(body, front)
    body = body.replace("<table", '<div class="wrap"><table').replace("</table>", "</table></div>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', f"<title>{escape(page.title)}</title>", f"<style>{CSS}</style></head><body>",
        body, f"<script>{JS}</script></body></html>", ""])


def html_path(page: Page, front_name: str = FRONT_HTML) -> str:
    return front_name if page.path == "LEADERBOARD.md" else page.path[:-3] + ".html"


def write_html(out: Path, pages: list[Page], front: Front, front_name: str = FRONT_HTML) -> list[Path]:
    """Write every page as HTML under ``out``; returns the files."""
    from rmroute.harness.results import atomic_write_text

    written = []
    for page in pages:
        path = out / html_path(page, front_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, page_html(page, front if page.path == "LEADERBOARD.md" else None, front_name))
        written.append(path)
    return written


def write_site(root: Path, out: Path, pages: list[Page], front: Front) -> list[Path]:
    """A static site in ``out``: the HTML pages (``index.html`` and ``leaderboard.html`` the front
    page), ``plots/`` and ``runs/`` copied from ``root``; relative links only."""
    out.mkdir(parents=True, exist_ok=True)
    written = write_html(out, pages, front)
    index = out / "index.html"
    shutil.copyfile(out / FRONT_HTML, index)
    written.append(index)
    for folder in ("plots", "runs"):
        if (root / folder).is_dir():
            if (out / folder).exists():
                shutil.rmtree(out / folder)
            shutil.copytree(root / folder, out / folder)
    return written
