"""The policy leaderboard: trained policies (one row per policy) × evaluation suites.

Built from the ``evaluate`` run JSONs only. A cell is a suite's headline metric (the run's
``extra.headline`` keys, e.g. GSM8K ``acc``, AlpacaEval ``lc_win_rate`` and ``win_rate``): the mean
over seeds with a 95% bootstrap interval over seeds when there are several, else the suite's own
interval (``extra.ci``: e.g. Wilson for accuracies, bootstrap for judge scores). Flags a reader must
see (e.g. an LC win rate computed without AlpacaEval's gamed baselines) are marked in the cell.
Failed suite runs are listed with their error.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from html import escape
from typing import Any, Callable
from urllib.parse import quote

from rmroute.harness.results import RunRecord, newest

#: flags (``extra.flags`` keys) shown as a footnote marker in a cell, and what they mean
FLAG_NOTES: dict[str, tuple[str, str]] = {
    "lc_without_gamed_baselines": ("‡", "length-controlled win rate fitted without AlpacaEval's gamed baselines "
                                        "(df_gamed.csv unavailable offline)"),
    "limit": ("§", "evaluated on a subset of the suite (the suite's `limit` parameter)"),
}


@dataclass
class Cell:
    mean: float
    lo: float | None
    hi: float | None
    n_seeds: int
    n_items: int
    marks: str = ""
    runs: list[tuple[int, str]] = field(default_factory=list)  # (seed, run JSON path relative to results/)

    def text(self) -> str:
        def num(x: float, digits: int) -> str:
            return f"{(0.0 if abs(x) < 1e-9 else x):.{digits}g}"  # a bound of 5.6e-17 is 0

        s = num(self.mean, 4)
        if self.lo is not None and self.hi is not None:
            s += f" [{num(self.lo, 3)}, {num(self.hi, 3)}]"
        return s + self.marks


@dataclass
class PolicyTable:
    columns: list[tuple[str, str]]  # (eval suite, metric key)
    rows: dict[str, dict[tuple[str, str], Cell]]  # policy label -> column -> cell
    routers: dict[str, str]  # policy label -> the router that trained it ("base" for base models)
    failed: list[tuple[RunRecord, str]]
    flags: set[str]
    sources: dict[str, str] = field(default_factory=dict)  # results suite -> its config's description

    def sort_key(self) -> Callable[[str], Any]:
        first = self.columns[0] if self.columns else None

        def key(label: str):
            cell = self.rows[label].get(first) if first else None
            return (cell is None, -(cell.mean if cell else 0.0), label)

        return key


def collect_policies(refs: list[tuple[RunRecord, str]]) -> PolicyTable | None:
    """``refs``: (evaluate run, its path relative to results/). None when there is no evaluate run."""
    from rmroute.harness.board.collect import Stat

    refs = [(r, rel) for r, rel in refs if r.kind == "evaluate"]
    if not refs:
        return None
    # the newest run per (policy, suite, seed) counts, whether it failed or not
    latest = newest(refs, lambda x: (_label(x[0]), _suite(x[0]), x[0].seed), run=lambda x: x[0])
    ok = {k: v for k, v in latest.items() if v[0].status == "ok"}
    failed = [v for v in latest.values() if v[0].status != "ok"]
    grouped: dict[tuple[str, str], list[tuple[RunRecord, str]]] = defaultdict(list)
    columns: list[tuple[str, str]] = []
    routers: dict[str, str] = {}
    flags: set[str] = set()
    for (label, suite, _), (r, rel) in sorted(ok.items()):
        routers[label] = r.router.name
        grouped[(label, suite)].append((r, rel))
        for key in r.extra.get("headline") or sorted(r.metrics):
            if key in r.metrics and (suite, key) not in columns:
                columns.append((suite, key))
    rows: dict[str, dict[tuple[str, str], Cell]] = defaultdict(dict)
    for (label, suite), members in grouped.items():
        for col in [c for c in columns if c[0] == suite]:
            values = [r.metrics.get(col[1]) for r, _ in members]
            stat = Stat.of(values)
            if stat.n == 0:
                continue
            if stat.n >= 2:
                lo, hi = stat.lo, stat.hi
            else:
                ci = members[0][0].extra.get("ci", {}).get(col[1])
                lo, hi = (ci[0], ci[1]) if ci and None not in ci else (None, None)
            marks = ""
            for r, _ in members:
                for flag, on in (r.extra.get("flags") or {}).items():
                    if on and flag in FLAG_NOTES and FLAG_NOTES[flag][0] not in marks:
                        marks += FLAG_NOTES[flag][0]
                        flags.add(flag)
            rows[label][col] = Cell(stat.mean, lo, hi, stat.n, members[0][0].data.n, marks,
                                    [(r.seed, rel) for r, rel in members])
    columns.sort(key=lambda c: (_SUITE_ORDER.get(c[0], 99), c[0]))
    for label in list(routers):
        rows.setdefault(label, {})
    sources = {r.suite: str(r.config.get("description") or "") for r, _ in refs}
    return PolicyTable(columns, dict(rows), routers, failed, flags, dict(sorted(sources.items())))


_SUITE_ORDER = {"gsm8k": 0, "mmlu": 1, "alpaca-eval": 2, "arena-hard": 3, "mt-bench": 4}


def _label(run: RunRecord) -> str:
    return str(run.extra.get("policy_label") or run.router.label or run.router.name)


def _suite(run: RunRecord) -> str:
    return str(run.extra.get("eval_suite") or run.scenario)


def _head(col: tuple[str, str]) -> str:
    return f"{col[0]} {col[1]}"


def render_markdown(table: PolicyTable) -> list[str]:
    from rmroute.harness.board.collect import _first_line, md_code, md_link, md_text

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
            out.append(f"| {md_text(_label(r))} | {md_text(_suite(r))} | {r.seed} | {md_text(_first_line(r.error))} | "
                       f"{md_link('json', rel)} |")
        out.append("")
    return out


def _first_key(table: PolicyTable, suite: str) -> str:
    return next(k for s, k in table.columns if s == suite)


def render_html(table: PolicyTable) -> list[str]:
    from rmroute.harness.board.collect import _first_line
    from rmroute.harness.board.html import _td

    out = ['<h2 id="policies">Policies</h2>',
           '<p class="note">One row per evaluated policy, one column per suite metric: mean over seeds with a 95% '
           "interval (bootstrap over seeds, or the suite's own interval for one seed).</p>",
           "<ul>" + "".join(f"<li><code>{escape(n)}</code>: {escape(d or '(no description)')}</li>"
                            for n, d in table.sources.items()) + "</ul>",
           '<div class="wrap"><table class="sortable" id="policies-table"><thead><tr>'
           + "".join(f'<th scope="col">{escape(c)}</th>' for c in ["policy", "trained with"]
                     + [_head(c) for c in table.columns] + ["runs"]) + "</tr></thead><tbody>"]
    for label in sorted(table.rows, key=table.sort_key()):
        cells = table.rows[label]
        tds = [_td(label), _td(table.routers.get(label, ""))]
        for c in table.columns:
            tds.append(_td(cells[c].text(), cells[c].mean) if c in cells else _td("–", float("nan")))
        links = " ".join(f'<a href="{escape(quote(rel))}">{escape(c[0])}:{seed}</a>' for c in table.columns
                         if c in cells and c[1] == _first_key(table, c[0]) for seed, rel in cells[c].runs)
        tds.append(_td(links, raw=True))
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    for flag in sorted(table.flags):
        mark, note = FLAG_NOTES[flag]
        out.append(f'<p class="note">{escape(mark)} {escape(note)}.</p>')
    if table.failed:
        out.append(f"<h3>Failed evaluation runs ({len(table.failed)})</h3><ul>")
        out += [f'<li>{escape(_label(r))} · {escape(_suite(r))} · seed {r.seed}: <span class="err">'
                f'{escape(_first_line(r.error))}</span> (<a href="{escape(quote(rel))}">json</a>)</li>'
                for r, rel in table.failed]
        out.append("</ul>")
    return out

