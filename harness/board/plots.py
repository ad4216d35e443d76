"""PNG plots for the leaderboard (matplotlib, Agg canvas; no pyplot, no global state).

Per replay table (suite, config, scenario), into ``<root>/plots/``:

* ``<slug>-acc-vs-cost.png``: the same against the declared cost per item, for tables whose RMs
  differ in cost (score tables);
* ``<slug>-acc-vs-calls.png``: mean test routing accuracy vs mean RM calls per item, one point per
  router with its 95% bootstrap CIs over seeds as error bars, and the Pareto front (fewest calls,
  highest accuracy) of the non-oracle routers;
* ``<slug>-regret.png``: cumulative regret against the per-item oracle over the stream, mean over seeds;
* ``<slug>-choice-share.png``: for the learning routers, the share of test items credited to each RM
  per domain (mean over seeds), one heatmap per router.

The folder is rebuilt: PNG files in it that this build did not write are removed.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rmroute.harness.results import atomic_write_bytes
from rmroute.harness.board.model import Board, Row, Table
from rmroute.harness.board.stats import Stat


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (x no larger and y no smaller, one strictly),
    ordered by x. Lower x (cost) and higher y (accuracy) are better; of exact duplicates one is kept."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
    return path


def _style(i: int) -> tuple[object, str, str]:
    """(colour, marker, line style) for router i: tab10 colours, then other markers and dashes."""
    from matplotlib import colormaps

    return colormaps["tab10"](i % 10), "o^Dv"[(i // 10) % 4], ["-", "--", "-.", (0, (1, 1))][(i // 10) % 4]


def _plain(text: str) -> str:
    """Text from a run file (labels, RM and domain names, titles) as matplotlib shows it literally, on
    one line: a string with two ``$`` is parsed as mathtext (bad TeX there would fail the whole
    build), and control characters have no glyph."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text).replace("$", r"\$")


def _err(stat: Stat) -> tuple[float, float]:
    if stat.n > 1 and math.isfinite(stat.lo) and math.isfinite(stat.hi):
        return (max(0.0, stat.mean - stat.lo), max(0.0, stat.hi - stat.mean))
    return (0.0, 0.0)


#: above this many rows an accuracy plot drops its legend and the names of most single RMs
MAX_NAMED = 20


def plot_acc_vs_calls(table: Table, path: Path, x_key: str = "test_calls_per_item",
                      x_label: str = "RM calls per item") -> Path | None:
    """Test routing accuracy against ``x_key`` (RM calls, or cost, per item), with the Pareto front."""
    if x_key not in dict(table.metrics):
        return None
    rows = [r for r in table.rows
            if r.stats["test_routing_accuracy"].n and r.stats[x_key].n]
    if not rows:
        return None
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot()
    xs = [r.stats[x_key].mean for r in rows]
    ys = [r.stats["test_routing_accuracy"].mean for r in rows]
    # many rows (a score table with dozens of scorers): no legend, and only the routers and the three
    # best single RMs are named, so the axes keep their room and the names stay readable
    crowded = len(rows) > MAX_NAMED
    singles = sorted((y, i) for i, (r, y) in enumerate(zip(rows, ys)) if r.label.startswith("single:"))
    named = {i for i, r in enumerate(rows) if not (crowded and r.label.startswith("single:"))} | {i for _, i in singles[-3:]}
    for i, (r, x, y) in enumerate(zip(rows, xs, ys)):
        ex, ey = _err(r.stats[x_key]), _err(r.stats["test_routing_accuracy"])
        ax.errorbar([x], [y], xerr=[[ex[0]], [ex[1]]], yerr=[[ey[0]], [ey[1]]], fmt=_style(i)[1] if not r.replay_only else "s",
                    color=_style(i)[0], mfc="white" if r.replay_only else None, capsize=3, label=_plain(r.label),
                    alpha=1.0 if i in named else 0.45)
        if i in named:
            ax.annotate(_plain(r.label) + (" † (replay only)" if r.replay_only else ""), (x, y), textcoords="offset points",
                        xytext=(5, 4), fontsize=7)
    if min(xs) > 0 and max(xs) / min(xs) > 50:  # costs spanning orders of magnitude (1.4 to 2,000)
        ax.set_xscale("log")
    real = [i for i, r in enumerate(rows) if not r.replay_only]
    front = [real[j] for j in pareto_front([(xs[i], ys[i]) for i in real])]
    if front:
        fx, fy = [xs[i] for i in front], [ys[i] for i in front]
        ax.scatter(fx, fy, s=180, facecolors="none", edgecolors="black", linewidths=1, zorder=3)
        right = max(xs[i] for i in real)
        if fx[-1] < right:  # the front stays at its best accuracy for any larger budget
            fx, fy = fx + [right], fy + [fy[-1]]
        ax.step(fx, fy, where="post", color="black", linestyle="--", linewidth=1,
                label="Pareto front (non-oracle)")
    ax.set_xlabel(f"{x_label} (test, mean over seeds)")
    ax.set_ylabel("test routing accuracy (mean, 95% CI)")
    ax.set_title(f"accuracy vs {x_label.split(' per ')[0]} · {_plain(table.title)}", fontsize=9)
    ax.grid(alpha=0.3)
    if crowded:
        ax.text(0.99, 0.01, f"{len(rows) - len(named)} single RMs shown faded, unnamed (the track page lists them)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="#555")
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def mean_curve(runs: Sequence, key: str = "regret", x_key: str = "regret_x") -> tuple[np.ndarray, np.ndarray] | None:
    """Mean over runs of ``extra.curves[key]`` on the first run's x grid (others interpolated)."""
    curves = []
    for run in runs:
        c = (run.extra.get("curves") or {}) if isinstance(run.extra.get("curves"), dict) else {}
        y, x = c.get(key), c.get(x_key)
        if not y:
            continue
        y = np.asarray(y, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64) if x and len(x) == len(y) else np.arange(1, len(y) + 1, dtype=np.float64)
        curves.append((x, y))
    if not curves:
        return None
    x0 = curves[0][0]
    ys = [y if (len(x) == len(x0) and np.array_equal(x, x0)) else np.interp(x0, x, y) for x, y in curves]
    return x0, np.mean(ys, axis=0)


def plot_regret(table: Table, path: Path) -> Path | None:
    lines = [(r, mean_curve([ref.run for ref in r.refs])) for r in table.rows]
    lines = [(r, c) for r, c in lines if c is not None]
    if not lines:
        return None
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot()
    for i, (r, (x, y)) in enumerate(lines):
        ax.plot(x, y, color=_style(i)[0], linestyle=":" if r.replay_only else _style(i)[2], label=f"{_plain(r.label)} ({len(r.refs)} seeds)")
    ax.set_xlabel("stream items seen")
    ax.set_ylabel("cumulative regret vs per-item oracle (mean over seeds)")
    ax.set_title(f"cumulative regret · {_plain(table.title)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def choice_share(row: Row) -> tuple[list[str], list[str], np.ndarray] | None:
    """(domains, RMs, (D, K) mean share over seeds) from ``per_domain[d]['choice_share']``."""
    runs = [ref.run for ref in row.refs]
    rms: list[str] = []
    for run in runs:
        for name in run.reward_models:
            if name not in rms:
                rms.append(name)
    domains = sorted({d for run in runs for d, v in run.per_domain.items() if isinstance(v.get("choice_share"), dict)})
    if not domains or not rms:
        return None
    for run in runs:
        for v in run.per_domain.values():
            for name in (v.get("choice_share") or {}):
                if name not in rms:
                    rms.append(name)
    mat = np.zeros((len(domains), len(rms)))
    for i, d in enumerate(domains):
        shares = [run.per_domain[d]["choice_share"] for run in runs
                  if isinstance(run.per_domain.get(d, {}).get("choice_share"), dict)]
        for k, name in enumerate(rms):
            mat[i, k] = float(np.mean([float(s.get(name) or 0.0) for s in shares]))
    return domains, rms, mat


def plot_choice_share(table: Table, path: Path) -> Path | None:
    panels = [(r, choice_share(r)) for r in table.rows if r.learns]
    panels = [(r, c) for r, c in panels if c is not None]
    if not panels:
        return None
    k = max(len(c[1]) for _, c in panels)
    d = max(len(c[0]) for _, c in panels)
    ncols = min(3 if k <= 8 else 1, len(panels))  # many RMs (a score table): one wide heatmap per line
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(max(4.0, 1.0 + (0.8 if k <= 8 else 0.45) * k) * ncols, max(2.5, 1.2 + 0.45 * d) * nrows)
    for n, (r, (domains, rms, mat)) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, n + 1)
        im = ax.imshow(mat, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(rms)), [_plain(x) for x in rms], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(domains)), [_plain(d) for d in domains], fontsize=7)
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if mat[i, j] < 0.6 else "black")
        ax.set_title(f"{_plain(r.label)} ({len(r.refs)} seeds)", fontsize=8)
    fig.colorbar(im, ax=fig.axes, shrink=0.8, label="choice share")
    fig.suptitle(f"RM choice share per domain · {_plain(table.title)}", fontsize=9)
    return _save(fig, path)


def plot_acc_vs_cost(table: Table, path: Path) -> Path | None:
    """Accuracy against the declared cost per item; only for tables whose RMs differ in cost."""
    return plot_acc_vs_calls(table, path, "test_cost_per_item", "cost per item")


PLOTS = (("acc-vs-calls", plot_acc_vs_calls), ("acc-vs-cost", plot_acc_vs_cost), ("regret", plot_regret),
         ("choice-share", plot_choice_share))


def write_plots(board: Board, outdir: str | Path) -> list[Path]:
    """Write every plot for every replay table; sets ``table.plots``; returns the files written."""
    outdir = Path(outdir)
    written: list[Path] = []
    for table in board.tables:
        table.plots = {}
        if not table.replay:
            continue
        for kind, fn in PLOTS:
            path = fn(table, outdir / f"{table.slug}-{kind}.png")
            if path is not None:
                table.plots[kind] = path
                written.append(path)
    if outdir.is_dir():
        keep = {p.resolve() for p in written}
        for stale in outdir.glob("*.png"):
            if stale.resolve() not in keep:
                stale.unlink()
    return written
