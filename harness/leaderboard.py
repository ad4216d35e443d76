"""Rebuild ``LEADERBOARD.md`` from the run JSON files, and from nothing else.

Runs are grouped by suite and by config hash: runs of different configs never merge silently.
Within a group, one row per router label, with the mean and standard deviation over seeds of every
numeric metric the runs share.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from harness.results import RunRecord, atomic_write_text, load_runs


def router_label(run: RunRecord) -> str:
    if run.router.label:
        return run.router.label
    params = ", ".join(f"{k}={v}" for k, v in sorted(run.router.params.items()))
    return f"{run.router.name}({params})" if params else run.router.name


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}"


def render_markdown(runs: list[RunRecord], root: Path) -> str:
    out = ["# rmroute leaderboard", "",
           "Rebuilt by `rmroute leaderboard` from `results/runs/**.json`; do not edit by hand.", ""]
    if not runs:
        out.append("No runs yet.")
        return "\n".join(out) + "\n"
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[(run.suite, run.config_sha256)].append(run)
    for (suite, sha), group in sorted(groups.items()):
        out += [f"## {suite} · config `{sha[:12]}` · {group[0].kind}", ""]
        metrics = sorted(
            set.intersection(*(
                {k for k, v in r.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                for r in group
            ))
        )
        out.append("| router | seeds | " + " | ".join(metrics) + " | runs |")
        out.append("|---|---|" + "---|" * len(metrics) + "---|")
        by_router: dict[str, list[RunRecord]] = defaultdict(list)
        for run in group:
            by_router[router_label(run)].append(run)
        for label, rs in sorted(by_router.items()):
            cells = [_fmt([float(r.metrics[m]) for r in rs]) for m in metrics]
            links = " ".join(
                f"[{r.seed}](runs/{r.suite}/{r.run_id}.json)" for r in sorted(rs, key=lambda r: r.seed)
            )
            out.append(f"| {label} | {len(rs)} | " + " | ".join(cells) + f" | {links} |")
        out += ["", f"Reproduce: `{group[0].command}`", ""]
    return "\n".join(out) + "\n"


def build(root: str | Path = "results") -> tuple[Path, int, int]:
    """Write ``<root>/LEADERBOARD.md``; returns (path, runs used, files skipped)."""
    root = Path(root)
    runs, skipped = load_runs(root)
    path = root / "LEADERBOARD.md"
    atomic_write_text(path, render_markdown(runs, root))
    return path, len(runs), len(skipped)
