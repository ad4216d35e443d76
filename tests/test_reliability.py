"""Nothing silently wrong: broken RMs fail runs, writes stay in the output folder, reproduce says
which input differs."""

from __future__ import annotations

import numpy as np
import pytest

from rmroute.harness.cli import main
from rmroute.harness.core.errors import ResultsError, ScoreError
from rmroute.harness.pipelines.pool import Pool, PoolConfig, check_abstention
from rmroute.harness.results import CodeVersion, DataInfo, RouterInfo, RunRecord, confined, write_run
from rmroute.harness.core.types import PreferencePair


def record(**kw) -> RunRecord:
    base = dict(run_id="iid--x--seed0--0123456789", kind="replay", suite="s", router=RouterInfo(name="x"),
                reward_models=["a"], data=DataInfo(name="d", sha256="0" * 64, n=1), seed=0, metrics={}, wall_s=0.0,
                config={}, config_sha256="0123456789" + "0" * 54, code=CodeVersion(git_sha=None, dirty=None),
                packages={}, command="", created="2026-01-01T00:00:00+00:00")
    return RunRecord(**{**base, **kw})


@pytest.mark.parametrize("field,value", [("suite", "../../x"), ("suite", ".."), ("run_id", "../../../PWNED"),
                                         ("run_id", "a/b"), ("suite", "a\0b")])
def test_write_run_never_leaves_the_output_folder(tmp_path, field, value):
    out = tmp_path / "out"
    with pytest.raises(ResultsError, match="cannot be a file name|outside the output folder"):
        write_run(record(**{field: value}), out)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


def test_confined_resolves_symlinks(tmp_path):
    (tmp_path / "out" / "runs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "runs" / "s").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ResultsError, match="outside the output folder"):
        confined(tmp_path / "out" / "runs", tmp_path / "out" / "runs" / "s" / "x.json")
    assert confined(tmp_path / "out", tmp_path / "out" / "runs" / "t" / "x.json").name == "x.json"


def test_leaderboard_of_a_missing_folder_is_an_error_and_creates_nothing(tmp_path, capsys):
    target = tmp_path / "nonexistent" / "x"
    assert main(["leaderboard", str(target)]) == 2
    assert "no runs/ folder" in capsys.readouterr().err
    assert not (tmp_path / "nonexistent").exists()


def test_abstention_rule_against_a_direct_count():
    rates = {"verifier": {"offline": 0.60, "online": 0.65, "test": 0.62},  # abstains a lot, as it always did
             "drifted": {"offline": 0.02, "online": 0.02, "test": 0.30},  # far more on test than offline
             "dead": {"offline": 1.0, "online": 1.0, "test": 1.0}}  # every item
    problems = check_abstention(rates, margin=0.1)
    assert len(problems) == 4
    assert any("'drifted' abstains on 30.0% of the test split" in p for p in problems)
    assert sum("'dead'" in p and "every pair" in p for p in problems) == 3
    assert not any("'verifier'" in p for p in problems)
    capped = check_abstention(rates, max_share=0.5)
    assert sorted({p.split("'")[1] for p in capped}) == ["dead", "verifier"]


def _pool(margins_test: np.ndarray) -> Pool:
    def pairs(n, tag):
        return [PreferencePair(id=f"{tag}{i}", domain="d", prompt="p", response_a="a", response_b="b", label="a")
                for i in range(n)]

    cfg = PoolConfig(name="p", reward_models=["length", "length"])
    n = margins_test.shape[0]
    pool = Pool(config=cfg, names=["good", "flaky"], splits={s: pairs(n, s) for s in ("offline", "online", "test")})
    ok = np.ones((n, 2))
    pool.margins = {"offline": ok, "online": ok, "test": margins_test}
    pool.costs = [1.0, 1.0]
    return pool


def test_pool_abstention_rates_count_nan_margins():
    m = np.ones((8, 2))
    m[:3, 1] = np.nan
    m[7, 0] = np.nan
    rates = _pool(m).abstention_rates()
    assert rates["good"]["test"] == 1 / 8 and rates["flaky"]["test"] == 3 / 8 and rates["flaky"]["offline"] == 0.0


def test_replay_fails_naming_the_rm_that_abstains_on_the_stream(monkeypatch):
    """The old failure: a broken RM abstained everywhere inside runs marked ok."""
    import rmroute.harness.runners.replay as replay

    m = np.ones((10, 2))
    m[:, 1] = np.nan
    monkeypatch.setattr(replay, "load_pool_config", lambda path: None)
    monkeypatch.setattr(replay, "build_pool", lambda cfg, log=print: _pool(m))
    settings = replay.ReplaySettings(pool="pool.yaml")
    with pytest.raises(ScoreError, match=r"RM 'flaky' abstains on 100.0% of the test split \(every pair\)"):
        replay.build_data(None, settings)
