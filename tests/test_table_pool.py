"""Score-table pools: a rmroute-score-table/1 file (written here) as the RM pool of a replay run.

Margins are checked against a hand computation from the records; splits and folds against the
rules (groups never straddle, every item tested once per fold assignment, assignments change with
the seed); and a whole replay config runs on a table with every kind of router entry, with cheap
hash contexts (no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rmroute.harness.core.config import Problems
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.pipelines.pool import build_pool, load_pool_config, pool_rm_names
from rmroute.harness.pipelines.pool_report import render_table_markdown, table_report
from rmroute.harness.results import load_run
from rmroute.harness.runners import load_config, run_config
from rmroute.harness.runners.replay import ReplaySettings, build_base, fold_indices, seed_data

DOMAINS = ("math", "chat", "code")


def write_table(path, n_groups=30, per_group=2, seed=0):
    """A table whose scorer `m` is good on math, `c` on chat, and a verdict judge `j`; returns the
    records so tests can recompute margins by hand."""
    rng = np.random.default_rng(seed)
    header = {"format": "rmroute-score-table/1", "name": "toy", "source": "written by the test", "licence": "CC0",
              "scorers": [{"name": "m", "kind": "scalar", "cost": 7}, {"name": "c", "kind": "scalar", "cost": 2},
                          {"name": "j", "kind": "verdict", "cost": 70, "cost_note": "proxy"}]}
    rows = []
    for q in range(n_groups):
        d = DOMAINS[q % 3]
        for r in range(per_group):
            gold = "a" if rng.random() < 0.5 else "b"
            sign = 1 if gold == "a" else -1

            def scalar(p):
                s = sign if rng.random() < p else -sign
                x = float(rng.normal())
                return {"a": x + 0.5 * s, "b": x - 0.5 * s}

            scores = {"m": scalar(0.9 if d == "math" else 0.5), "c": scalar(0.9 if d == "chat" else 0.5),
                      "j": {"ab": ["a", "b", "tie", None][int(rng.integers(4))], "ba": ["a", "b", "tie", None][int(rng.integers(4))]}}
            if q == 0 and r == 0:
                del scores["c"]  # an abstention
            rows.append({"id": f"q{q}-{r}", "group": f"q{q}", "domain": d, "prompt": f"question {q} on {d}",
                         "response_a": f"first answer {r}", "response_b": f"second answer {r}", "gold": gold, "scores": scores})
    path.write_text("\n".join(json.dumps(x) for x in [header, *rows]) + "\n")
    return rows


def hand_margin(rec, name):
    s = rec["scores"].get(name)
    if s is None:
        return np.nan
    if "a" in s:
        return s["a"] - s["b"]
    votes = [{"a": 1, "b": -1, "tie": 0}[v] for v in (s["ab"], s["ba"]) if v is not None]
    return float(np.sign(sum(votes))) if votes else np.nan


@pytest.fixture
def table_files(tmp_path):
    rows = write_table(tmp_path / "toy.jsonl")
    (tmp_path / "pool.yaml").write_text(f"name: toy-pool\ntable:\n  file: {tmp_path / 'toy.jsonl'}\n")
    return tmp_path, rows


def test_table_pool_margins_splits_and_costs(table_files):
    tmp, rows = table_files
    pool = build_pool(load_pool_config(tmp / "pool.yaml"), log=lambda m: None)
    assert pool.names == ["m", "c", "j"] and pool.costs == [7.0, 2.0, 70.0]
    assert pool.data_name == "table:toy"
    by_id = {r["id"]: r for r in rows}
    seen = []
    for split in ("offline", "online", "test"):
        for pair, m in zip(pool.splits[split], pool.margins[split]):
            rec = by_id[pair.id]
            want = [hand_margin(rec, n) for n in ("m", "c", "j")]
            np.testing.assert_allclose(m, want, equal_nan=True)
            assert pair.gold_sign == (1 if rec["gold"] == "a" else -1) and pair.metadata["item"] == rec["group"]
            seen.append((pair.id, split))
    assert sorted(i for i, _ in seen) == sorted(by_id)  # every item, once
    split_of_group = {}
    for i, s in seen:
        split_of_group.setdefault(by_id[i]["group"], set()).add(s)
    assert all(len(s) == 1 for s in split_of_group.values())  # a group never straddles
    # the default shares 0.4 / 0.4 / 0.2 of each domain's 10 groups
    assert {s: len(pool.splits[s]) for s in pool.splits} == {"offline": 24, "online": 24, "test": 12}


def test_pool_config_needs_rms_or_a_table_not_both(tmp_path):
    (tmp_path / "a.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="reward_models.*or a .table"):
        load_pool_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("name: x\nreward_models: [length]\ntable: {file: t.jsonl}\n")
    with pytest.raises(ConfigError, match="takes its RMs from the table"):
        load_pool_config(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("name: x\ntable: {file: t.jsonl, adapter: judgebench}\n")
    with pytest.raises(ConfigError, match="exactly one of"):
        load_pool_config(tmp_path / "c.yaml")


def test_names_come_from_the_header_or_the_adapter_params(table_files, tmp_path):
    tmp, _ = table_files
    problems = Problems(tmp / "x.yaml", None)
    assert pool_rm_names(problems, ("pool",), str(tmp / "pool.yaml")) == ["m", "c", "j"]
    (tmp_path / "ad.yaml").write_text("name: y\ntable:\n  adapter: judgebench\n  params: {scorers: [{name: r1}, {name: r2}]}\n")
    assert pool_rm_names(problems, ("pool",), str(tmp_path / "ad.yaml")) == ["r1", "r2"]


def _settings(tmp, **kw):
    return ReplaySettings(pool=str(tmp / "pool.yaml"), **kw)


class _Cfg:
    featurizer = {"name": "pair-encoder", "params": {"model": "hash:32"}}
    routers = ()


def test_folds_by_group_change_with_the_seed_and_cover_every_item(table_files):
    tmp, rows = table_files
    settings = _settings(tmp, folds=5)
    base = build_base(_Cfg(), settings, log=lambda m: None)
    ids = [p.id for p in base.pairs]
    group = [next(r["group"] for r in rows if r["id"] == i) for i in ids]
    for first in (0, 5):  # two fold assignments: seeds 0..4 and 5..9
        tested = np.concatenate([fold_indices(base, 5, s, None)["test"] for s in range(first, first + 5)])
        assert sorted(tested.tolist()) == list(range(len(ids)))  # each item tested exactly once
        for s in range(first, first + 5):
            idx = fold_indices(base, 5, s, None)
            where = {}
            for split, ix in idx.items():
                for i in ix:
                    where.setdefault(group[i], set()).add(split)
            assert all(len(v) == 1 for v in where.values())  # no group straddles
    test_a = {s: set(fold_indices(base, 5, s, None)["test"].tolist()) for s in range(5)}
    test_b = {s: set(fold_indices(base, 5, s, None)["test"].tolist()) for s in range(5, 10)}
    assert sorted(map(sorted, test_a.values())) != sorted(map(sorted, test_b.values()))  # a new assignment
    data = seed_data(base, settings, 7)
    assert data.fold == {"index": 2, "n_folds": 5}


def test_table_report_matches_a_hand_computation(table_files):
    tmp, rows = table_files
    pool = build_pool(load_pool_config(tmp / "pool.yaml"), log=lambda m: None)
    rep = table_report(pool)
    for name in ("m", "c", "j"):
        m = np.array([hand_margin(r, name) for r in rows])
        g = np.array([1 if r["gold"] == "a" else -1 for r in rows])
        hand = np.where(np.isnan(m) | (m == 0), 0.5, (np.sign(m) == g).astype(float))
        assert rep["scorers"][name]["accuracy"]["acc"] == pytest.approx(hand.mean())
        assert rep["scorers"][name]["abstain_rate"] == pytest.approx(np.isnan(m).mean())
        lo, hi = rep["scorers"][name]["accuracy"]["lo"], rep["scorers"][name]["accuracy"]["hi"]
        assert lo <= hand.mean() <= hi
    err = 1 - np.array([[np.where(np.isnan(hand_margin(r, n)) | (hand_margin(r, n) == 0), 0.5,
                                  float(np.sign(hand_margin(r, n)) == (1 if r["gold"] == "a" else -1))) for n in ("m", "c")]
                        for r in rows])
    assert rep["error_correlation"]["matrix"][0][1] == pytest.approx(np.corrcoef(err.T)[0, 1])
    # every item is tested once by the cross-fitted choices; the per-domain best is the specialist
    assert rep["cross_fitted"]["best_single"]["n"] == len(rows)
    assert rep["cross_fitted"]["choices"][0]["domain_best"]["math"] == "m"
    assert "Score table `toy`" in render_table_markdown(rep)


def test_a_replay_config_runs_every_router_kind_on_a_table(table_files, tmp_path):
    tmp, _ = table_files
    cfg_path = tmp_path / "replay.yaml"
    cfg_path.write_text(f"""kind: replay
suite: toy-table
seeds: [0, 6]
featurizer: {{name: pair-encoder, params: {{model: "hash:32"}}}}
routers:
  - {{name: single, params: {{arm: all}}}}
  - majority-vote
  - domain-best
  - {{name: bayesian-online, context: pair}}
  - {{name: laser, params: {{mode: per_batch}}, context: prompt,
     normalizers: [{{name: affine, params: {{shift: -1.0}}}}, {{name: quantile, params: {{unit: batch, warmup: 2, during_warmup: raw}}}}]}}
settings:
  pool: {tmp / 'pool.yaml'}
  folds: 5
  batch_size: 8
  scenarios: {{iid: {{}}, shift: {{order: domain_blocks}}}}
""")
    paths = run_config(load_config(cfg_path), cfg_path, tmp_path / "out")
    assert len(paths) == (3 + 4) * 2 * 2
    recs = [load_run(p) for p in paths]
    assert all(r.status == "ok" for r in recs), [r.error for r in recs if r.status != "ok"]
    one = next(r for r in recs if r.router.label == "single:j" and r.seed == 6 and r.scenario == "iid")
    assert one.data.name == "table:toy" and one.extra["fold"] == {"index": 1, "n_folds": 5}
    assert one.metrics["test_cost_per_item"] == pytest.approx(70.0)
    mv = next(r for r in recs if r.router.name == "majority-vote" and r.seed == 0)
    assert mv.metrics["test_cost_per_item"] == pytest.approx(79.0)  # every scorer called: 7 + 2 + 70
    # several runs of one config reproduce together (one data build), as a track page's command does
    from rmroute.harness.cli import main

    assert main(["reproduce", *map(str, paths[:6])]) == 0
    # the board shows cost next to calls, and plots accuracy against it, because the costs differ
    from rmroute.harness.board.collect import collect
    from rmroute.harness.board.plots import write_plots

    board = collect(tmp_path / "out")
    table = next(t for t in board.tables if t.scenario == "iid")
    assert ("test_cost_per_item", "cost/item") in table.metrics
    written = write_plots(board, tmp_path / "out" / "plots")
    assert any(p.name.endswith("iid-acc-vs-cost.png") for p in written)
    # a pool of unit costs keeps the old columns (cost = calls)
    for r in recs:
        r.metrics["test_cost_per_item"] = r.metrics["test_calls_per_item"]
    from rmroute.harness.board import collect as collect_mod

    assert not any(collect_mod._costs_differ(r) for r in recs)


REPLAY = """kind: replay
suite: {suite}
seeds: [0, 1]
featurizer: {{name: pair-encoder, params: {{model: "hash:16"}}}}
routers: [majority-vote, domain-best]
settings: {{pool: {pool}, folds: 2}}
"""


def test_a_group_runs_each_config_and_one_broken_member_loses_no_other(table_files, tmp_path, monkeypatch, capsys):
    from rmroute.harness.cli import main

    tmp, _ = table_files
    (tmp_path / "broken-pool.yaml").write_text(f"name: broken\ntable: {{file: {tmp_path / 'absent.jsonl'}}}\n")
    (tmp_path / "a.yaml").write_text(REPLAY.format(suite="toy-a", pool=tmp / "pool.yaml"))
    (tmp_path / "b.yaml").write_text(REPLAY.format(suite="toy-b", pool=tmp / "pool.yaml"))
    (tmp_path / "group.yaml").write_text(f"kind: group\nconfigs: [{tmp_path / 'a.yaml'}, {tmp_path / 'b.yaml'}]\n")
    out = tmp_path / "results"
    assert main(["run", str(tmp_path / "group.yaml"), "--out", str(out), "--no-leaderboard"]) == 0
    assert len(list((out / "runs" / "toy-a").glob("*.json"))) == 4 and len(list((out / "runs" / "toy-b").glob("*.json"))) == 4
    assert main(["validate", str(tmp_path / "group.yaml")]) == 0
    # a member whose table is gone fails alone, named, after the others ran
    (tmp_path / "c.yaml").write_text(REPLAY.format(suite="toy-c", pool=tmp_path / "broken-pool.yaml"))
    (tmp_path / "d.yaml").write_text(REPLAY.format(suite="toy-d", pool=tmp / "pool.yaml"))
    from rmroute.harness import runners

    strict = runners.load_config
    # as if the table vanished between validate and run: the run itself meets the missing file
    monkeypatch.setattr(runners, "load_config", lambda p, **kw: strict(p, check_run=False))
    (tmp_path / "group2.yaml").write_text(f"kind: group\nconfigs: [{tmp_path / 'c.yaml'}, {tmp_path / 'd.yaml'}]\n")
    assert main(["run", str(tmp_path / "group2.yaml"), "--out", str(out), "--no-leaderboard"]) != 0
    assert len(list((out / "runs" / "toy-d").glob("*.json"))) == 4
    err = capsys.readouterr().err
    assert "c.yaml" in err and "absent.jsonl" in err
    (tmp_path / "group3.yaml").write_text("kind: group\nconfigs: [nowhere.yaml]\n")
    assert main(["validate", str(tmp_path / "group3.yaml")]) != 0
    assert "'nowhere.yaml' not found" in capsys.readouterr().err



def test_the_worked_example_runs_as_the_docs_say(tmp_path, monkeypatch):
    """docs/real-rms.md's worked example, verbatim: convert the CSV, then run every router on it."""
    import shutil
    import subprocess
    import sys

    from rmroute.harness.cli import main
    from tests.conftest import REPO

    shutil.copytree(REPO / "examples" / "score-table", tmp_path / "examples" / "score-table",
                    ignore=shutil.ignore_patterns("table.jsonl"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "examples/score-table/convert.py", "examples/score-table/scores.csv",
                          "examples/score-table/table.jsonl"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "wrote 180 items" in out.stdout, out.stderr
    assert main(["pool", "build", "examples/score-table/pool-example.yaml", "--out", "pool-report"]) == 0
    assert "rm-math-7b" in (tmp_path / "pool-report" / "example-scores.md").read_text()
    assert main(["run", "examples/score-table/replay-example.yaml", "--out", "results"]) == 0
    runs = [load_run(p) for p in (tmp_path / "results" / "runs" / "example-scores").glob("*.json")]
    assert len(runs) == (4 + 8) * 10 * 2 and all(r.status == "ok" for r in runs)
    assert "example-scores" in (tmp_path / "results" / "LEADERBOARD.md").read_text()


def test_add_router_runs_a_router_next_to_the_configs_own(table_files, tmp_path, capsys):
    """`rmroute run CONFIG --add-router NAME[=json]`: a contributor's router on a track, no config edit."""
    from rmroute.harness.cli import main

    tmp, _ = table_files
    (tmp_path / "a.yaml").write_text(REPLAY.format(suite="toy-add", pool=tmp / "pool.yaml"))
    out = tmp_path / "results"
    assert main(["run", str(tmp_path / "a.yaml"), "--out", str(out), "--add-router", "random",
                 "--add-router", 'single={"arm": "j"}']) == 0
    recs = [load_run(p) for p in (out / "runs" / "toy-add").glob("*.json")]
    labels = sorted({r.router.label or r.router.name for r in recs})
    assert labels == ["domain-best", "majority-vote", "random", "single:j"] and len(recs) == 8
    assert all(r.status == "ok" for r in recs)
    assert recs[0].config["routers"][-1] == {"name": "single", "params": {"arm": "j"}, "label": None,
                                             "normalizers": None, "context": None}
    assert "toy-add" in (out / "LEADERBOARD.md").read_text() and f"`{out.as_posix()}/runs/**.json`" in \
        (out / "LEADERBOARD.md").read_text()  # the front page names the folder it was built from
    assert main(["run", str(tmp_path / "a.yaml"), "--out", str(out), "--add-router", "random={oops"]) != 0
    assert "must be a JSON object" in capsys.readouterr().err
