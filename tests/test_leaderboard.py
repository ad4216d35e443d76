"""The leaderboard: grouping, statistics against hand computations, paired test, links, plots, HTML."""

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


def test_groups_by_suite_config_and_scenario(demo):
    root, paths, result = demo
    path, n_runs, n_skipped = result  # the old 3-tuple still unpacks
    assert path == root / "LEADERBOARD.md" and n_skipped == 0
    assert n_runs == len(paths) == 6 * 3 * 2 + 1 + 3
    text = path.read_text()
    assert "## demo · config `cccccccccccc` · replay" in text
    assert "## demo · config `dddddddddddd` · replay" in text
    c = section(text, "config `cccccccccccc`", "config `dddddddddddd`")
    assert c.count("### scenario `") == 2
    assert c.index("### scenario `iid`") < c.index("### scenario `shift`")
    d = section(text, "config `dddddddddddd`")
    assert d.count("### scenario `") == 1
    # the other config's single runs (0.9) never merge into this config's single row
    iid = section(c, "### scenario `iid`", "### scenario `shift`")
    assert row_of(iid, "single:rm-a")[2] == "0.55 ± 0.05"
    assert row_of(d, "single:rm-a")[2].startswith("0.9")
    tables = [(t.suite, t.config_sha256[:4], t.scenario) for t in result.board.tables]
    assert tables == [("demo", "cccc", "iid"), ("demo", "cccc", "shift"), ("demo", "dddd", "iid")]


def demo_diffs(a: str, b: str, seeds) -> tuple[np.ndarray, np.ndarray]:
    """(seed, pair) differences of two demo routers on iid, counted from outcomes(acc), with the demo's
    item ids (two pairs per item, the same items on every seed)."""
    d = [np.array([int(x) - int(y) for x, y in zip(outcomes(ROUTERS[a][5]["iid"][s]), outcomes(ROUTERS[b][5]["iid"][s]))])
         for s in seeds]
    return np.concatenate(d), np.tile(np.arange(N_ITEMS) // 2, len(seeds))


def test_rows_numbers_sorting_and_references(demo):
    from rmroute.harness.analysis import cluster_bootstrap_diff

    root, _, result = demo
    text = result.path.read_text()
    iid = section(text, "### scenario `iid`", "### scenario `shift`")
    labels = [line.split("|")[1].strip() for line in iid.splitlines()
              if line.startswith("| ") and not line.startswith("| router")]
    assert labels == ["oracle †", "bayesian", "domain-best", "mean-ensemble", "laser", "single:rm-a"]
    head = next(x for x in iid.splitlines() if x.startswith("| router"))
    cols = [unescape(c.strip()) for c in head.split("|")[1:-1]]
    assert cols[:12] == ["router", "seeds", "routing acc (test)", "95% CI", "pair acc (test)", "RM calls/item",
                         "stream reward", "stream regret", "Δ vs best single RM [95% CI]", "p (Holm)",
                         "Δ vs domain-best [95% CI]", "p (Holm)"]
    assert "### scenario `iid` · feedback gold" in text
    assert "**best single RM** = single:rm-a (seeds 0, 1, 2); **domain-best** = domain-best (seeds 0, 1, 2)" in iid
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
    assert "1 older run(s)" in text
    # the other config has only its single:rm-a row: it is its own reference, so no Δ columns
    d = section(text, "config `dddddddddddd`")
    assert "Δ vs" not in d and result.board.tables[2].compared == []


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
    assert table.feedback == "budget (share=0.25)" and "· feedback budget (share=0.25)" in result.path.read_text()
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
    text = result.path.read_text()
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


def test_failed_runs_listed_with_error_and_reproduce(demo):
    root, paths, result = demo
    text = result.path.read_text()
    failed = section(text, "### Failed runs (1)", "## demo · config `dddddddddddd`")
    rid = "demo-cccc-iid-laser-s0-2026-01-02"
    line = next(x for x in failed.splitlines() if x.startswith("| laser |"))
    assert "RuntimeError: router blew up \\| badly" in line and "Traceback" not in line
    assert f"[json](runs/demo/{rid}.json)" in line
    assert f"`rmroute reproduce {root}/runs/demo/{rid}.json`" in line


def test_every_row_links_its_runs_and_reproduce_commands(demo):
    root, paths, result = demo
    text = result.path.read_text()
    superseded = "demo-cccc-iid-bayesian-s0-2025-12-31"
    for run_id, path in paths.items():
        if run_id == superseded:
            assert run_id not in text
            continue
        rel = path.relative_to(root).as_posix()
        assert f"]({rel})" in text, run_id
        assert f"`rmroute reproduce {path}`" in text, run_id
    bay = row_of(section(text, "### scenario `iid`"), "bayesian")
    assert bay[-2] == " ".join(f"[{s}](runs/demo/demo-cccc-iid-bayesian-s{s}-2026-01-02.json)" for s in range(3))
    assert bay[-1].count("rmroute reproduce") == 3


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
    assert "![acc-vs-calls](plots/demo-cccccccccccc-iid-acc-vs-calls.png)" in result.path.read_text()


def test_html_one_table_per_group_links_and_no_network(demo):
    root, paths, result = demo
    html = result.html.read_text()
    assert result.html == root / "leaderboard.html"
    assert html.count('class="sortable"') == 3  # one per (suite, config, scenario)
    assert html.count('class="sortable failed"') == 1
    assert "http://" not in html and "https://" not in html
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(not re.match(r"^[a-z]+:|^//", r) or r == "data:," for r in refs)
    assert "<script src" not in html and "<link rel=\"stylesheet\"" not in html
    for r in refs:
        if r != "data:,":
            assert (root / r).is_file(), r  # every link and image resolves next to the page
    imgs = re.findall(r'<img src="([^"]*)"', html)
    assert len(imgs) == len(result.plots)
    for run_id, path in paths.items():
        if "2025-12-31" not in run_id:
            assert f'href="{path.relative_to(root).as_posix()}"' in html
    assert html.count("rmroute reproduce ") == len(paths) - 1
    # numeric cells carry their sort value
    assert 'data-value="0.75"' in html


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
    assert (n_runs, n_skipped) == (0, 0) and "No runs yet." in path.read_text()
    assert result.top is None and result.plots == [] and result.html.is_file()


def test_missing_numbers_show_a_dash_and_sort_last(tmp_path):
    R.write_run(replay_record("bayesian", 0), tmp_path)  # one seed: no std, no CI
    for seed in range(2):
        rec = replay_record("mean-ensemble", seed)
        rec.metrics["stream_mean_reward"] = float("nan")  # stored as null
        R.write_run(rec, tmp_path)
    result = build(tmp_path)
    text = result.path.read_text()
    cols = [unescape(c.strip()) for c in next(x for x in text.splitlines() if x.startswith("| router")).split("|")[1:-1]]
    bay = dict(zip(cols, row_of(text, "bayesian")))
    me = dict(zip(cols, row_of(text, "mean-ensemble")))
    assert bay["seeds"] == "1" and bay["routing acc (test)"] == "0.7" and bay["95% CI"] == "–"
    assert me["stream reward"] == "–" and me["routing acc (test)"] == "0.65 ± 0"
    html = result.html.read_text()
    assert '<td class="num" data-value="">–</td>' in html  # the page's sort puts empty values last
    assert 'data-value="nan"' not in html and ">nan<" not in html.lower()


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
CRAFTED_RUN_ID = "run <b>x</b> [l](javascript:y) `t #h &amp; (p)"
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


def test_markdown_shows_crafted_fields_literally(crafted):
    """LEADERBOARD.md parsed as CommonMark + GFM tables (markdown-it-py): no raw HTML but the page's own
    <br>, no link or image with a scheme, only the page's own headings, every code span one of the page's
    own, and every crafted label shown as it is, in one cell."""
    from markdown_it import MarkdownIt

    root, result = crafted
    board = result.board
    assert board.n_runs == 6 * len(CRAFTED) + 2 and len(board.skipped) == 1
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # markdown-it drops javascript: links itself; other renderers may not
    tokens = md.parse(result.path.read_text())
    inline = [child for t in tokens if t.type == "inline" for child in t.children]
    html = [t.content for t in tokens + inline if t.type in ("html_block", "html_inline")]
    assert set(html) <= {"<br>"}, html
    targets = [t.attrGet("href") for t in inline if t.type == "link_open"] + \
              [t.attrGet("src") for t in inline if t.type == "image"]
    assert targets and all(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", str(u)) is None for u in targets), targets
    # the page's headings, and no other: h1, per group h2 + one h3 per table (+ failed runs), policies, skipped
    expected = 1 + sum(1 + len(g.tables) + bool(g.failed) for g in board.groups) + 2 + 1
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert len(headings) == expected, headings
    assert all(h.startswith(("rmroute leaderboard", "Policies", "Failed ", "Skipped files", "scenario "))
               or " · config " in h for h in headings), headings
    own = {"rmroute leaderboard", "results/runs/**.json", "cccccccccccc", "dddddddddddd", CRAFTED_SHA[:12], "iid",
           *(str(p) for p, _ in board.skipped), *(_one_line(p) for p in CRAFTED),
           *(ref.reproduce for t in board.tables for row in t.rows for ref in row.refs),
           *(ref.reproduce for g in board.groups for ref in g.failed)}
    spans = [t.content for t in inline if t.type == "code_inline"]
    assert spans and set(spans) <= own, set(spans) - own
    # shown as it is: each crafted label is the whole text of one table cell (a row, a failed run, a policy)
    cells, cell = [], None
    for t in tokens:
        if t.type in ("td_open", "th_open"):
            cell = []
        elif t.type == "inline" and cell is not None:
            cell += [c.content for c in t.children if c.type in ("text", "code_inline")]
        elif t.type in ("td_close", "th_close"):
            cells.append("".join(cell))
            cell = None
    for payload in CRAFTED:
        assert cells.count(_one_line(payload)) >= 3, payload  # its bayesian row, failed laser run, policy row


def test_html_shows_crafted_fields_literally(crafted):
    """The same crafted runs on leaderboard.html: only the page's own tags, no event handler attribute,
    no link or image with a scheme (but the data: favicon), one script (the page's own)."""
    from html.parser import HTMLParser

    root, result = crafted

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.attrs, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.attrs += attrs

        def handle_data(self, data):
            self.text.append(data)

    page = Tags()
    page.feed(result.html.read_text())
    own = {"html", "head", "meta", "link", "title", "style", "body", "h1", "h2", "h3", "p", "code", "ul", "li",
           "div", "table", "thead", "tbody", "tr", "th", "td", "a", "details", "summary", "br", "b", "img", "span",
           "script"}
    assert set(page.tags) <= own and page.tags.count("script") == 1 and page.tags.count("img") == len(result.plots)
    assert page.tags.count("b") == sum(len(t.compared) for t in result.board.tables)  # the references' names
    assert not [name for name, _ in page.attrs if name.startswith("on")]
    urls = [v for name, v in page.attrs if name in ("href", "src")]
    assert all(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", v) is None for v in urls if v != "data:,"), urls
    text = "".join(page.text)
    for payload in CRAFTED:
        assert payload.splitlines()[0] in text


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
BOARD_FLOORS = {"stats": 0, "model": 1, "collect": 2, "policy": 3, "plots": 3, "terminal": 3,
                "markdown": 4, "html": 4, "build": 5}


def test_board_imports_run_one_way():
    import ast

    board = Path(__file__).resolve().parents[1] / "harness" / "board"
    found = {p.stem for p in board.glob("*.py")} - {"__init__"}
    assert found == set(BOARD_FLOORS), "a new module in harness/board/ needs its floor in BOARD_FLOORS"
    wrong = []
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
    assert not wrong, wrong


def test_feedback_text_shows_the_keys_its_mode_uses():
    from rmroute.harness.board.collect import feedback_text

    assert feedback_text({"mode": "gold", "share": 0.1, "m": 3}) == "gold"
    assert feedback_text({"mode": "budget", "share": 0.1, "m": 3}) == "budget (share=0.1)"
    assert feedback_text({"mode": "consensus", "share": 0.1, "m": 3}) == "consensus (m=3)"
    assert feedback_text({"mode": "mine", "k": 2}) == "mine (k=2)"
