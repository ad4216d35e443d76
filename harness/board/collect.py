"""Collect the leaderboard from the run JSON files, and from nothing else: run files → :class:`Board`.

``collect(root)`` reads ``<root>/runs/**.json`` (:func:`rmroute.harness.results.load_runs`) and
writes nothing. Runs are grouped by suite and by config hash: runs of different configs never merge
silently. Within a group, one table per scenario and one row per router label, with the statistics of
:mod:`rmroute.harness.board.stats` (docs/leaderboard.md). The evaluate runs make the policy table
instead (:func:`collect_policies`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from rmroute.harness.results import RunRecord, load_runs, newest, run_path
from rmroute.harness.board.model import (
    FLAG_NOTES, Board, Cell, Group, PolicyTable, Row, RunRef, Table, eval_suite, policy_label, router_label,
)
from rmroute.harness.board.stats import Stat, finite_values, paired_test

# Replay runs: (metric key, column header). The first is the one rows are sorted by.
REPLAY_METRICS: tuple[tuple[str, str], ...] = (
    ("test_routing_accuracy", "routing acc (test)"),
    ("test_accuracy", "pair acc (test)"),
    ("test_calls_per_item", "RM calls/item"),
    ("stream_mean_reward", "stream reward"),
    ("stream_regret", "stream regret"),
)
PRIMARY_FALLBACK = ("test_routing_accuracy", "test_accuracy", "accuracy", "win_rate", "score")
SCENARIO_ORDER = ("iid", "shift", "cold-start", "drift", "default")
# Evaluation suites: the policy table's column order (others after these, by name).
_SUITE_ORDER = {"gsm8k": 0, "mmlu": 1, "alpaca-eval": 2, "arena-hard": 3, "mt-bench": 4}


def collect(root: str | Path = "results") -> Board:
    """Load ``<root>/runs/**.json`` and organise it into groups and tables (no files written)."""
    root = Path(root)
    runs, skipped = load_runs(root)
    paths = _ref_paths(root)

    def ref(run: RunRecord) -> RunRef:
        path = paths.get(run.run_id) or run_path(root, run)
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        return RunRef(run, path, rel)

    policies = collect_policies([(r, ref(r).rel) for r in runs if r.kind == "evaluate"])
    grouped: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.kind != "evaluate":  # evaluate runs make the policy table
            grouped[(run.suite, run.config_sha256)].append(run)
    groups = []
    for (suite, sha), members in sorted(grouped.items()):
        # one run per (scenario, router, seed): the newest wins (a resumed or repeated run)
        kept = list(newest(members, lambda r: (r.scenario, router_label(r), r.seed)).values())
        by_scenario: dict[str, list[RunRef]] = defaultdict(list)
        failed = []
        for run in kept:
            if run.status == "ok":
                by_scenario[run.scenario].append(ref(run))
            else:
                failed.append(ref(run))
        tables = [_make_table(suite, sha, sc, by_scenario[sc]) for sc in sorted(by_scenario, key=_scenario_key)]
        failed.sort(key=lambda r: (_scenario_key(r.run.scenario), router_label(r.run), r.run.seed))
        first = members[0]
        groups.append(Group(
            suite=suite, config_sha256=sha, kinds=sorted({r.kind for r in members}),
            reward_models=list(first.reward_models), data=f"{first.data.name} ({first.data.sha256[:12]}, n={first.data.n})",
            tables=tables, failed=failed, superseded=len(members) - len(kept),
            latest=max(r.created for r in members),
        ))
    return Board(root, groups, skipped, len(runs), policies)


def collect_policies(refs: list[tuple[RunRecord, str]]) -> PolicyTable | None:
    """The policy table from ``refs``: (evaluate run, its path relative to results/); None without one.

    A cell is a suite's headline metric (the run's ``extra.headline`` keys, e.g. GSM8K ``acc``,
    AlpacaEval ``lc_win_rate`` and ``win_rate``): the mean over seeds with a 95% bootstrap interval
    over seeds when there are several, else the suite's own interval (``extra.ci``: e.g. Wilson for
    accuracies, bootstrap for judge scores). Flags a reader must see (``FLAG_NOTES``, e.g. an LC win
    rate computed without AlpacaEval's gamed baselines) are marked in the cell. The newest run per
    (policy, suite, seed) counts; the failed ones are listed with their error.
    """
    refs = [(r, rel) for r, rel in refs if r.kind == "evaluate"]
    if not refs:
        return None
    # the newest run per (policy, suite, seed) counts, whether it failed or not
    latest = newest(refs, lambda x: (policy_label(x[0]), eval_suite(x[0]), x[0].seed), run=lambda x: x[0])
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


def _scenario_key(name: str) -> tuple[int, str]:
    return (SCENARIO_ORDER.index(name) if name in SCENARIO_ORDER else len(SCENARIO_ORDER), name)


def _sort_key(row: Row, primary: str | None) -> tuple:
    m = row.stats[primary].mean if primary and primary in row.stats else float("nan")
    return (0 if math.isfinite(m) else 1, -m if math.isfinite(m) else 0.0, row.label)


def _ref_paths(root: Path) -> dict[str, Path]:
    """run_id -> the file it was loaded from (files are named <run_id>.json; first one wins)."""
    base = root / "runs"
    out: dict[str, Path] = {}
    for p in sorted(base.rglob("*.json")) if base.is_dir() else []:
        out.setdefault(p.stem, p)
    return out


def _numeric_keys(run: RunRecord) -> set[str]:
    return {k for k, v in run.metrics.items() if finite_values([v])}


def _make_table(suite: str, sha: str, scenario: str, refs: list[RunRef]) -> Table:
    runs = [r.run for r in refs]
    replay = all("test_routing_accuracy" in r.metrics for r in runs)
    if replay:
        metrics = list(REPLAY_METRICS)
        primary: str | None = REPLAY_METRICS[0][0]
    else:
        shared = sorted(set.intersection(*(_numeric_keys(r) for r in runs))) if runs else []
        metrics = [(k, k) for k in shared]
        primary = next((k for k in PRIMARY_FALLBACK if k in shared), None)
    by_label: dict[str, list[RunRef]] = defaultdict(list)
    for ref in refs:
        by_label[router_label(ref.run)].append(ref)
    rows = []
    for label, rs in by_label.items():
        rs = sorted(rs, key=lambda r: r.run.seed)
        stats = {k: Stat.of(r.run.metrics.get(k) for r in rs) for k, _ in metrics}
        rows.append(Row(label, rs, stats,
                        replay_only=any(bool(r.run.extra.get("replay_only")) for r in rs),
                        learns=any(bool(r.run.extra.get("learns")) for r in rs)))
    rows.sort(key=lambda r: _sort_key(r, primary))
    table = Table(suite, sha, scenario, replay, metrics, primary, rows)
    _add_paired(table)
    return table


def _add_paired(table: Table) -> None:
    """Set each row's paired test against the best non-oracle row other than itself."""
    p = table.primary
    candidates = [r for r in table.rows
                  if not r.replay_only and p and math.isfinite(r.stats[p].mean)]  # already sorted best first
    if not candidates:
        for r in table.rows:
            r.paired_note = "no non-oracle baseline"
        return
    table.baseline = candidates[0].label
    table.runner_up = candidates[1].label if len(candidates) > 1 else None
    by_label = {r.label: r for r in table.rows}
    for row in table.rows:
        base_label = table.runner_up if row.label == table.baseline else table.baseline
        if base_label is None:
            row.paired_note = "no other non-oracle row"
            continue
        mine, theirs = row.outcomes(), by_label[base_label].outcomes()
        seeds = sorted(s for s in set(mine) & set(theirs) if len(mine[s]) == len(theirs[s]))
        if not seeds:
            row.paired_note = "no per-item outcomes on shared seeds"
            continue
        try:
            row.paired = paired_test([mine[s] for s in seeds], [theirs[s] for s in seeds], baseline=base_label)
        except ValueError as exc:
            row.paired_note = str(exc)
