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
from typing import Any

from rmroute.harness.results import RunRecord, load_runs, newest, run_path
from rmroute.harness.core.config import board_role
from rmroute.harness.board.model import (
    FLAG_NOTES, REF_NOTE, Board, Cell, Group, PolicyTable, Row, RunRef, Table, eval_suite, policy_label, router_label,
)
from rmroute.harness.board.stats import SeedPair, Stat, adjust_holm, finite_values, paired_comparison

# Replay runs: (metric key, column header). The first is the one rows are sorted by.
REPLAY_METRICS: tuple[tuple[str, str], ...] = (
    ("test_routing_accuracy", "routing acc (test)"),
    ("test_accuracy", "pair acc (test)"),
    ("test_calls_per_item", "RM calls/item"),
    ("stream_mean_reward", "stream reward"),
    ("stream_regret", "stream regret"),
)
#: shown after the calls when the RMs' costs are not all 1 (declared per scorer: docs/real-rms.md)
COST_METRIC = ("test_cost_per_item", "cost/item")
PRIMARY_FALLBACK = ("test_routing_accuracy", "test_accuracy", "accuracy", "win_rate", "score")
SCENARIO_ORDER = ("iid", "shift", "cold-start", "drift", "default")
# The references every row is compared with, both chosen on offline data only: the single RM with the
# best offline accuracy of the seed (extra.offline_accuracy; its row is labelled SINGLE_PREFIX + name)
# and the domain-best router's row.
BEST_SINGLE = "best single RM"
DOMAIN_BEST = "domain-best"
SINGLE_PREFIX = "single:"
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

    evaluated = [r for r in runs if r.kind == "evaluate"]
    policies = collect_policies([(r, ref(r).rel) for r in evaluated if board_role(r.config) == "result"])
    check_policies = collect_policies([(r, ref(r).rel) for r in evaluated if board_role(r.config) == "check"])
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
            latest=max(r.created for r in members), role=board_role(first.config),
            description=str(first.config.get("description") or ""),
        ))
    return Board(root, groups, skipped, len(runs), policies, check_policies)


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


def _costs_differ(run: RunRecord) -> bool:
    """Whether a replay run's cost per item differs from its calls per item (RMs not all of cost 1)."""
    cost, calls = run.metrics.get("test_cost_per_item"), run.metrics.get("test_calls_per_item")
    return bool(finite_values([cost, calls]) and len(finite_values([cost, calls])) == 2 and abs(cost - calls) > 1e-9)


def _numeric_keys(run: RunRecord) -> set[str]:
    return {k for k, v in run.metrics.items() if finite_values([v])}


def _make_table(suite: str, sha: str, scenario: str, refs: list[RunRef]) -> Table:
    runs = [r.run for r in refs]
    replay = all("test_routing_accuracy" in r.metrics for r in runs)
    if replay:
        metrics = list(REPLAY_METRICS)
        primary: str | None = REPLAY_METRICS[0][0]
        if any(_costs_differ(r) for r in runs):  # RMs of different costs (a score table): cost next to calls
            metrics.insert(3, COST_METRIC)
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
    feedback = sorted({feedback_text(r.extra["feedback"]) for r in runs if "feedback" in r.extra})
    table = Table(suite, sha, scenario, replay, metrics, primary, rows, feedback="; ".join(feedback) or None)
    _add_comparisons(table)
    return table


def best_single_rm(offline_accuracy: Any) -> str | None:
    """The RM with the highest offline accuracy (ties: the alphabetically first name); None unless
    ``offline_accuracy`` is a non-empty mapping of RM names to finite numbers."""
    if not isinstance(offline_accuracy, dict) or not offline_accuracy:
        return None
    if len(finite_values(offline_accuracy.values())) != len(offline_accuracy):
        return None
    return min(offline_accuracy, key=lambda rm: (-float(offline_accuracy[rm]), rm))


#: the ``extra.feedback`` keys that matter for each replay feedback mode (others are defaults it ignores)
FEEDBACK_KEYS = {"gold": (), "budget": ("share",), "consensus": ("m",)}


def feedback_text(feedback: Any) -> str:
    """A run's ``extra.feedback`` as a title shows it: ``mode`` or ``mode (key=value, ...)`` with the
    keys that mode uses (every key for a mode this version does not know)."""
    if not isinstance(feedback, dict):
        return str(feedback)
    mode = str(feedback.get("mode", "?"))
    keys = FEEDBACK_KEYS.get(mode, tuple(k for k in sorted(feedback) if k != "mode"))
    params = ", ".join(f"{k}={feedback[k]}" for k in keys if k in feedback)
    return f"{mode} ({params})" if params else mode


def _reference_runs(table: Table) -> dict[str, dict[int, RunRef]]:
    """reference -> seed -> the reference's run on that seed (seeds without one are left out)."""
    by_label_seed = {(row.label, r.run.seed): r for row in table.rows for r in row.refs}
    seeds = sorted({s for row in table.rows for s in row.seeds})
    out: dict[str, dict[int, RunRef]] = {BEST_SINGLE: {}, DOMAIN_BEST: {}}
    for seed in seeds:
        if (DOMAIN_BEST, seed) in by_label_seed:
            out[DOMAIN_BEST][seed] = by_label_seed[(DOMAIN_BEST, seed)]
        picks = {best_single_rm(r.run.extra.get("offline_accuracy")) for row in table.rows for r in row.refs
                 if r.run.seed == seed and "offline_accuracy" in r.run.extra}
        if len(picks) > 1:
            table.problems.append(f"seed {seed}: the runs' extra.offline_accuracy name different best single RMs "
                                  f"({', '.join(sorted(str(p) for p in picks))}); no {BEST_SINGLE} on this seed")
        elif picks and None not in picks:
            label = SINGLE_PREFIX + picks.pop()
            if (label, seed) in by_label_seed:
                out[BEST_SINGLE][seed] = by_label_seed[(label, seed)]
            else:
                table.problems.append(f"seed {seed}: the {BEST_SINGLE} is {label}, which has no run on this seed")
    return {ref: runs for ref, runs in out.items() if runs}


def _describe(runs: dict[int, RunRef]) -> str:
    """Which row a reference is on which seeds: ``single:rm-a (seeds 0, 1), single:rm-b (seed 2)``."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for seed, r in sorted(runs.items()):
        by_label[router_label(r.run)].append(seed)
    return ", ".join(f"{label} (seed{'s' if len(ss) > 1 else ''} {', '.join(map(str, ss))})"
                     for label, ss in by_label.items())


def _seed_pairs(mine: dict[int, RunRef], refs: dict[int, RunRef]) -> list[SeedPair]:
    """The seeds on which a row's run and the reference's both have test outcomes, as SeedPairs;
    ValueError when their ``extra.test_items`` differ (not the same test pairs)."""
    pairs = []
    for seed, r in sorted(mine.items()):
        other = refs[seed]
        a, b = r.run.extra.get("test_outcomes"), other.run.extra.get("test_outcomes")
        if not (isinstance(a, str) and a and isinstance(b, str) and b):
            continue
        ia, ib = r.run.extra.get("test_items"), other.run.extra.get("test_items")
        if ia is not None and ib is not None and ia != ib:
            raise ValueError(f"seed {seed}: extra.test_items of {r.rel} and {other.rel} differ (not the same test pairs)")
        pairs.append(SeedPair(seed, a, b, ia if ia is not None else ib))
    return pairs


def _add_comparisons(table: Table) -> None:
    """Compare every row with each reference on the seeds both ran (docs/leaderboard.md, "Statistics"):
    set ``row.vs`` (or ``row.vs_note``), then the Holm-adjusted p-values across the rows that are not
    replay only, per reference."""
    table.reference_runs = _reference_runs(table)
    for ref, runs in table.reference_runs.items():
        table.references[ref] = _describe(runs)
        for row in table.rows:
            mine = {r.run.seed: r for r in row.refs if r.run.seed in runs}
            if mine and all(router_label(runs[s].run) == row.label for s in mine):
                row.vs_note[ref] = REF_NOTE
                continue
            try:
                pairs = _seed_pairs(mine, runs)
                if not pairs:
                    row.vs_note[ref] = "no test outcomes on a seed the reference ran"
                    continue
                row.vs[ref] = paired_comparison(pairs, ref)
            except ValueError as exc:
                row.vs_note[ref] = str(exc)
                table.problems.append(f"{row.label} vs {ref}: {exc}")
        adjust_holm([row.vs[ref] for row in table.rows if ref in row.vs and not row.replay_only])
