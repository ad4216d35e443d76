"""The replay runner end to end on synthetic data: grid, run files, failures, resume, reproduce."""

from __future__ import annotations

import json

import pytest

import rmroute.harness.runners.replay as replay
from rmroute.harness.cli import main
from rmroute.harness.core.plugins import build_registry, reset_registry
from tests.conftest import FIXTURE_PLUGINS
from tests.test_replay import make_split, synthetic_prepared

CONFIG = """\
kind: replay
suite: synthetic
seeds: [0, 1]
routers:
  - {name: single, params: {arm: all}}
  - bayesian
  - {name: laser, params: {mode: per_item}}
  - boom
featurizer: pair-encoder
settings:
  pool: POOL
  scenarios:
    iid: {}
    shift: {order: domain_blocks}
"""
#: the pool CONFIG names: validate reads its RM names (build_data is replaced, so nothing is built)
POOL = "name: synthetic\nreward_models: [{name: length, label: rm-math}, {name: length, label: rm-chat}, {name: length, label: rm-code}]\n"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    import fixture_boom

    reset_registry(build_registry(extra_plugins=[("boom-plugin", fixture_boom)]))
    rng = np.random.default_rng(0)
    data = replay.ReplayData(names=["rm-math", "rm-chat", "rm-code"], costs=np.ones(3),
                             offline=make_split(100, rng), online=make_split(300, rng), test=make_split(200, rng))
    calls = {"n": 0}
    real = replay.replay_one

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(replay, "build_data", lambda cfg, settings, log=print: synthetic_prepared(data))
    monkeypatch.setattr(replay, "replay_one", counting)
    cfg = tmp_path / "replay.yaml"
    (tmp_path / "pool.yaml").write_text(POOL)
    cfg.write_text(CONFIG.replace("POOL", str(tmp_path / "pool.yaml")))
    return cfg, tmp_path / "results", calls


def test_grid_failures_resume_and_reproduce(setup, capsys):
    cfg, out, calls = setup
    assert main(["run", str(cfg), "--out", str(out)]) == 2  # a failed cell makes the exit status non-zero...
    err = capsys.readouterr().err
    assert "4 of 24 run(s) failed" in err and err.count("boom: this router fails") == 4  # ...naming each
    files = sorted((out / "runs" / "synthetic").glob("*.json"))
    n_cells = (3 + 1 + 1 + 1) * 2 * 2  # (3 singles + bayesian + laser + boom) x 2 seeds x 2 scenarios
    assert len(files) == n_cells and calls["n"] == n_cells
    records = [json.loads(f.read_text()) for f in files]
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 4 and all("boom: this router fails" in r["error"] for r in failed)
    assert all(r["router"]["label"] == "boom" for r in failed)
    ok = [r for r in records if r["status"] == "ok"]
    assert {r["scenario"] for r in ok} == {"iid", "shift"}
    assert all(r["command"].startswith("rmroute reproduce ") for r in records)
    assert (out / "LEADERBOARD.md").is_file()

    # a killed run: lose some finished cells, then resume; only missing and failed cells run again,
    # and the leaderboard comes out the same
    board = (out / "LEADERBOARD.md").read_text()
    lost = [f for f in files if "bayesian" in f.name][:3]
    for f in lost:
        f.unlink()
    calls["n"] = 0
    assert main(["run", str(cfg), "--out", str(out), "--resume"]) == 2
    assert calls["n"] == 4 + len(lost)
    assert (out / "LEADERBOARD.md").read_text() == board

    # reproduce: the same numbers, metric by metric and item by item
    capsys.readouterr()
    bayes = next(f for f in files if "bayesian" in f.name and "seed1" in f.name and f.name.startswith("shift"))
    assert main(["reproduce", str(bayes)]) == 0
    assert "match" in capsys.readouterr().out
    original = bayes.read_text()
    tampered = json.loads(original)
    tampered["metrics"]["test_accuracy"] += 0.01
    bayes.write_text(json.dumps(tampered))
    assert main(["reproduce", str(bayes)]) == 2
    assert "not self-consistent" in capsys.readouterr().err
    # a run file whose config is not the one its config_sha256 names is refused before anything runs
    tampered = json.loads(original)
    tampered["config"]["settings"]["batch_size"] = 7
    bayes.write_text(json.dumps(tampered))
    calls["n"] = 0
    assert main(["reproduce", str(bayes)]) == 2
    assert "not to its recorded config_sha256" in capsys.readouterr().err and calls["n"] == 0
