"""The leaderboard: grouping, statistics against hand computations, paired test, links, plots, HTML."""

from __future__ import annotations

import itertools
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import leaderboard as L
from harness import results as R
from harness.cli import main
from harness.plots import choice_share, mean_curve, pareto_front

N_ITEMS = 20
C_SHA, D_SHA = "c" * 64, "d" * 64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# router -> (params, learns, replay_only, calls/item, stream regret, {scenario: routing acc per seed 0..2})
ROUTERS = {
    "oracle": ({}, False, True, 1.0, 0, {"iid": [1.0, 1.0, 1.0], "shift": [1.0, 1.0, 1.0]}),
    "bayesian": ({}, True, False, 1.0, 9, {"iid": [0.70, 0.80, 0.75], "shift": [0.60, 0.62, 0.64]}),
    "mean-ensemble": ({}, False, False, 3.0, 12, {"iid": [0.65, 0.65, 0.65], "shift": [0.66, 0.66, 0.66]}),
    "single": ({"arm": 0}, False, False, 1.0, 100, {"iid": [0.50, 0.55, 0.60], "shift": [0.50, 0.50, 0.50]}),
    "laser": ({}, True, False, 1.0, 30, {"iid": [0.60, 0.62, 0.64], "shift": [0.55, 0.57, 0.59]}),
}
RMS = ["rm-a", "rm-b", "rm-c"]


def outcomes(router: str, seed: int) -> str:
    """Per-item test outcomes: mean-ensemble right on the first 12 items; bayesian on 12 + seed + 1."""
    right = {"oracle": 16, "bayesian": 13 + seed, "mean-ensemble": 12, "single": 10, "laser": 11}[router]
    return "1" * right + "0" * (N_ITEMS - right)


def replay_record(router: str, seed: int, scenario: str = "iid", *, sha: str = C_SHA, suite: str = "demo",
                  created: str = "2026-01-02T00:00:00+00:00", status: str = "ok", error: str | None = None,
                  acc: float | None = None, regret: float | None = None) -> R.RunRecord:
    params, learns, replay_only, calls, stream_regret, accs = ROUTERS[router]
    acc = accs[scenario][seed] if acc is None else acc
    regret = stream_regret if regret is None else regret
    ok = status == "ok"
    per_domain = {
        d: {"routing_accuracy": acc, "accuracy": acc * 0.8, "n": 10,
            "choice_share": {"rm-a": 0.5 + 0.1 * i, "rm-b": 0.5 - 0.1 * i - 0.05 * seed, "rm-c": 0.05 * seed}}
        for i, d in enumerate(["code", "math"])
    }
    return R.RunRecord(
        run_id=f"{suite}-{sha[:4]}-{scenario}-{router}-s{seed}-{created[:10]}", kind="replay", suite=suite,
        scenario=scenario, status=status, error=error,
        router=R.RouterInfo(name=router, params=params), reward_models=RMS,
        data=R.DataInfo(name="toy", sha256="a" * 64, n=100), seed=seed,
        metrics={} if not ok else {
            "test_routing_accuracy": acc, "test_accuracy": acc * 0.8, "test_oracle_accuracy": 0.8,
            "test_calls_per_item": calls, "stream_mean_reward": acc - 0.1, "stream_regret": regret,
            "feedback_skipped": 0,
        },
        per_domain=per_domain if ok else {}, wall_s=0.1, config={"kind": "replay"}, config_sha256=sha,
        code=R.CodeVersion(git_sha=None, dirty=None), packages={"python": sys.version.split()[0]},
        command="rmroute run configs/quickstart.yaml", created=created,
        extra={} if not ok else {
            "curves": {"regret": [0.0, regret / 2, regret], "regret_x": [1, 50, 100]},
            "test_outcomes": outcomes(router, seed), "learns": learns, "replay_only": replay_only,
            "calls_per_item": calls,
        },
    )


def write_demo(root: Path) -> dict[str, Path]:
    """Five routers × 3 seeds × 2 scenarios (laser seed 0 on iid failed), plus another config."""
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
    result = L.build(root)
    return root, paths, result


@pytest.fixture
def fresh_demo(tmp_path):
    paths = write_demo(tmp_path)
    return tmp_path, paths, L.build(tmp_path)


def section(text: str, start: str, end: str | None = None) -> str:
    i = text.index(start)
    j = text.index(end, i + len(start)) if end else len(text)
    return text[i:j]


def row_of(text: str, label: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


# ---- statistics by hand -----------------------------------------------------------------------


def test_stat_mean_std_and_three_seed_ci_by_hand():
    st = L.Stat.of([0.70, 0.80, 0.75])
    assert st.mean == pytest.approx(0.75) and st.std == pytest.approx(0.05) and st.n == 3
    # 27 equally likely resamples; P(all three = the minimum) = 1/27 > 2.5%: the interval is [min, max]
    assert (st.lo, st.hi) == pytest.approx((0.70, 0.80))
    assert st.fmt() == "0.75 ± 0.05" and st.fmt_ci() == "[0.7, 0.8]"
    one = L.Stat.of([0.4, None, float("nan")])
    assert one.n == 1 and one.fmt() == "0.4" and one.fmt_ci() == "–"
    assert L.Stat.of([]).fmt() == "–"


def test_exact_bootstrap_ci_binomial_hand_computation():
    # values 0.6 ×4 and 0.8: the resampled mean is 0.6 + 0.2·k/5 with k ~ Binomial(5, 1/5).
    # P(k=0) = 0.32768 ≥ 0.025 -> lo = 0.6; P(k≤2) = 0.94208 < 0.975 ≤ P(k≤3) = 0.99328 -> hi = 0.6 + 0.2·3/5
    lo, hi = L.bootstrap_mean_ci([0.6, 0.6, 0.6, 0.6, 0.8])
    assert lo == pytest.approx(0.6) and hi == pytest.approx(0.72)
    # two values a, b: resampled means a, (a+b)/2, (a+b)/2, b each with 1/4 -> [a, b]
    assert L.bootstrap_mean_ci([0.5, 0.6]) == pytest.approx((0.5, 0.6))


def test_exact_bootstrap_matches_brute_force_enumeration():
    x = np.array([0.31, 0.77, 0.52, 0.60, 0.45])
    means = sorted(float(np.mean(x[list(idx)])) for idx in itertools.product(range(5), repeat=5))
    n = len(means)  # 3125 equally likely resamples
    lo = means[int(np.ceil(0.025 * n)) - 1]  # smallest mean with cumulative share >= 2.5%
    hi = means[int(np.ceil(0.975 * n)) - 1]
    assert L.bootstrap_mean_ci(x) == pytest.approx((lo, hi))


def test_monte_carlo_bootstrap_beyond_eight_seeds():
    # nine 0s and one 1: mean = k/10, k ~ Binomial(10, 0.1): P(k=0)=0.349 -> lo=0; P(k≤2)=0.930,
    # P(k≤3)=0.987 -> hi=0.3 (far from the 2.5%/97.5% edges, so 20,000 resamples find them)
    lo, hi = L.bootstrap_mean_ci([0.0] * 9 + [1.0])
    assert lo == pytest.approx(0.0) and hi == pytest.approx(0.3)


def test_paired_identical_outcomes_give_zero_and_p_one():
    a = ["1100101", "0110011", "1111000"]
    p = L.paired_test(a, list(a))
    assert (p.diff, p.lo, p.hi, p.p) == (0.0, 0.0, 0.0, 1.0)
    assert (p.n_seeds, p.n_items) == (3, 7)


def test_paired_dominance_gives_large_difference_and_small_p():
    a = ["1" * 20] * 3
    b = ["1" * 10 + "0" * 10] * 3  # a right on every item b gets wrong
    p = L.paired_test(a, b)
    assert p.diff == pytest.approx(0.5)
    assert 0.2 < p.lo <= 0.5 <= p.hi < 0.8
    assert p.p < 0.001
    rev = L.paired_test(b, a)
    assert rev.diff == pytest.approx(-0.5) and rev.p == pytest.approx(p.p)


def test_paired_difference_is_mean_of_per_seed_differences():
    a = ["1110000000", "1111100000"]  # accuracies 0.3, 0.5
    b = ["1000000000", "1000000000"]  # 0.1, 0.1
    assert L.paired_test(a, b).diff == pytest.approx(((0.3 - 0.1) + (0.5 - 0.1)) / 2)
    # swapped wins of equal count: symmetric bootstrap, no evidence
    p = L.paired_test(["1111100000"], ["0000011111"])
    assert p.diff == 0.0 and p.lo < 0 < p.hi and p.p > 0.5


def test_paired_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same seeds"):
        L.paired_test(["10"], ["10", "01"])
    with pytest.raises(ValueError, match="test items"):
        L.paired_test(["10"], ["101"])
    with pytest.raises(ValueError, match="only '0' and '1'"):
        L.paired_test(["1x"], ["10"])


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
    assert n_runs == len(paths) == 5 * 3 * 2 + 1 + 3
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
    assert row_of(iid, "single(arm=0)")[2] == "0.55 ± 0.05"
    assert row_of(d, "single(arm=0)")[2].startswith("0.9")
    tables = [(t.suite, t.config_sha256[:4], t.scenario) for t in result.board.tables]
    assert tables == [("demo", "cccc", "iid"), ("demo", "cccc", "shift"), ("demo", "dddd", "iid")]


def test_rows_numbers_sorting_and_baseline(demo):
    root, _, result = demo
    text = result.path.read_text()
    iid = section(text, "### scenario `iid`", "### scenario `shift`")
    labels = [line.split("|")[1].strip() for line in iid.splitlines()
              if line.startswith("| ") and not line.startswith("| router")]
    assert labels == ["oracle †", "bayesian", "mean-ensemble", "laser", "single(arm=0)"]
    head = next(x for x in iid.splitlines() if x.startswith("| router"))
    cols = [c.strip() for c in head.split("|")[1:-1]]
    assert cols[:9] == ["router", "seeds", "routing acc (test)", "95% CI", "pair acc (test)", "RM calls/item",
                        "stream reward", "stream regret", "paired vs"]
    bay = dict(zip(cols, row_of(iid, "bayesian")))
    # 0.70, 0.80, 0.75 (the older duplicate with 0.10 is superseded): mean 0.75, sample std 0.05, CI [min, max]
    assert bay["seeds"] == "3" and bay["routing acc (test)"] == "0.75 ± 0.05" and bay["95% CI"] == "[0.7, 0.8]"
    assert bay["pair acc (test)"] == "0.6 ± 0.04"  # 0.8 × each
    assert bay["RM calls/item"] == "1 ± 0" and bay["stream regret"] == "9 ± 0"
    # bayesian is the best non-oracle row, so it is set against the runner-up, mean-ensemble;
    # per-seed differences 1/20, 2/20, 3/20 -> mean 0.1
    assert bay["paired vs"] == "mean-ensemble" and bay["Δ pair acc [95% CI]"].startswith("+0.1000 [")
    assert "Paired test baseline: **bayesian**" in iid and "set against **mean-ensemble**" in iid
    single = dict(zip(cols, row_of(iid, "single(arm=0)")))
    assert single["paired vs"] == "bayesian"
    assert single["Δ pair acc [95% CI]"].startswith("-0.2000 [")  # 10/20 vs 13,14,15/20
    laser = dict(zip(cols, row_of(iid, "laser")))
    assert laser["seeds"] == "2" and laser["routing acc (test)"] == "0.63 ± 0.014"  # seed 0 failed
    t = result.board.tables[0]
    rows = {r.label: r for r in t.rows}
    assert rows["bayesian"].paired.diff == pytest.approx(0.1) and rows["bayesian"].paired.n_seeds == 3
    assert rows["laser"].paired.n_seeds == 2  # only the seeds both ran
    assert rows["oracle"].paired.baseline == "bayesian"
    # on shift mean-ensemble is best: it becomes the baseline
    shift = result.board.tables[1]
    assert shift.baseline == "mean-ensemble" and shift.runner_up == "bayesian"
    assert "1 older run(s)" in text


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
    L.build(root)
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
    assert top.title == "demo · config cccccccccccc · scenario iid"  # the newest group's first scenario
    assert top.columns == ["router", "seeds", "routing acc", "95% CI", "pair acc", "calls", "reward", "regret",
                           "Δ vs base", "p"]
    assert [r[0] for r in top.rows] == ["oracle †", "bayesian", "mean-ensemble", "laser", "single(arm=0)"]
    assert top.rows[1][:9] == ["bayesian", "3", "0.75 ± 0.05", "[0.7, 0.8]", "0.6", "1", "0.65", "9", "+0.100"]
    assert "against bayesian" in top.note and "bayesian against mean-ensemble" in top.note
    assert main(["leaderboard", str(root)]) == 0
    out = capsys.readouterr().out
    assert "routing acc" in out and "bayesian" in out and "0.75 ± 0.05" in out
    assert "leaderboard.html" in out and "plot(s) under" in out


def test_empty_results(tmp_path):
    path, n_runs, n_skipped = result = L.build(tmp_path)
    assert (n_runs, n_skipped) == (0, 0) and "No runs yet." in path.read_text()
    assert result.top is None and result.plots == [] and result.html.is_file()


def test_missing_numbers_show_a_dash_and_sort_last(tmp_path):
    R.write_run(replay_record("bayesian", 0), tmp_path)  # one seed: no std, no CI
    for seed in range(2):
        rec = replay_record("mean-ensemble", seed)
        rec.metrics["stream_mean_reward"] = float("nan")  # stored as null
        R.write_run(rec, tmp_path)
    result = L.build(tmp_path)
    text = result.path.read_text()
    cols = [c.strip() for c in next(x for x in text.splitlines() if x.startswith("| router")).split("|")[1:-1]]
    bay = dict(zip(cols, row_of(text, "bayesian")))
    me = dict(zip(cols, row_of(text, "mean-ensemble")))
    assert bay["seeds"] == "1" and bay["routing acc (test)"] == "0.7" and bay["95% CI"] == "–"
    assert me["stream reward"] == "–" and me["routing acc (test)"] == "0.65 ± 0"
    html = result.html.read_text()
    assert '<td class="num" data-value="">–</td>' in html  # the page's sort puts empty values last
    assert 'data-value="nan"' not in html and ">nan<" not in html.lower()
