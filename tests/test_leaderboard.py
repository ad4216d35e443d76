"""The leaderboard: grouping, statistics against hand computations, paired test, and the pages built from
them: the front page (summary table, marks, generated sentences, board.yaml tracks), one page per track
(full table, plots, failed runs, one reproduce command), router cards, checks.md, and their HTML (links
relative to each page, no network, text from run files shown literally)."""

from __future__ import annotations

import itertools
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from rmroute.harness import results as R
from rmroute.harness.cli import main
from rmroute.harness.board.build import build
from rmroute.harness.board.model import first_line, html_td, md_code
from rmroute.harness.board.plots import choice_share, mean_curve, pareto_front
from rmroute.harness.board.stats import (
    Comparison, SeedPair, Stat, adjust_holm, bootstrap_mean_ci, finite_values, fmt_p, paired_comparison,
)

N_ITEMS, N_ORACLE = 500, 400  # test items; the first N_ORACLE of them are the ones some RM gets right
C_SHA, D_SHA = "c" * 64, "d" * 64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# router -> (params, learns, replay_only, calls/item, stream regret, {scenario: routing acc per seed 0..2})
ROUTERS = {
    "oracle": ({}, False, True, 1.0, 0, {"iid": [1.0, 1.0, 1.0], "shift": [1.0, 1.0, 1.0]}),
    "bayesian": ({}, True, False, 1.0, 9, {"iid": [0.70, 0.80, 0.75], "shift": [0.60, 0.62, 0.64]}),
    "mean-ensemble": ({}, False, False, 3.0, 12, {"iid": [0.65, 0.65, 0.65], "shift": [0.66, 0.66, 0.66]}),
    "single": ({"arm": 0}, False, False, 1.0, 100, {"iid": [0.50, 0.55, 0.60], "shift": [0.50, 0.50, 0.50]}),
    "laser": ({}, True, False, 1.0, 30, {"iid": [0.60, 0.62, 0.64], "shift": [0.55, 0.57, 0.59]}),
    "domain-best": ({}, False, False, 1.0, 20, {"iid": [0.70, 0.70, 0.70], "shift": [0.61, 0.61, 0.61]}),
}
LABELS = {"single": "single:rm-a"}  # a router's default label (else its name and params)
#: each RM's offline accuracy as the demo runs record it: rm-a is the best single RM
OFFLINE_ACCURACY = {"rm-a": 0.70, "rm-b": 0.60, "rm-c": 0.60}
RMS = ["rm-a", "rm-b", "rm-c"]
DOMAINS = ["code", "math"]  # the first and the second half of the test items


def outcomes(acc: float) -> str:
    """Per-item test outcomes of a run with routing accuracy ``acc``: right on the first acc × N_ORACLE
    items (all of them oracle items), wrong on the rest; so pair accuracy = acc × N_ORACLE / N_ITEMS."""
    right = round(acc * N_ORACLE)
    return "1" * right + "0" * (N_ITEMS - right)


def replay_record(router: str, seed: int, scenario: str = "iid", *, sha: str = C_SHA, suite: str = "demo",
                  created: str = "2026-01-02T00:00:00+00:00", status: str = "ok", error: str | None = None,
                  acc: float | None = None, regret: float | None = None, label: str | None = None,
                  run_id: str | None = None, reward_models: list[str] = RMS,
                  items: list[int] | None = None, offline_accuracy: dict[str, float] | None = None,
                  feedback: dict | None = None) -> R.RunRecord:
    """A replay run whose metrics agree with its per-item outcomes, curves and RM calls, as the replay
    runner writes them (rmroute.harness.integrity checks this when the leaderboard loads it). Its test
    pairs come two per item (ids ``items``, by default 0, 0, 1, 1, ...: one shared split), and it records
    ``offline_accuracy`` (default OFFLINE_ACCURACY, over the demo's RMs) and ``feedback`` (gold)."""
    params, learns, replay_only, calls, stream_regret, accs = ROUTERS[router]
    label = LABELS.get(router) if label is None else label
    items = [i // 2 for i in range(N_ITEMS)] if items is None else items
    if offline_accuracy is None:
        offline_accuracy = OFFLINE_ACCURACY if reward_models == RMS else {rm: 0.5 for rm in reward_models}
    acc = accs[scenario][seed] if acc is None else acc
    regret = stream_regret if regret is None else regret
    ok = status == "ok"
    test, oracle = outcomes(acc), "1" * N_ORACLE + "0" * (N_ITEMS - N_ORACLE)
    half = N_ITEMS // 2
    per_domain = {
        d: {"routing_accuracy": test[i * half:(i + 1) * half].count("1") / oracle[i * half:(i + 1) * half].count("1"),
            "accuracy": test[i * half:(i + 1) * half].count("1") / half, "n": half,
            "choice_share": {rm: 1.0 / len(reward_models) for rm in reward_models}}
        for i, d in enumerate(DOMAINS)
    }
    test_per_rm = {rm: N_ITEMS if k < calls else 0 for k, rm in enumerate(reward_models)}
    return R.RunRecord(
        run_id=run_id or f"{suite}-{sha[:4]}-{scenario}-{router}-s{seed}-{created[:10]}", kind="replay", suite=suite,
        scenario=scenario, status=status, error=error,
        router=R.RouterInfo(name=router, params=params, label=label), reward_models=reward_models,
        data=R.DataInfo(name="toy", sha256="a" * 64, n=100), seed=seed,
        metrics={} if not ok else {
            "test_routing_accuracy": acc, "test_accuracy": test.count("1") / N_ITEMS,
            "test_oracle_accuracy": N_ORACLE / N_ITEMS, "test_calls_per_item": sum(test_per_rm.values()) / N_ITEMS,
            "stream_mean_reward": acc - 0.1, "stream_regret": regret, "feedback_skipped": 0,
        },
        per_domain=per_domain if ok else {},
        rm_calls={} if not ok else {"test_total": sum(test_per_rm.values()), "test_per_rm": test_per_rm},
        wall_s=0.1, config={"kind": "replay"}, config_sha256=sha,
        code=R.CodeVersion(git_sha=None, dirty=None), packages={"python": sys.version.split()[0]},
        command="rmroute run configs/quickstart.yaml", created=created,
        extra={} if not ok else {
            "curves": {"regret": [0.0, regret / 2, regret], "regret_x": [1, 50, 100]},
            "test_outcomes": test, "test_oracle": oracle, "learns": learns, "replay_only": replay_only,
            "test_items": items, "offline_accuracy": offline_accuracy, "feedback": feedback or {"mode": "gold"},
        },
    )


def write_demo(root: Path) -> dict[str, Path]:
    """Six routers × 3 seeds × 2 scenarios (laser seed 0 on iid failed), plus another config."""
    paths = {}
    for router, scenario, seed in itertools.product(ROUTERS, ("iid", "shift"), range(3)):
        if (router, scenario, seed) == ("laser", "iid", 0):
            rec = replay_record(router, seed, scenario, status="failed",
                                error="RuntimeError: router blew up | badly\nTraceback (most recent call last): ...")
        else:
            rec = replay_record(router, seed, scenario)
        paths[rec.run_id] = R.write_run(rec, root)
    # an older duplicate of bayesian iid seed 0 with a different number: superseded by the newer run
    old = replay_record("bayesian", 0, "iid", created="2025-12-31T00:00:00+00:00", acc=0.10)
    paths[old.run_id] = R.write_run(old, root)
    for seed in range(3):
        rec = replay_record("single", seed, "iid", sha=D_SHA, created="2026-01-01T00:00:00+00:00", acc=0.9)
        paths[rec.run_id] = R.write_run(rec, root)
    return paths


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Built once for the read-only tests (the CLI test rebuilds the same files)."""
    root = tmp_path_factory.mktemp("results")
    paths = write_demo(root)
    result = build(root)
    return root, paths, result


@pytest.fixture
def fresh_demo(tmp_path):
    paths = write_demo(tmp_path)
    return tmp_path, paths, build(tmp_path)


def section(text: str, start: str, end: str | None = None) -> str:
    i = text.index(start)
    j = text.index(end, i + len(start)) if end else len(text)
    return text[i:j]


def unescape(md: str) -> str:
    """Markdown text as displayed: backslash escapes of ASCII punctuation removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)


def row_of(text: str, label: str) -> list[str]:
    """The cells (as displayed) of the table row whose first cell is ``label``."""
    line = next(x for x in text.splitlines() if x.startswith("| ") and unescape(x.split(" | ")[0][2:]) == label)
    return [unescape(c.strip()) for c in re.split(r"(?<!\\)\|", line)[1:-1]]


# ---- statistics by hand -----------------------------------------------------------------------


def test_stat_mean_std_and_three_seed_ci_by_hand():
    st = Stat.of([0.70, 0.80, 0.75])
    assert st.mean == pytest.approx(0.75) and st.std == pytest.approx(0.05) and st.n == 3
    # 27 equally likely resamples; P(all three = the minimum) = 1/27 > 2.5%: the interval is [min, max]
    assert (st.lo, st.hi) == pytest.approx((0.70, 0.80))
    assert st.fmt() == "0.75 ± 0.05" and st.fmt_ci() == "[0.7, 0.8]"
    one = Stat.of([0.4, None, float("nan")])
    assert one.n == 1 and one.fmt() == "0.4" and one.fmt_ci() == "–"
    assert Stat.of([]).fmt() == "–"


def test_exact_bootstrap_ci_binomial_hand_computation():
    # values 0.6 ×4 and 0.8: the resampled mean is 0.6 + 0.2·k/5 with k ~ Binomial(5, 1/5).
    # P(k=0) = 0.32768 ≥ 0.025 -> lo = 0.6; P(k≤2) = 0.94208 < 0.975 ≤ P(k≤3) = 0.99328 -> hi = 0.6 + 0.2·3/5
    lo, hi = bootstrap_mean_ci([0.6, 0.6, 0.6, 0.6, 0.8])
    assert lo == pytest.approx(0.6) and hi == pytest.approx(0.72)
    # two values a, b: resampled means a, (a+b)/2, (a+b)/2, b each with 1/4 -> [a, b]
    assert bootstrap_mean_ci([0.5, 0.6]) == pytest.approx((0.5, 0.6))


def test_exact_bootstrap_matches_brute_force_enumeration():
    x = np.array([0.31, 0.77, 0.52, 0.60, 0.45])
    means = sorted(float(np.mean(x[list(idx)])) for idx in itertools.product(range(5), repeat=5))
    n = len(means)  # 3125 equally likely resamples
    lo = means[int(np.ceil(0.025 * n)) - 1]  # smallest mean with cumulative share >= 2.5%
    hi = means[int(np.ceil(0.975 * n)) - 1]
    assert bootstrap_mean_ci(x) == pytest.approx((lo, hi))


def test_monte_carlo_bootstrap_beyond_eight_seeds():
    # nine 0s and one 1: mean = k/10, k ~ Binomial(10, 0.1): P(k=0)=0.349 -> lo=0; P(k≤2)=0.930,
    # P(k≤3)=0.987 -> hi=0.3 (far from the 2.5%/97.5% edges, so 20,000 resamples find them)
    lo, hi = bootstrap_mean_ci([0.0] * 9 + [1.0])
    assert lo == pytest.approx(0.0) and hi == pytest.approx(0.3)


def test_paired_comparison_builds_entries_and_items_as_described():
    """The glue: (seed, pair) differences of the decoded 1/0/h outcomes, with the runs' item ids (or the
    position when a file has none), go to the cluster bootstrap; the maths itself is checked in
    tests/test_analysis.py against a direct computation."""
    from rmroute.harness.analysis import cluster_bootstrap_diff

    seeds = [SeedPair(0, "1h01", "0011", [7, 7, 9, 9]), SeedPair(1, "1110", "h010", [3, 3, 9, 9])]
    c = paired_comparison(seeds, "domain-best")
    d = np.array([1, 0.5, -1, 0, 0.5, 1, 0, 0])  # by hand: 1-0, .5-0, 0-1, 1-1; 1-.5, 1-0, 1-1, 0-0
    ref = cluster_bootstrap_diff(d, [7, 7, 9, 9, 3, 3, 9, 9])
    assert c.diff == pytest.approx(2 / 8) and (c.lo, c.hi, c.p) == (ref.lo, ref.hi, ref.p)
    assert (c.n_seeds, c.n_items, c.n_entries) == (2, 3, 8)
    assert c.fmt() == f"+25.0 [{100 * ref.lo + 0.0:+.1f}, {100 * ref.hi + 0.0:+.1f}]"
    no_ids = paired_comparison([SeedPair(0, "10", "00"), SeedPair(1, "11", "01")], "x")
    assert no_ids.n_items == 2 and no_ids.n_entries == 4  # position i is the same item on every seed


def test_paired_comparison_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="seed 1: 2 test pairs against 3"):
        paired_comparison([SeedPair(1, "10", "101")], "ref")
    with pytest.raises(ValueError, match="seed 0: extra.test_items has 1 ids for 2"):
        paired_comparison([SeedPair(0, "10", "01", [4])], "ref")
    with pytest.raises(ValueError, match="some seeds' runs only"):
        paired_comparison([SeedPair(0, "10", "01", [4, 5]), SeedPair(1, "10", "01")], "ref")
    with pytest.raises(ValueError, match="only '1', '0' and 'h'"):
        paired_comparison([SeedPair(0, "1x", "10")], "ref")
    with pytest.raises(ValueError, match="no seed"):
        paired_comparison([], "ref")


def test_adjust_holm_and_p_format():
    cs = [Comparison("r", 0.1, 0, 0.2, p, 1, 1, 1) for p in (0.01, 0.04, 0.03, 0.005)]
    adjust_holm(cs)
    assert [c.p_holm for c in cs] == pytest.approx([0.03, 0.06, 0.06, 0.02])  # the hand example of test_analysis
    assert [c.fmt_p() for c in cs] == ["0.030", "0.060", "0.060", "0.020"]
    assert fmt_p(0.0016) == "0.0016" and fmt_p(float("nan")) == "–"
    assert Comparison("r", -0.0001, -0.02, 0.0004, 1, 1, 1, 1).fmt() == "-0.0 [-2.0, +0.0]"


def test_pareto_front_mean_curve_and_choice_share_by_hand():
    pts = [(1.0, 0.70), (3.0, 0.75), (1.0, 0.60), (2.0, 0.65), (1.5, 0.72), (3.0, 0.74)]
    assert pareto_front(pts) == [0, 4, 1]  # (2, .65), (1, .60), (3, .74) are dominated

    class Run:
        def __init__(self, y, x=None, per_domain=None):
            self.extra = {"curves": {"regret": y, "regret_x": x or [1, 2, 3]}}
            self.per_domain = per_domain or {}
            self.reward_models = ["a", "b"]

    x, y = mean_curve([Run([0, 1, 2]), Run([0, 1, 4])])
    assert x.tolist() == [1, 2, 3] and y.tolist() == [0, 1, 3]
    x, y = mean_curve([Run([0, 2, 4]), Run([0, 4], x=[1, 3])])  # second run interpolated at x=2
    assert y.tolist() == [0, 2, 4]

    class Ref:
        def __init__(self, run):
            self.run = run

    class FakeRow:
        refs = [Ref(Run([0], per_domain={"code": {"choice_share": {"a": 1.0, "b": 0.0}}})),
                Ref(Run([0], per_domain={"code": {"choice_share": {"a": 0.5, "b": 0.5}}}))]

    domains, rms, mat = choice_share(FakeRow())
    assert domains == ["code"] and rms == ["a", "b"] and mat.tolist() == [[0.75, 0.25]]


# ---- the built leaderboard ---------------------------------------------------------------------


#: the demo's track pages (board/<suite>-<config sha[:12]>-<scenario>)
IID, SHIFT, OTHER = "demo-cccccccccccc-iid", "demo-cccccccccccc-shift", "demo-dddddddddddd-iid"


def track(root: Path, slug: str) -> str:
    """A track page's Markdown."""
    return (root / "board" / f"{slug}.md").read_text()


def main_table(page: str) -> str:
    """The full table of a track page (from its header to the blank line after it)."""
    return section(page, "| router | seeds", "\n\n")


def test_groups_by_suite_config_and_scenario(demo):
    root, paths, result = demo
    path, n_runs, n_skipped = result  # the old 3-tuple still unpacks
    assert path == root / "LEADERBOARD.md" and n_skipped == 0
    assert n_runs == len(paths) == 6 * 3 * 2 + 1 + 3
    tables = [(t.suite, t.config_sha256[:4], t.scenario) for t in result.board.tables]
    assert tables == [("demo", "cccc", "iid"), ("demo", "cccc", "shift"), ("demo", "dddd", "iid")]
    # one page per (suite, config, scenario), and no other page beside the router cards
    assert sorted(p.name for p in (root / "board").glob("*.md")) == sorted(f"{s}.md" for s in (IID, SHIFT, OTHER))
    assert [t.slug for t in result.board.tables] == [IID, SHIFT, OTHER]
    # the front page lists each group with its scenarios' pages, in scenario order
    text = path.read_text()
    assert "- demo · config `cccccccccccc`: [iid](board/demo-cccccccccccc-iid.md), " \
           "[shift](board/demo-cccccccccccc-shift.md)\n" in text
    assert "- demo · config `dddddddddddd`: [iid](board/demo-dddddddddddd-iid.md)\n" in text
    assert track(root, IID).startswith("# demo · config cccccccccccc · scenario iid · feedback gold\n")
    assert track(root, SHIFT).startswith("# demo · config cccccccccccc · scenario shift · feedback gold\n")
    # the other config's single runs (0.9) never merge into this config's single row
    assert row_of(main_table(track(root, IID)), "single:rm-a")[2] == "0.55 ± 0.05"
    assert row_of(main_table(track(root, OTHER)), "single:rm-a")[2].startswith("0.9")
    assert row_of(main_table(track(root, SHIFT)), "bayesian")[2] == "0.62 ± 0.02"  # 0.60, 0.62, 0.64


def demo_diffs(a: str, b: str, seeds) -> tuple[np.ndarray, np.ndarray]:
    """(seed, pair) differences of two demo routers on iid, counted from outcomes(acc), with the demo's
    item ids (two pairs per item, the same items on every seed)."""
    d = [np.array([int(x) - int(y) for x, y in zip(outcomes(ROUTERS[a][5]["iid"][s]), outcomes(ROUTERS[b][5]["iid"][s]))])
         for s in seeds]
    return np.concatenate(d), np.tile(np.arange(N_ITEMS) // 2, len(seeds))


def test_rows_numbers_sorting_and_references(demo):
    from rmroute.harness.analysis import cluster_bootstrap_diff

    root, _, result = demo
    text = track(root, IID)
    iid = main_table(text)
    labels = [line.split("|")[1].strip() for line in iid.splitlines()
              if line.startswith("| ") and not line.startswith("| router")]
    assert labels == ["oracle †", "bayesian", "domain-best", "mean-ensemble", "laser", "single:rm-a"]
    head = next(x for x in iid.splitlines() if x.startswith("| router"))
    cols = [unescape(c.strip()) for c in head.split("|")[1:-1]]
    assert cols[:12] == ["router", "seeds", "routing acc (test)", "95% CI", "pair acc (test)", "RM calls/item",
                         "stream reward", "stream regret", "Δ vs best single RM [95% CI]", "p (Holm)",
                         "Δ vs domain-best [95% CI]", "p (Holm)"]
    assert cols[-1] == "runs (seed → JSON)" and len(cols) == 13  # no per-row reproduce column any more
    assert "**best single RM** = single:rm-a (seeds 0, 1, 2); **domain-best** = domain-best (seeds 0, 1, 2)" in text
    bay = row_of(iid, "bayesian")
    # 0.70, 0.80, 0.75 (the older duplicate with 0.10 is superseded): mean 0.75, sample std 0.05, CI [min, max]
    assert bay[:8] == ["bayesian", "3", "0.75 ± 0.05", "[0.7, 0.8]", "0.6 ± 0.04", "1 ± 0", "0.65 ± 0.05", "9 ± 0"]
    # right on 280, 320, 300 of 500 pairs; single:rm-a (0.55) on 220 each: (60 + 100 + 80) / 1500 = +16.0 points;
    # domain-best (0.70) on 280 each: (0 + 40 + 20) / 1500 = +4.0 points
    assert bay[8].startswith("+16.0 [") and bay[10].startswith("+4.0 [")
    t = result.board.tables[0]
    rows = {r.label: r for r in t.rows}
    for label, ref, want in (("bayesian", "domain-best", 0.04), ("single:rm-a", "domain-best", -0.12),
                             ("bayesian", "best single RM", 0.16)):
        c = rows[label].vs[ref]
        other = "domain-best" if ref == "domain-best" else "single"
        d, ids = demo_diffs(label.split(":")[0], other, range(3))
        assert c.diff == pytest.approx(want) == pytest.approx(d.mean())
        expect = cluster_bootstrap_diff(d, ids)
        assert (c.lo, c.hi, c.p, c.n_items, c.n_seeds) == (expect.lo, expect.hi, expect.p, N_ITEMS // 2, 3)
    # the reference rows show "ref"; laser is compared on the two seeds it ran (seed 0 failed)
    assert row_of(iid, "domain-best")[10:12] == ["ref", "–"] and row_of(iid, "single:rm-a")[8] == "ref"
    assert rows["laser"].vs["domain-best"].n_seeds == 2
    assert rows["laser"].vs["domain-best"].diff == pytest.approx((248 + 256 - 2 * 280) / 1000)
    # Holm across the rows compared with domain-best, the oracle (replay only) left out of the family
    family = [rows[k].vs["domain-best"] for k in ("bayesian", "mean-ensemble", "laser", "single:rm-a")]
    raw = sorted(c.p for c in family)
    by_hand, running = [], 0.0
    for j, p in enumerate(raw):
        running = max(running, min(1.0, (len(raw) - j) * p))
        by_hand.append(running)
    assert sorted(c.p_holm for c in family) == pytest.approx(by_hand)
    assert rows["oracle"].vs["domain-best"].fmt_p() == "–" and row_of(iid, "oracle †")[11] == "–"
    assert "1 older run(s) of this config (any scenario)" in text  # the count is the config's
    assert "older run(s)" not in track(root, OTHER)
    # the other config has only its single:rm-a row: it is its own reference, so no Δ columns
    assert "Δ vs" not in track(root, OTHER) and result.board.tables[2].compared == []


def test_folds_cluster_over_the_union_of_items_and_references_per_seed(tmp_path):
    """With folds each seed tests other items (ids offset by seed): the comparison's items are their union.
    The best single RM is chosen per seed: on seed 2 rm-b's offline accuracy is higher, so single:rm-a is
    the reference on seeds 0 and 1 only and is compared with single:rm-b on seed 2."""
    fold_items = {s: [1000 * s + i // 2 for i in range(N_ITEMS)] for s in range(3)}
    acc = {s: OFFLINE_ACCURACY if s < 2 else {"rm-a": 0.6, "rm-b": 0.7, "rm-c": 0.6} for s in range(3)}
    for seed in range(3):
        for router, label in (("bayesian", None), ("single", "single:rm-a"), ("single", "single:rm-b"),
                              ("domain-best", None)):
            a = {"single:rm-b": 0.5}.get(label or "", None)
            R.write_run(replay_record(router, seed, label=label, acc=a, items=fold_items[seed],
                                      offline_accuracy=acc[seed], feedback={"mode": "budget", "share": 0.25},
                                      run_id=f"fold-{label or router}-{seed}"), tmp_path)
    result = build(tmp_path, plots=False)
    (table,) = result.board.tables
    rows = {r.label: r for r in table.rows}
    assert table.feedback == "budget (share=0.25)"
    assert track(tmp_path, table.slug).startswith(f"# demo · config {C_SHA[:12]} · scenario iid · feedback budget (share=0.25)\n")
    assert table.references["best single RM"] == "single:rm-a (seeds 0, 1), single:rm-b (seed 2)"
    c = rows["bayesian"].vs["domain-best"]
    assert (c.n_seeds, c.n_items, c.n_entries) == (3, 3 * N_ITEMS // 2, 3 * N_ITEMS)
    # single:rm-a: zero differences on seeds 0, 1 (its own runs), 0.55 vs 0.50 on seed 2: 20 of 1500 pairs
    c = rows["single:rm-a"].vs["best single RM"]
    assert c.n_seeds == 3 and c.diff == pytest.approx((round(0.60 * N_ORACLE) - round(0.5 * N_ORACLE)) / 1500)
    assert rows["single:rm-b"].vs["best single RM"].n_seeds == 3
    assert "best single RM" not in rows["bayesian"].vs_note


def test_mismatched_items_and_old_files_without_new_fields(tmp_path):
    R.write_run(replay_record("bayesian", 0, items=list(range(N_ITEMS))), tmp_path)
    R.write_run(replay_record("domain-best", 0), tmp_path)
    R.write_run(replay_record("mean-ensemble", 0), tmp_path)
    result = build(tmp_path, plots=False)
    text = track(tmp_path, IID)
    assert "Not compared: " in text
    assert "bayesian vs domain-best: seed 0: extra.test_items of runs/demo/" in unescape(text)
    assert "seed 0: the best single RM is single:rm-a, which has no run on this seed" in unescape(text)
    rows = {r.label: r for r in result.board.tables[0].rows}
    assert "domain-best" not in rows["bayesian"].vs and "domain-best" in rows["mean-ensemble"].vs
    # schema 1 files: no item ids, no offline accuracies, no feedback: each pair its own item, no best single RM
    old = tmp_path / "old"
    for router in ("bayesian", "domain-best"):
        rec = replay_record(router, 0)
        for key in ("test_items", "offline_accuracy", "feedback"):
            del rec.extra[key]
        R.write_run(rec.model_copy(update={"schema_version": 1}), old)
    result = build(old, plots=False)
    (table,) = result.board.tables
    assert table.compared == ["domain-best"] and table.feedback is None
    assert {r.label: r for r in table.rows}["bayesian"].vs["domain-best"].n_items == N_ITEMS


def test_failed_runs_listed_with_error_on_their_track_page(demo):
    root, paths, result = demo
    rid = "demo-cccc-iid-laser-s0-2026-01-02"
    failed = section(track(root, IID), "## Failed runs (1)")
    lines = [x for x in failed.splitlines() if x.startswith("| ")]
    assert lines[0] == "| router | seed | error | run |"
    # the first line of the error only, its pipe escaped; the run file linked relative to the page
    assert lines[1:] == [f"| laser | 0 | RuntimeError: router blew up \\| badly | [json](../runs/demo/{rid}.json) |"]
    assert (root / "board" / f"../runs/demo/{rid}.json").is_file()
    # a failed run is not a seed of its row, and is listed on its own scenario's page only
    assert row_of(main_table(track(root, IID)), "laser")[1] == "2"
    assert "Failed runs" not in track(root, SHIFT) and "Failed runs" not in track(root, OTHER)


def test_every_row_links_its_runs_and_one_reproduce_command(demo):
    root, paths, result = demo
    superseded = "demo-cccc-iid-bayesian-s0-2025-12-31"
    pages = {t.slug: track(root, t.slug) for t in result.board.tables}
    for run_id, path in paths.items():
        link = f"](../{path.relative_to(root).as_posix()})"
        # the run's own page is that of its config and scenario (the demo's run ids start with them)
        own = {slug for slug in pages if run_id.startswith(f"demo-{slug[5:9]}-{slug.split('-')[-1]}-")}
        linked = {slug for slug, text in pages.items() if link in text}
        assert linked == (set() if run_id == superseded else own), run_id
    bay = row_of(main_table(pages[IID]), "bayesian")
    assert bay[-1] == " ".join(f"[{s}](../runs/demo/demo-cccc-iid-bayesian-s{s}-2026-01-02.json)" for s in range(3))
    for slug, text in pages.items():
        assert text.count("rmroute reproduce") == 1, slug  # one command per page, not one per row
        assert "\n## Reproduce\n" in text
    assert "rmroute reproduce" not in result.path.read_text()


def test_reproduce_command_globs_exactly_the_tables_runs(tmp_path):
    """With the runners' run ids (``<scenario>--<label>--seed<seed>--<sha[:10]>``) the page's one command
    names a glob that matches every run file of its table, the failed one too, and no other."""
    import glob
    import shlex

    sha = "e" * 64
    mine: dict[str, set[str]] = {"iid": set(), "shift": set()}
    for scenario, router, seed in itertools.product(("iid", "shift"), ("bayesian", "single", "domain-best"), range(2)):
        rid = f"{scenario}--{LABELS.get(router, router).replace(':', '-')}--seed{seed}--{sha[:10]}"
        mine[scenario].add(str(R.write_run(replay_record(router, seed, scenario, sha=sha, run_id=rid), tmp_path)))
    rid = f"iid--laser--seed1--{sha[:10]}"
    mine["iid"].add(str(R.write_run(replay_record("laser", 1, sha=sha, status="failed", error="boom", run_id=rid),
                                    tmp_path)))
    # another config's run in the same folder, and a scenario whose name starts like another's
    R.write_run(replay_record("bayesian", 0, sha=C_SHA, run_id=f"iid--bayesian--seed0--{C_SHA[:10]}"), tmp_path)
    R.write_run(replay_record("bayesian", 0, "shift", sha=sha, run_id=f"iid-2--bayesian--seed0--{sha[:10]}")
                .model_copy(update={"scenario": "iid-2"}), tmp_path)
    result = build(tmp_path, plots=False)
    for table in result.board.tables:
        if table.config_sha256 != sha or table.scenario not in mine:
            continue
        (line,) = [x for x in track(tmp_path, table.slug).splitlines() if "rmroute reproduce" in x]
        words = shlex.split(line)
        assert words[:2] == ["rmroute", "reproduce"] and len(words) == 3, line
        assert set(glob.glob(words[2])) == mine[table.scenario], table.scenario


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_plots_are_valid_pngs(fresh_demo):
    root, _, result = fresh_demo
    plots = root / "plots"
    names = sorted(p.name for p in result.plots)
    assert names == sorted(p.name for p in plots.glob("*.png"))
    for scen in ("iid", "shift"):
        for kind in ("acc-vs-calls", "regret", "choice-share"):
            assert f"demo-cccccccccccc-{scen}-{kind}.png" in names
    # the other config has no learning router: no choice-share plot
    assert "demo-dddddddddddd-iid-choice-share.png" not in names
    assert "demo-dddddddddddd-iid-acc-vs-calls.png" in names
    for p in result.plots:
        w, h = png_size(p)
        assert w >= 300 and h >= 200 and p.stat().st_size > 5000
    # the plots folder is rebuilt: a stale PNG goes
    (plots / "stale.png").write_bytes(PNG_SIGNATURE)
    build(root)
    assert not (plots / "stale.png").exists()
    # each track page shows its own table's plots, relative to the page, and no other
    for table in result.board.tables:
        images = re.findall(r"!\[([^]]*)\]\(([^)]*)\)", track(root, table.slug))
        assert images == [(kind, f"../plots/{p.name}") for kind, p in table.plots.items()], table.slug
        assert all((root / "board" / src).is_file() for _, src in images)
    assert "![acc-vs-calls](../plots/demo-cccccccccccc-iid-acc-vs-calls.png)" in track(root, IID)
    assert "![" not in result.path.read_text()


class Parsed:
    """An HTML page's start tags (name, attributes) and its text, as Python's HTMLParser reads them."""

    def __init__(self, html: str):
        from html.parser import HTMLParser

        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        outer = self

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                outer.tags.append((tag, dict(attrs)))

            def handle_data(self, data):
                outer.text.append(data)

        parser = P()
        parser.feed(html)
        parser.close()

    def names(self) -> list[str]:
        return [t for t, _ in self.tags]

    def urls(self) -> list[str]:
        return [a[k] for _, a in self.tags for k in ("href", "src") if a.get(k) is not None]


def check_html_page(page: Path, base: Path) -> Parsed:
    """No network (no http(s), no external script or stylesheet), one inline script, and every link and
    image resolving to a file relative to the page, inside ``base``."""
    from urllib.parse import unquote

    html = page.read_text()
    assert "http://" not in html and "https://" not in html, page
    parsed = Parsed(html)
    scripts = [a for t, a in parsed.tags if t == "script"]
    assert len(scripts) == 1 and "src" not in scripts[0], page
    assert [a for t, a in parsed.tags if t == "link"] == [{"rel": "icon", "href": "data:,"}], page
    for url in parsed.urls():
        if url == "data:,":
            continue
        assert not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//", url), (page, url)
        target = unquote(url.split("#")[0])
        assert target and not target.endswith(".md"), (page, url)  # pages link the HTML pages
        resolved = (page.parent / target).resolve()
        assert resolved.is_file() and base.resolve() in resolved.parents, (page, url)
    return parsed


def front_rows(page: str) -> list[tuple[str, str]]:
    """(data-family, first cell's text) of each body row of the front page's table.front."""
    from html import unescape as html_unescape

    body = section(section(page, '<table class="front">', "</table>"), "<tbody>")
    rows = re.findall(r'<tr data-family="([^"]*)">\s*<td>(.*?)</td>', body, re.S)
    assert len(rows) == body.count("<tr"), body  # every row has its family
    return [(fam, html_unescape(re.sub(r"<[^>]+>", "", cell))) for fam, cell in rows]


def test_html_pages_links_resolve_and_no_network(demo):
    root, paths, result = demo
    assert result.html == root / "leaderboard.html"
    html_pages = [p for p in result.pages if p.suffix == ".html"]
    assert {p.relative_to(root).as_posix() for p in html_pages} == \
           {p.relative_to(root).with_suffix(".html").as_posix() for p in result.pages if p.suffix == ".md"
            if p.name != "LEADERBOARD.md"} | {"leaderboard.html"}
    linked: set[str] = set()
    for page in html_pages:
        parsed = check_html_page(page, root)
        linked |= {(page.parent / u).resolve().as_posix() for u in parsed.urls() if u.endswith(".json")}
        imgs = [a["src"] for t, a in parsed.tags if t == "img"]
        tables = [t for t in result.board.tables if page.name == f"{t.slug}.html"]
        assert len(imgs) == (len(tables[0].plots) if tables else 0), page  # plots on track pages only
    # every run counted (not the superseded one) is linked from a track page
    assert linked == {p.resolve().as_posix() for rid, p in paths.items() if "2025-12-31" not in rid}
    front = result.html.read_text()
    assert front.count('<table class="front">') == 1
    families = {"oracle": "baseline", "bayesian": "bayesian", "best single RM": "baseline",
                "domain-best": "baseline", "mean-ensemble": "ensemble", "laser": "laser"}
    rows = front_rows(front)
    assert [label for _, label in rows] == result.front.rows and set(result.front.rows) == set(families)
    assert all(fam == families[label] for fam, label in rows)
    track_html = (root / "board" / f"{IID}.html").read_text()
    assert 'href="../leaderboard.html"' in track_html and 'href="routers/bayesian.html"' in track_html
    assert '<img src="../plots/demo-cccccccccccc-iid-regret.png"' in track_html


def test_static_site_folder_is_self_contained(demo, tmp_path):
    root, paths, result = demo
    out = tmp_path / "site"
    assert main(["leaderboard", str(root), "--site", str(out)]) == 0  # the same pages as the build, from one collect
    assert (out / "index.html").read_text() == (out / "leaderboard.html").read_text()
    html = sorted(out.rglob("*.html"))
    assert len(html) == len([p for p in result.pages if p.suffix == ".html"]) + 1
    for page in html:
        check_html_page(page, out)  # every link resolves inside the folder: runs and plots copied
    assert all((out / p.relative_to(root)).is_file() for p in paths.values())


def test_top_table_and_cli_prints_it(demo, capsys):
    root, _, result = demo
    top = result.top
    assert top.title == "demo · config cccccccccccc · scenario iid · feedback gold"  # the newest group's first scenario
    assert top.columns == ["router", "seeds", "routing acc", "95% CI", "pair acc", "calls", "reward", "regret",
                           "Δ single", "p", "Δ dom-best", "p"]
    assert [r[0] for r in top.rows] == ["oracle †", "bayesian", "domain-best", "mean-ensemble", "laser", "single:rm-a"]
    assert top.rows[1][:9] == ["bayesian", "3", "0.75 ± 0.05", "[0.7, 0.8]", "0.6", "1", "0.65", "9", "+16.0"]
    assert top.rows[1][10] == "+4.0" and top.rows[2][10:] == ["ref", "–"]
    assert "best single RM = single:rm-a (seeds 0, 1, 2)" in top.note and "domain-best = domain-best" in top.note
    assert main(["leaderboard", str(root)]) == 0
    out = capsys.readouterr().out
    assert "routing acc" in out and "bayesian" in out and "0.75 ± 0.05" in out
    assert "leaderboard.html" in out and "plot(s) under" in out


def test_empty_results(tmp_path):
    path, n_runs, n_skipped = result = build(tmp_path)
    assert (n_runs, n_skipped) == (0, 0) and "No replay results yet." in path.read_text()
    assert result.top is None and result.plots == [] and result.html.is_file()
    assert "No check runs." in (tmp_path / "checks.md").read_text()
    assert not (tmp_path / "board").exists() or not list((tmp_path / "board").rglob("*.md"))


def test_missing_numbers_show_a_dash_and_sort_last(tmp_path):
    R.write_run(replay_record("bayesian", 0), tmp_path)  # one seed: no std, no CI
    for seed in range(2):
        rec = replay_record("mean-ensemble", seed)
        rec.metrics["stream_mean_reward"] = float("nan")  # stored as null
        R.write_run(rec, tmp_path)
    build(tmp_path)
    text = main_table(track(tmp_path, IID))
    cols = [unescape(c.strip()) for c in next(x for x in text.splitlines() if x.startswith("| router")).split("|")[1:-1]]
    bay = dict(zip(cols, row_of(text, "bayesian")))
    me = dict(zip(cols, row_of(text, "mean-ensemble")))
    assert bay["seeds"] == "1" and bay["routing acc (test)"] == "0.7" and bay["95% CI"] == "–"
    assert me["stream reward"] == "–" and me["routing acc (test)"] == "0.65 ± 0"
    html = (tmp_path / "board" / f"{IID}.html").read_text()
    assert "<td>–</td>" in html  # the page's sort puts "–" last
    assert "nan" not in html.lower().replace("nan(", "")


# ---- crafted run files: text from a config or a run file is shown, never interpreted ---------------

CRAFTED = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![pic](javascript:alert(1))",
    "<javascript:alert(1)>",
    "[ref]: javascript:alert(1)",
    "x\n# injected heading",
    "y\r\n## injected\rheading\u2028### more",
    "`unbalanced code",
    "``two` ticks`` `",
    "a | b \\| c \\\\| d",
    "&lt;script&gt; &#106;avascript:alert(1)",
    "**bold** _it_ ~~gone~~ $\\frac{1}{$ and $x$",
    "snake_case__name_ _x d*e*f",
    "<!-- c --> <a href='javascript:alert(1)'>a</a>",
]
# a file name holds no "/": a run id with the rest of the crafted characters
CRAFTED_RUN_ID = "run <b>x <i>y [l](javascript:y) `t #h &amp; (p) 100%"
# a router name (its card's title and file name)
CRAFTED_ROUTER = "x\n# injected `name` <b>y"
CRAFTED_SHA = "`<b>sha</b>" + "e" * 53


def _write_raw(root: Path, rec: R.RunRecord) -> Path:
    """The run file as a crafted one would be: written directly (whatever the suite), named by its run id."""
    import json

    path = root / "runs" / "crafted" / f"{rec.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec.model_dump(mode="json")))
    return path


def _evaluate_record(i: int, payload: str, status: str = "ok") -> R.RunRecord:
    ok = status == "ok"  # a failed run on seed 1, so that it is not superseded by the ok one (seed 0)
    return R.RunRecord(
        run_id=f"crafted-eval-{i}-{status}", kind="evaluate", suite=payload, scenario=payload, status=status,
        error=None if ok else payload, router=R.RouterInfo(name=payload, label=payload), reward_models=[],
        data=R.DataInfo(name=payload, sha256="b" * 64, n=3), seed=0 if ok else 1, metrics={payload: 0.5} if ok else {},
        wall_s=0.1, config={"description": payload}, config_sha256="f" * 64,
        code=R.CodeVersion(git_sha=None, dirty=None), packages={}, command="", created="2026-01-03T00:00:00+00:00",
        extra={"eval_suite": payload, "headline": [payload], "policy_label": payload, "ci": {payload: [0.4, 0.6]}},
    )


def write_crafted(root: Path) -> None:
    """Every field a config or a run file supplies, crafted: router labels, scenario and suite names,
    errors, RM and data names, metric keys, the config hash, the run id (its file name and link), and
    the evaluate runs' policy labels, suite names, headline keys and config descriptions."""
    for i, payload in enumerate(CRAFTED):
        _write_raw(root, replay_record("bayesian", 0, label=payload, acc=0.5, run_id=f"crafted-label-{i}"))
        _write_raw(root, replay_record("single", 0, scenario=payload, acc=0.5, run_id=f"crafted-scenario-{i}"))
        _write_raw(root, replay_record("laser", 1, label=payload, status="failed", error=payload,
                                       run_id=f"crafted-failed-{i}"))
        # (a train run: its table has no plots, which keeps this fixture fast; plot titles get the
        # crafted scenario names above)
        _write_raw(root, replay_record("single", 0, suite=payload, sha=D_SHA, acc=0.5, run_id=f"crafted-suite-{i}")
                   .model_copy(update={"kind": "train", "metrics": {"accuracy": 0.5}, "extra": {}}))
        _write_raw(root, _evaluate_record(i, payload))
        _write_raw(root, _evaluate_record(i, payload, status="failed"))
    rec = replay_record("mean-ensemble", 0, sha=CRAFTED_SHA, acc=0.5, reward_models=CRAFTED[:3], run_id=CRAFTED_RUN_ID)
    rec.data.name = CRAFTED[1]
    rec.router.name = CRAFTED_ROUTER
    _write_raw(root, rec)
    train = replay_record("bayesian", 0, suite="crafted-train", run_id="crafted-train").model_copy(
        update={"kind": "train", "metrics": {payload: 0.5 for payload in CRAFTED}, "extra": {}})
    _write_raw(root, train)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    root = tmp_path_factory.mktemp("crafted")
    write_crafted(root)
    (root / "runs" / "crafted" / (CRAFTED[1] + ".json")).write_text("{")  # a skipped file with a crafted name
    with pytest.warns(R.ResultsWarning):
        result = build(root)
    return root, result


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n\u2028]+", " ", text)


def _inline_text(token) -> str:
    return "".join(c.content for c in token.children if c.type in ("text", "code_inline"))


def test_markdown_shows_crafted_fields_literally(crafted):
    """Every Markdown page parsed as CommonMark + GFM tables (markdown-it-py, raw HTML on): no raw HTML,
    no link or image with a scheme, only the pages' own headings, every code span one of the pages'
    own, every crafted label shown as it is, in one cell; and every link resolves to a file."""
    from urllib.parse import unquote

    from markdown_it import MarkdownIt

    from rmroute.harness.board.pages import reproduce_glob

    root, result = crafted
    board = result.board
    assert board.n_runs == 6 * len(CRAFTED) + 2 and len(board.skipped) == 1
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # markdown-it drops javascript: links itself; other renderers may not
    cards = {"bayesian", "single", CRAFTED_ROUTER}  # laser only failed; mean-ensemble's runs name the crafted router
    headings = {"rmroute leaderboard", "Which router wins where", "What this shows", "Pages", "Policies",
                "Skipped files", "Plots", "Accuracy per domain", "Reproduce", "Parameters in each config",
                "On every track", "Where it wins and where it loses", "Pipeline checks",
                *(_one_line(t.title) for t in board.tables), *(f"Router {_one_line(n)}" for n in cards)}
    headings |= {f"{_one_line(g.suite)} · config {g.config_sha256[:12]} · {', '.join(g.kinds)}" for g in board.check_groups}
    headings |= {f"scenario {_one_line(t.scenario)}" for g in board.check_groups for t in g.tables}
    own = {"rmroute leaderboard", f"{root.as_posix()}/runs/**.json", "· n", "board: result", "board: check",
           *(_one_line(n) for n in cards),
           *(g.config_sha256[:12] for g in board.groups), *(g.config_sha256 for g in board.groups),
           *(str(p) for p, _ in board.skipped), *(_one_line(p) for p in CRAFTED),
           *(reproduce_glob(t) for g in board.groups for t in g.tables),
           *(str(row.refs[0].run.router.params) for t in board.tables for row in t.rows if row.refs)}
    pages = [p for p in result.pages if p.suffix == ".md"]
    # front, tracks, cards, checks
    assert len(pages) == 1 + len(board.tables) + len(cards) + 1
    assert len({p.name for p in pages}) == len(pages)  # no two tables or routers share a page
    cells: list[str] = []
    for page in pages:
        tokens = md.parse(page.read_text())
        inline = [child for t in tokens if t.type == "inline" for child in t.children]
        html = [t.content for t in tokens + inline if t.type in ("html_block", "html_inline")]
        assert not html, (page, html)
        targets = [t.attrGet("href") for t in inline if t.type == "link_open"] + \
                  [t.attrGet("src") for t in inline if t.type == "image"]
        assert targets, page
        for url in map(str, targets):
            assert re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url) is None, (page, url)
            assert (page.parent / unquote(url)).is_file(), (page, url)  # percent-encoded once, resolving
        found = [_inline_text(tokens[i + 1]) for i, t in enumerate(tokens) if t.type == "heading_open"]
        assert all(h in headings or re.fullmatch(r"Failed (evaluation )?runs \(\d+\)", h) for h in found), (page, found)
        spans = [t.content for t in inline if t.type == "code_inline"]
        assert set(spans) <= own, (page, set(spans) - own)
        cell = None
        for t in tokens:
            if t.type in ("td_open", "th_open"):
                cell = []
            elif t.type == "inline" and cell is not None:
                cell.append(_inline_text(t))
            elif t.type in ("td_close", "th_close"):
                cells.append("".join(cell))
                cell = None
    # shown as it is: each crafted label is the whole text of a table cell: its bayesian row on the track page,
    # its front row, its failed laser run, its policy row on checks.md
    for payload in CRAFTED:
        assert cells.count(_one_line(payload)) >= 4, payload


def test_html_shows_crafted_fields_literally(crafted):
    """The same crafted runs on every HTML page: only the pages' own tags, no event handler attribute, no
    link or image with a scheme (but the data: favicon), one script (the page's own), the plots the only
    images, bold only where the page puts it; the crafted labels and errors shown as text on the track page."""
    root, result = crafted
    board, front = result.board, result.front
    own = {"html", "head", "meta", "link", "title", "style", "body", "h1", "h2", "h3", "p", "code", "ul", "li",
           "div", "table", "thead", "tbody", "tr", "th", "td", "a", "strong", "img", "pre", "script", "button",
           "input", "label"}
    by_page = {f"board/{t.slug}.html": t for t in board.tables}
    for page in (p for p in result.pages if p.suffix == ".html"):
        parsed = check_html_page(page, root)
        names = parsed.names()
        assert set(names) <= own, (page, set(names) - own)
        assert not [n for _, a in parsed.tags for n in a if n.startswith("on")], page
        table = by_page.get(page.relative_to(root).as_posix())
        assert names.count("img") == (len(table.plots) if table else 0), page
        if table is not None:  # the references' names in the Δ note
            assert names.count("strong") == len(table.compared), page
        elif page == result.html:  # the legend's two, each note's track, each column's best
            assert names.count("strong") == 2 + len(front.tracks) + sum(front.best(t) is not None
                                                                        for t in range(len(front.tracks)))
    text = "".join(Parsed((root / "board" / f"{IID}.html").read_text()).text)
    for payload in CRAFTED:
        assert _one_line(payload) in text, payload  # the bayesian row's label, the failed run's label and error
    assert text.count(_one_line(CRAFTED[1])) >= 3


def test_md_code_keeps_backticks_and_pipes_inside_one_span():
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").enable("table")
    for text in ["plain", "a`b", "``x``", "`", " lead", "a|b", "a\\|b", "a\\\\|b", ""]:
        span = md_code(text, in_table=False)
        (para,) = [t for t in parser.parse(span) if t.type == "inline"]
        assert [c.type for c in para.children] == ["code_inline"] and para.children[0].content == (text or " "), text
        row = parser.parse(f"| h | i |\n|---|---|\n| {md_code(text)} | z |\n")
        cells = [t for t in row if t.type == "inline"][2:]
        assert [c.children[0].content for c in cells][1] == "z", text  # the pipe did not split the cell
        shown = cells[0].children[0].content
        assert shown == (text or " ") or (text.count("\\|") and shown.replace("\\\\|", "\\|") == text), (text, shown)


def test_first_line_html_td_and_finite_values():
    assert first_line("  \n boom: bad key\nTraceback ...") == "boom: bad key"
    assert first_line(None) == first_line("  \n") == "(no error recorded)"
    assert first_line("x" * 301) == "x" * 299 + "…" and first_line("x" * 300) == "x" * 300
    assert html_td("<b>") == "<td>&lt;b&gt;</td>" and html_td("<b>", raw=True) == "<td><b></td>"
    assert html_td("0.5", 0.5) == '<td class="num" data-value="0.5">0.5</td>'
    assert html_td("–", float("nan")) == '<td class="num" data-value="">–</td>'  # a missing number sorts last
    assert finite_values([1, 2.5, True, None, "3", float("nan"), float("inf")]) == [1.0, 2.5]


# ---- the package's floors ---------------------------------------------------------------------

#: harness/board's modules by floor: a module imports only modules of lower floors
#: (stats <- model <- collect <- front <- pages <- site; the renderers policy, plots, terminal <- build)
BOARD_FLOORS = {"stats": 0, "model": 1, "collect": 2, "policy": 2, "plots": 2, "front": 3, "terminal": 3,
                "pages": 4, "site": 5, "build": 6}
#: the chain each floor stands on: (module, a module it imports)
BOARD_CHAIN = [("model", "stats"), ("collect", "model"), ("front", "collect"), ("pages", "front"),
               ("pages", "policy"), ("site", "pages"), ("build", "site"), ("build", "plots"), ("build", "terminal")]


def test_board_imports_run_one_way():
    import ast

    board = Path(__file__).resolve().parents[1] / "harness" / "board"
    found = {p.stem for p in board.glob("*.py")} - {"__init__"}
    assert found == set(BOARD_FLOORS), "a new module in harness/board/ needs its floor in BOARD_FLOORS"
    wrong, edges = [], set()
    for name, floor in BOARD_FLOORS.items():
        tree = ast.parse((board / f"{name}.py").read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rmroute.harness.board"):
                target = node.module.split(".")[3] if node.module.count(".") > 2 else node.names[0].name
                if BOARD_FLOORS[target] >= floor or id(node) not in top:
                    wrong.append(f"{name} (floor {floor}) imports {target} (floor {BOARD_FLOORS[target]})"
                                 + ("" if id(node) in top else " inside a function"))
                wrong += [f"{name} imports private {a.name} from {target}" for a in node.names if a.name.startswith("_")]
                edges.add((name, target))
            elif isinstance(node, ast.Import) and any(a.name.startswith("rmroute.harness.board") for a in node.names):
                wrong.append(f"{name}: import rmroute.harness.board... (use from-imports, checked here)")
    assert not wrong, wrong
    assert set(BOARD_CHAIN) <= edges, set(BOARD_CHAIN) - edges


def test_feedback_text_shows_the_keys_its_mode_uses():
    from rmroute.harness.board.collect import feedback_text

    assert feedback_text({"mode": "gold", "share": 0.1, "m": 3}) == "gold"
    assert feedback_text({"mode": "budget", "share": 0.1, "m": 3}) == "budget (share=0.1)"
    assert feedback_text({"mode": "consensus", "share": 0.1, "m": 3}) == "consensus (m=3)"
    assert feedback_text({"mode": "mine", "k": 2}) == "mine (k=2)"


# ---- the front page, board.yaml, checks, router cards --------------------------------------------

#: routing accuracy per seed (0, 1, 2) of the front page's test runs. The best single RM is chosen per
#: seed on offline accuracy: rm-a on seeds 0 and 1, rm-b on seed 2 (FRONT_OFFLINE), i.e. routing
#: accuracies 0.5, 0.55, 0.5; bayesian has exactly those, seed by seed (no difference at all).
FRONT_ACC = {
    "oracle": [1.0, 1.0, 1.0], "single:rm-a": [0.5, 0.55, 0.6], "single:rm-b": [0.4, 0.4, 0.5],
    "bayesian": [0.5, 0.55, 0.5], "laser": [0.3, 0.3, 0.3], "mean-ensemble": [0.7, 0.7, 0.7],
    "domain-best": [0.65, 0.65, 0.65],
}
FRONT_OFFLINE = [OFFLINE_ACCURACY, OFFLINE_ACCURACY, {"rm-a": 0.6, "rm-b": 0.7, "rm-c": 0.6}]
FRONT_CHOICE = ["single:rm-a", "single:rm-a", "single:rm-b"]


def pair_acc(acc: float) -> float:
    """The test pair accuracy of a demo run with routing accuracy ``acc`` (see outcomes)."""
    return outcomes(acc).count("1") / N_ITEMS


def hand_vs(reference: list[float], rows: dict[str, list[float]]) -> dict[str, tuple[float, float, float, float]]:
    """label -> (diff, lo, hi, Holm p) of each row against the reference's routing accuracy per seed:
    (seed, pair) differences of the outcomes, clustered by item, Holm by hand across ``rows``."""
    from rmroute.harness.analysis import cluster_bootstrap_diff

    raw = {}
    for label, accs in rows.items():
        d = np.concatenate([np.array([int(x) - int(y) for x, y in zip(outcomes(a), outcomes(r))])
                            for a, r in zip(accs, reference)])
        c = cluster_bootstrap_diff(d, np.tile(np.arange(N_ITEMS) // 2, len(accs)))
        raw[label] = (float(d.mean()), c.lo, c.hi, c.p)
    order = sorted(raw, key=lambda k: raw[k][3])
    holm, running = {}, 0.0
    for j, label in enumerate(order):
        running = max(running, min(1.0, (len(order) - j) * raw[label][3]))
        holm[label] = running
    return {k: (v[0], v[1], v[2], holm[k]) for k, v in raw.items()}


def sig(c: tuple[float, float, float, float]) -> int:
    """+1 / -1 / 0: significantly above / below (interval excludes 0 and Holm p < 0.05) / neither."""
    return (1 if c[1] > 0 else -1 if c[2] < 0 else 0) if c[3] < 0.05 else 0


def cell_by_hand(accs: list[float]) -> tuple[float, float]:
    """Mean pair accuracy over seeds and the half-width of its interval over three seeds ([min, max]: the
    exact bootstrap of test_stat_mean_std_and_three_seed_ci_by_hand)."""
    p = [pair_acc(a) for a in accs]
    return sum(p) / len(p), (max(p) - min(p)) / 2


def link_text(cell: str) -> tuple[str, str]:
    m = re.fullmatch(r"\[(.*)\]\((.*)\)", cell)
    assert m, cell
    return unescape(m.group(1)), m.group(2)


def front_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The front page's summary table: its header cells, and per row label its cells (label first)."""
    lines = [x for x in section(text, "## Which router wins where", "### What this shows").splitlines()
             if x.startswith("| ")]
    head = [c.strip() for c in lines[0].split(" | ")]
    head[0], head[-1] = head[0][2:], head[-1][:-2]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[link_text(cells[0])[0]] = cells
    return head, rows


def test_front_page_cells_marks_and_sentences_by_hand(tmp_path):
    for seed, (label, accs) in itertools.product(range(3), FRONT_ACC.items()):
        router = label.split(":")[0]
        R.write_run(replay_record(router, seed, label=label if router == "single" else None, acc=accs[seed],
                                  offline_accuracy=FRONT_OFFLINE[seed], run_id=f"front-{label}-{seed}"), tmp_path)
    result = build(tmp_path, plots=False)
    reference = [FRONT_ACC[FRONT_CHOICE[s]][s] for s in range(3)]
    compared = {k: v for k, v in FRONT_ACC.items() if k != "oracle"}  # the oracle (replay only) is out of Holm
    vs_single = hand_vs(reference, compared)
    vs_domain = hand_vs(FRONT_ACC["domain-best"], {k: v for k, v in compared.items() if k != "domain-best"})
    head, rows = front_table(result.path.read_text())
    assert head == ["router", f"[demo · iid](board/{IID}.md)", "RM calls/item"]
    # rows: the routers but the single:* rows, plus the best single RM; the oracle first, then by accuracy
    accs = {k: v for k, v in FRONT_ACC.items() if not k.startswith("single:")} | {"best single RM": reference}
    means = {k: cell_by_hand(v)[0] for k, v in accs.items()}
    assert list(rows) == ["oracle"] + sorted((k for k in accs if k != "oracle"), key=lambda k: (-means[k], k))
    # the best single RM: the mean over seeds of each seed's chosen RM's accuracy, (0.40 + 0.44 + 0.40) / 3
    assert means["best single RM"] == pytest.approx((0.40 + 0.44 + 0.40) / 3)
    best = max((k for k in accs if k != "oracle"), key=lambda k: means[k])
    assert best == "mean-ensemble"
    for label, cells in rows.items():
        mean, half = cell_by_hand(accs[label])
        mark = {1: " ▲", -1: " ▼", 0: ""}[sig(vs_single[label])] if label in vs_single else ""
        text = f"{100 * mean:.1f} ±{100 * half:.1f}{mark}"
        assert cells[1] == (f"**{text}**" if label == best else text), label
        assert cells[2] == ("3" if label == "mean-ensemble" else "1"), label
        name = {"best single RM": "single"}.get(label, label)
        assert link_text(cells[0])[1] == f"board/routers/{name}.md" and (tmp_path / link_text(cells[0])[1]).is_file()
    # the demo numbers give one of each mark: above, below, and none (bayesian = the reference, seed by seed)
    assert [sig(vs_single[k]) for k in ("mean-ensemble", "laser", "bayesian")] == [1, -1, 0]
    assert vs_single["bayesian"][0] == 0
    # the sentences: the leader, the references, the best router against each, the counts
    (note,) = [x for x in result.path.read_text().splitlines() if x.startswith("- **demo · iid**")]
    words = {1: "significantly above", -1: "significantly below", 0: "not significantly different from"}

    def versus(c: tuple[float, float, float, float], what: str) -> str:
        return f"{words[sig(c)]} the {what} ({100 * c[0]:+.1f} [{100 * c[1]:+.1f}, {100 * c[2]:+.1f}] points, " \
               f"Holm p {fmt_p(c[3])})"

    routers = [k for k in accs if k not in ("oracle", "best single RM")]
    up = sorted(k for k in routers if sig(vs_single[k]) > 0)
    down = [k for k in routers if sig(vs_single[k]) < 0]
    assert up == ["domain-best", "mean-ensemble"] and down == ["laser"]
    assert note == (
        f"- **demo · iid**: mean-ensemble leads with {100 * means['mean-ensemble']:.1f}% pair accuracy; the best single "
        f"RM (rm-a, 2 of 3 seeds) has {100 * means['best single RM']:.1f}%, domain-best {100 * means['domain-best']:.1f}%. "
        f"The best router, mean-ensemble ({100 * means['mean-ensemble']:.1f}%), is "
        f"{versus(vs_single['mean-ensemble'], 'best single RM')} and {versus(vs_domain['mean-ensemble'], 'domain-best')}. "
        f"Of {len(routers)} routers, {len(up)} are significantly above the best single RM ({', '.join(up)}) and "
        f"{len(down)} significantly below it.")


def test_board_yaml_selects_and_orders_tracks(tmp_path):
    from rmroute.harness.core.errors import ConfigError

    write_demo(tmp_path)
    default = build(tmp_path, plots=False)
    # without board.yaml: each result group's first scenario
    assert [(t.label, t.table.slug) for t in default.front.tracks] == [("demo · cccccc · iid", IID), ("demo · dddddd · iid", OTHER)]  # two configs: named by hash
    (tmp_path / "board.yaml").write_text("front:\n  - {suite: demo, scenarios: [shift, iid], label: Demo}\n"
                                         "  - {suite: nowhere, scenarios: [iid]}\n  - {suite: demo}\n")
    result = build(tmp_path, plots=False)
    # in the file's order; iid from the newest config that has it (cccc ran 2026-01-02, dddd 2026-01-01);
    # a suite without runs gives no column; scenarios default to [iid]
    assert [(t.label, t.table.slug) for t in result.front.tracks] == \
           [("Demo · shift", SHIFT), ("Demo · iid", IID), ("demo · iid", IID)]
    head, rows = front_table(result.path.read_text())
    assert head[1:3] == [f"[Demo · shift](board/{SHIFT}.md)", f"[Demo · iid](board/{IID}.md)"]
    # the columns hold those tables' numbers: bayesian's shift accuracies 0.60, 0.62, 0.64
    mean, half = cell_by_hand(ROUTERS["bayesian"][5]["shift"])
    assert rows["bayesian"][1].startswith(f"{100 * mean:.1f} ±{100 * half:.1f}")
    assert rows["bayesian"][2].startswith("**60.0 ±4.0")
    (tmp_path / "board.yaml").write_text("front: [iid]\n")
    with pytest.raises(ConfigError, match=r"board\.yaml: front: expected a list"):
        build(tmp_path, plots=False)


def _marked(router: str, suite: str, sha: str, kind: str, board: str | None = None) -> R.RunRecord:
    """A run whose config says its kind (and ``board`` when given), as the runners record the config;
    a train run keeps the train runner's kind of metrics (here ``accuracy``), not replay's."""
    config = {"kind": kind} | ({"board": board} if board else {})
    rec = replay_record(router, 0, suite=suite, sha=sha, run_id=f"{suite}-0").model_copy(update={"config": config})
    if kind == "train":
        return rec.model_copy(update={"kind": "train", "metrics": {"accuracy": 0.25}, "extra": {}})
    return rec


def test_check_groups_go_to_checks_page_only(tmp_path):
    for seed in range(2):
        R.write_run(replay_record("bayesian", seed), tmp_path)
    R.write_run(_marked("single", "train-tiny", D_SHA, "train"), tmp_path)  # a check unless its config says otherwise
    R.write_run(_marked("laser", "replay-check", "e" * 64, "replay", board="check"), tmp_path)
    R.write_run(_marked("single", "train-real", "f" * 64, "train", board="result"), tmp_path)
    result = build(tmp_path, plots=False)
    assert {g.suite: g.role for g in result.board.groups} == \
           {"demo": "result", "train-tiny": "check", "replay-check": "check", "train-real": "result"}
    checks = (tmp_path / "checks.md").read_text()
    assert "## train-tiny · config `dddddddddddd` · train\n" in checks
    assert "## replay-check · config `eeeeeeeeeeee` · replay\n" in checks
    assert "train-real" not in checks and "No check runs." not in checks
    assert checks.index("## replay-check") < checks.index("## train-tiny")  # groups by suite name
    assert row_of(section(checks, "## train-tiny"), "single:rm-a") == ["single:rm-a", "1", "0.25", "–", "[0](runs/train-tiny/train-tiny-0.json)"]
    front = result.path.read_text()
    assert "train-tiny" not in front and "replay-check" not in front and "train-real" in front
    assert sorted(p.name for p in (tmp_path / "board").glob("*")) == sorted(
        [f"{IID}.md", f"{IID}.html", "train-real-ffffffffffff-iid.md", "train-real-ffffffffffff-iid.html", "routers"])
    assert {t.suite for t in result.board.tables} == {"demo", "train-real"}
    assert [t.table.suite for t in result.front.tracks] == ["demo"]  # a train table is no track
    # a router that ran in a check only has no card
    assert sorted(p.name for p in (tmp_path / "board" / "routers").glob("*.md")) == ["bayesian.md", "single.md"]


#: the demo's row label per router
FRONT_ROWS = ["oracle", "bayesian", "mean-ensemble", "single:rm-a", "laser", "domain-best"]


def test_router_cards_for_every_router_list_each_track_row(demo):
    root, _, result = demo
    board = result.board
    names = {ref.run.router.name for t in board.tables for row in t.rows for ref in row.refs}
    assert names == set(ROUTERS)
    assert {p.stem for p in (root / "board" / "routers").glob("*.md")} == names
    assert {p.stem for p in (root / "board" / "routers").glob("*.html")} == names
    for name in names:
        card = (root / "board" / "routers" / f"{name}.md").read_text()
        assert card.startswith(f"# Router `{name}`\n")
        lines = [x for x in section(card, "## On every track", "## Where it wins").splitlines() if x.startswith("| [")]
        got = [(link_text(re.split(r"(?<!\\)\|", x)[1].strip()), unescape(x.split(" | ")[1]), x.split(" | ")[2])
               for x in lines]
        want = []
        for t in board.tables:  # every replay table the router has a row in, the row's mean pair accuracy by hand
            sha, sc = t.config_sha256, t.scenario
            for label in [lab for lab in FRONT_ROWS if lab.split(":")[0] == name]:
                seeds = [s for s in range(3) if (name, sc, s) != ("laser", "iid", 0)]
                accs = [0.9] * 3 if sha == D_SHA else [ROUTERS[name][5][sc][s] for s in seeds]
                if sha == D_SHA and name != "single":
                    continue
                mean = sum(pair_acc(a) for a in accs) / len(accs)
                want.append(((t.title, f"../{t.slug}.md"), label, f"{100 * mean:.1f}"))
        assert got == want, name
    # where laser wins and loses: the references it is significantly above / below, per track
    laser = (root / "board" / "routers" / "laser.md").read_text()
    assert ("Significantly above a reference:\n- demo · iid: laser vs best single RM\n"
            "- demo · shift: laser vs best single RM\n") in laser
    assert ("Significantly below a reference:\n- demo · iid: laser vs domain-best\n"
            "- demo · shift: laser vs domain-best\n") in laser

