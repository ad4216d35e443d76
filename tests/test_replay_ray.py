"""`--executor ray`: the grid as Ray tasks on a local Ray with 2 CPUs gives exactly the local results."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rmroute.harness.runners.replay as replay
from rmroute.harness.cli import main
from tests.test_replay import make_split, synthetic_prepared
from tests.test_replay_runner import POOL

ray = pytest.importorskip("ray", reason="Ray is the `distributed` extra; `make test` installs it")

CONFIG = """\
kind: replay
suite: synthetic
seeds: [0, 1]
routers:
  - {name: single, params: {arm: all}}
  - bayesian
  - bayesian-adaptive
  - {name: laser, params: {mode: per_item}}
  - mean-ensemble
featurizer: pair-encoder
settings:
  pool: POOL
  scenarios:
    iid: {}
    drift: {drift: {arm: rm-chat}}
"""


def test_ray_executor_matches_local(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = replay.ReplayData(names=["rm-math", "rm-chat", "rm-code"], costs=np.ones(3),
                             offline=make_split(100, rng), online=make_split(300, rng), test=make_split(200, rng))
    monkeypatch.setattr(replay, "build_data", lambda cfg, settings, log=print: synthetic_prepared(data))
    cfg = tmp_path / "replay.yaml"
    (tmp_path / "pool.yaml").write_text(POOL)
    cfg.write_text(CONFIG.replace("POOL", str(tmp_path / "pool.yaml")))
    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert main(["run", str(cfg), "--out", str(local), "--no-leaderboard"]) == 0
    assert main(["run", str(cfg), "--out", str(distributed), "--no-leaderboard", "--executor", "ray"]) == 0
    files = sorted(p.name for p in (local / "runs" / "synthetic").glob("*.json"))
    assert len(files) == (3 + 4) * 2 * 2
    assert files == sorted(p.name for p in (distributed / "runs" / "synthetic").glob("*.json"))
    for name in files:
        a = json.loads((local / "runs" / "synthetic" / name).read_text())
        b = json.loads((distributed / "runs" / "synthetic" / name).read_text())
        assert a["status"] == b["status"] == "ok"
        assert a["metrics"] == b["metrics"] and a["per_domain"] == b["per_domain"], name
        assert a["extra"]["test_outcomes"] == b["extra"]["test_outcomes"], name
