"""Paths inside configs, `rmroute validate` of every config kind, `--cache DIR`, and trained pool RMs
by name (`rmroute rm list`, ``model: trained:<name>@<pool>``).

The path rule (rmroute.harness.paths): an absolute path as is; a relative one in the folder of the
config that holds it when the file is there; else in the working directory. The expected paths are
built here from the folders the test makes, never read back from the code under test."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rmroute.harness.cli import main
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.paths import find_config_path, resolve_config_path, resolve_source_spec
from rmroute.harness.pipelines.pool import build_reward_model, list_trained, load_pool_config, trained_by_name
from rmroute.harness.core.config import PluginRef
from rmroute.harness.results import load_run
from tests.conftest import REPO
from tests.test_table_pool import write_table


# ---- the rule ---------------------------------------------------------------------------------


def test_the_config_folder_comes_first_then_the_working_directory(tmp_path, monkeypatch):
    cfg_dir, cwd = tmp_path / "project" / "configs", tmp_path / "elsewhere"
    cfg_dir.mkdir(parents=True)
    cwd.mkdir()
    config = cfg_dir / "replay.yaml"
    config.write_text("kind: replay\n")
    monkeypatch.chdir(cwd)
    # only next to the config: found there, whatever the working directory
    (cfg_dir / "pool.yaml").write_text("x")
    assert resolve_config_path("pool.yaml", "settings.pool", config).resolve() == (cfg_dir / "pool.yaml").resolve()
    # in both places: the config's folder wins
    (cwd / "pool.yaml").write_text("y")
    assert resolve_config_path("pool.yaml", "settings.pool", config).resolve() == (cfg_dir / "pool.yaml").resolve()
    # only in the working directory (how the committed configs' repository-root paths resolve)
    (cwd / "configs").mkdir()
    (cwd / "configs" / "only-here.yaml").write_text("z")
    assert resolve_config_path("configs/only-here.yaml", "settings.pool", config).resolve() == \
        (cwd / "configs" / "only-here.yaml").resolve()
    # absolute: as is; $RMROUTE_CACHE expanded
    assert resolve_config_path(str(cwd / "pool.yaml"), "k", config) == cwd / "pool.yaml"
    monkeypatch.setenv("RMROUTE_CACHE", str(cwd))
    assert resolve_config_path("$RMROUTE_CACHE/pool.yaml", "k", config) == cwd / "pool.yaml"
    # a stored config with no file (rmroute reproduce): the working directory alone
    found, tried = find_config_path("pool.yaml", Path("<config of results/runs/x.json>"))
    assert tried == [Path("pool.yaml")] and found.resolve() == (cwd / "pool.yaml").resolve()
    # a folder is looked up as a folder
    (cfg_dir / "runs").mkdir()
    assert resolve_config_path("runs", "k", config, kind="dir").resolve() == (cfg_dir / "runs").resolve()
    with pytest.raises(ConfigError):
        resolve_config_path("pool.yaml", "k", config, kind="dir")


def test_the_error_names_the_key_the_config_and_every_path_tried(tmp_path, monkeypatch):
    cfg_dir, cwd = tmp_path / "a" / "configs", tmp_path / "cwd"
    cfg_dir.mkdir(parents=True)
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = cfg_dir / "x.yaml"
    config.write_text("kind: replay\n")
    with pytest.raises(ConfigError) as err:
        resolve_config_path("pool-cpu.yaml", "settings.pool", config)
    assert str(err.value) == (f"{config}: settings.pool: 'pool-cpu.yaml' not found "
                              f"(tried {cfg_dir / 'pool-cpu.yaml'}, {cwd / 'pool-cpu.yaml'})")
    with pytest.raises(ConfigError, match=r"data\[0\]: 'pairs.jsonl' not found"):
        resolve_source_spec("file:pairs.jsonl", "data[0]", config)
    assert resolve_source_spec("suite:rmroute-pairs-v1:test", "data[0]", config) == "suite:rmroute-pairs-v1:test"


# ---- a project in another folder, run from elsewhere ---------------------------------------------


REPLAY = """kind: replay
suite: elsewhere
seeds: [0]
routers: [majority-vote, {name: single, params: {arm: m}}]
settings:
  pool: pool.yaml
  offline: offline.yaml
  batch_size: 8
"""
OFFLINE = """name: toy-offline
pool: pool.yaml
featurizer: {name: pair-encoder, params: {model: "hash:32"}}
seeds: [0]
dim: 8
epochs: 3
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """configs in tmp/project/configs that name each other (and the table) relative to themselves;
    the working directory is tmp/elsewhere; $RMROUTE_CACHE points at tmp/default-cache."""
    cfgs, cwd = tmp_path / "project" / "configs", tmp_path / "elsewhere"
    cfgs.mkdir(parents=True)
    cwd.mkdir()
    write_table(cfgs / "toy.jsonl")
    (cfgs / "pool.yaml").write_text("name: toy-pool\ntable: {file: toy.jsonl}\n")
    (cfgs / "offline.yaml").write_text(OFFLINE)
    (cfgs / "replay.yaml").write_text(REPLAY)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "default-cache"))
    return cfgs


def test_a_project_in_another_folder_validates_and_runs_with_its_own_cache(project, tmp_path, monkeypatch, capsys):
    cfgs, cache = project, tmp_path / "my-cache"
    for name in ("replay.yaml", "offline.yaml", "pool.yaml"):
        assert main(["validate", str(cfgs / name)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "ok (replay" in out and "ok (offline-router config 'toy-offline'" in out and "ok (pool 'toy-pool', 3 RM(s)" in out
    assert main(["run", str(cfgs / "replay.yaml"), "--out", str(tmp_path / "results"), "--no-leaderboard",
                 "--cache", str(cache)]) == 0, capsys.readouterr().err
    recs = [load_run(p) for p in (tmp_path / "results" / "runs" / "elsewhere").glob("*.json")]
    assert len(recs) == 2 and all(r.status == "ok" for r in recs)
    assert recs[0].data.name == "table:toy" and recs[0].reward_models == ["m", "c", "j"]
    # the offline bundle (bundle_dir defaults to $RMROUTE_CACHE/offline/<...>) went under --cache ...
    assert (cache / "offline" / "offline" / "seed-0" / "bundle.json").is_file()
    # ... not under the cache the environment names, and the variable is as it was after the command
    assert not (tmp_path / "default-cache" / "offline").exists()
    assert os.environ["RMROUTE_CACHE"] == str(tmp_path / "default-cache")
    # the stored config has no file: reproduce resolves `pool.yaml` in the working directory alone
    run_file = next((tmp_path / "results" / "runs" / "elsewhere").glob("*majority*.json"))
    assert main(["reproduce", str(run_file)]) != 0
    assert "'pool.yaml' not found" in capsys.readouterr().err
    monkeypatch.chdir(cfgs)  # ... so from the configs' folder, the paths as written resolve and it reproduces
    assert main(["reproduce", str(run_file)]) == 0, capsys.readouterr().err


def test_validate_and_run_agree_on_a_pool_that_is_not_there(project, tmp_path, capsys):
    cfgs = project
    (cfgs / "replay.yaml").write_text(REPLAY.replace("pool: pool.yaml", "pool: configs/pool.yaml"))
    assert main(["validate", str(cfgs / "replay.yaml")]) != 0
    err = capsys.readouterr().err
    assert f"{cfgs / 'replay.yaml'}:6: settings.pool: 'configs/pool.yaml' not found" in err
    assert f"tried {cfgs / 'configs' / 'pool.yaml'}, {tmp_path / 'elsewhere' / 'configs' / 'pool.yaml'}" in err
    assert main(["run", str(cfgs / "replay.yaml"), "--out", str(tmp_path / "r"), "--no-leaderboard"]) != 0
    assert "settings.pool: 'configs/pool.yaml' not found" in capsys.readouterr().err
    # the offline config's own pool, and a pool's table, are named the same way
    (cfgs / "replay.yaml").write_text(REPLAY)
    (cfgs / "pool.yaml").write_text("name: toy-pool\ntable: {file: gone.jsonl}\n")
    assert main(["validate", str(cfgs / "pool.yaml")]) != 0
    err = capsys.readouterr().err
    assert "table: 'gone.jsonl' not found" in err and str(cfgs / "gone.jsonl") in err


def test_a_group_names_its_members_relative_to_itself(project, tmp_path, capsys):
    cfgs = project
    (cfgs / "group.yaml").write_text("kind: group\nconfigs: [replay.yaml]\n")
    assert main(["validate", str(cfgs / "group.yaml")]) == 0
    assert f"{cfgs / 'replay.yaml'}: ok (replay" in capsys.readouterr().out
    (cfgs / "group.yaml").write_text("kind: group\nconfigs: [replay.yaml, nowhere.yaml]\n")
    assert main(["validate", str(cfgs / "group.yaml")]) != 0
    assert f"configs[1]: 'nowhere.yaml' not found (tried {cfgs / 'nowhere.yaml'}" in capsys.readouterr().err


# ---- validate: every kind ----------------------------------------------------------------------


def test_validate_tells_every_shipped_config_kind(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    want = {"configs/quickstart.yaml": "ok (replay", "configs/real-rms.yaml": "configs/real/rewardmath.yaml: ok (replay",
            "configs/pool-cpu.yaml": "ok (pool 'cpu-pool-v1', 6 RM(s)", "configs/real/pool-rewardmath.yaml": "ok (pool 'rewardmath'",
            "configs/offline-cpu.yaml": "ok (offline-router config 'offline-cpu-v1', pool configs/pool-cpu.yaml",
            "configs/rm-train-example.yaml": "ok (rm-train config", "configs/serve-rm-length.yaml": "ok (serve-rm config, reward_model 'length'"}
    for path, text in want.items():
        assert main(["validate", path]) == 0, capsys.readouterr().err
        assert text in capsys.readouterr().out, path


def test_validate_checks_what_each_kind_refers_to(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "c"
    d.mkdir()
    (d / "train.yaml").write_text("output_dir: out\ndata: file:pairs.jsonl\n")
    assert main(["validate", str(d / "train.yaml")]) != 0
    assert f"data[0]: 'pairs.jsonl' not found (tried {d / 'pairs.jsonl'}" in capsys.readouterr().err
    (d / "pairs.jsonl").write_text("")
    assert main(["validate", str(d / "train.yaml")]) == 0
    (d / "pool.yaml").write_text("name: p\nreward_models: [length, {name: no-such-rm}]\n")
    assert main(["validate", str(d / "pool.yaml")]) != 0
    assert "reward_models[1].name" in capsys.readouterr().err
    (d / "offline.yaml").write_text("pool: missing-pool.yaml\n")
    assert main(["validate", str(d / "offline.yaml")]) != 0
    assert "pool: 'missing-pool.yaml' not found" in capsys.readouterr().err
    (d / "serve.yaml").write_text("reward_model: {name: length, params: {bogus: 1}}\n")
    assert main(["validate", str(d / "serve.yaml")]) != 0
    assert "reward_model.params" in capsys.readouterr().err
    (d / "what.yaml").write_text("name: x\n")
    assert main(["validate", str(d / "what.yaml")]) != 0
    err = capsys.readouterr().err
    assert "not a config rmroute knows (keys: name)" in err and "`kind:`" in err and "`table:`" in err


# ---- --cache ----------------------------------------------------------------------------------


def test_score_with_cache_writes_its_scores_there(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "default"))
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "1", "domain": "chat", "prompt": "p", "response_a": "long answer",
                                                      "response_b": "x", "label": "a"}) + "\n")
    (tmp_path / "score.yaml").write_text("kind: replay\nsuite: s\nreward_models: [length]\ndata: {test: 'file:"
                                         f"{tmp_path / 'pairs.jsonl'}'}}\n")
    assert main(["score", str(tmp_path / "score.yaml"), "--cache", str(tmp_path / "mine"), "--json"]) == 0
    assert list((tmp_path / "mine" / "scores").glob("part-*.parquet"))
    assert not (tmp_path / "default").exists() and os.environ["RMROUTE_CACHE"] == str(tmp_path / "default")
    for command in (["run"], ["score"], ["pool", "build"], ["offline", "train"], ["offline", "eval"], ["rm", "list"]):
        assert main([*command, "--help"]) == 0
        assert "--cache" in capsys.readouterr().out, command


# ---- trained RMs by name -------------------------------------------------------------------------


def _fake_trained(root: Path, pool: str, name: str, key: str, steps: int, losses: list, val: float | None, age_s: float) -> Path:
    """A folder as a pool build leaves it: rms/<pool>/<name>-<key>/rmroute_train.json, finished age_s ago."""
    folder = root / "rms" / pool / f"{name}-{key}"
    folder.mkdir(parents=True)
    record = folder / "rmroute_train.json"
    record.write_text(json.dumps({"kind": "rmroute-rm-train", "report": {
        "steps": steps, "train_loss": [[i * 10, x] for i, x in enumerate(losses, 1)], "best_val_accuracy": val}}))
    stamp = time.time() - age_s
    os.utime(record, (stamp, stamp))
    return folder


@pytest.fixture
def trained_cache(tmp_path):
    root = tmp_path / "cache"
    old = _fake_trained(root, "cpu-pool-v1", "minilm-chat", "a" * 12, 60, [0.69, 0.4], 0.78, age_s=7200)
    new = _fake_trained(root, "cpu-pool-v1", "minilm-chat", "b" * 12, 45, [0.7, 0.5, 0.31], 0.83, age_s=60)
    other = _fake_trained(root, "gpu-pool", "big-rm", "c" * 12, 10, [], None, age_s=100)
    (root / "rms" / "cpu-pool-v1" / "half-written-dddddddddddd").mkdir()  # no record: not a trained RM
    (root / "rms" / "cpu-pool-v1" / "notes").mkdir()
    return root, old, new, other


def test_rm_list_shows_each_trained_rm_with_its_summary(trained_cache, capsys):
    root, old, new, other = trained_cache
    assert main(["rm", "list", "--cache", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["pool"], r["name"], r["folder"]) for r in rows] == [
        ("cpu-pool-v1", "minilm-chat", str(new)), ("cpu-pool-v1", "minilm-chat", str(old)), ("gpu-pool", "big-rm", str(other))]
    assert [(r["steps"], r["final_loss"], r["val_accuracy"]) for r in rows] == [(45, 0.31, 0.83), (60, 0.4, 0.78), (10, None, None)]
    assert rows[0]["ref"] == "trained:minilm-chat@cpu-pool-v1"
    assert rows[0]["when"] == pytest.approx((new / "rmroute_train.json").stat().st_mtime)
    assert main(["rm", "list", "--cache", str(root)]) == 0
    text = capsys.readouterr().out
    assert "minilm-chat (older)" in text and str(new) in text and "0.3100" in text
    assert main(["rm", "list", "--cache", str(root / "empty")]) == 0
    assert "no trained RMs under" in capsys.readouterr().out


def test_a_pool_refers_to_an_rm_another_pool_trained_by_name(trained_cache, tmp_path, monkeypatch, capsys):
    root, _, new, _ = trained_cache
    monkeypatch.setenv("RMROUTE_CACHE", str(root))
    assert trained_by_name("minilm-chat", "cpu-pool-v1") == new  # the newest of that name
    rm = build_reward_model(PluginRef(name="hf-seqcls", label="chat", params={"model": "trained:minilm-chat@cpu-pool-v1"}))
    assert rm.name == "chat" and Path(rm.model_id) == new
    with pytest.raises(ConfigError) as err:
        trained_by_name("minilm-math", "cpu-pool-v1")
    assert "trained RMs there: minilm-chat@cpu-pool-v1, big-rm@gpu-pool" in str(err.value)
    # in a pool config: no `train` entry needed (the plain trained:<name> still needs one)
    pool = tmp_path / "mine.yaml"
    pool.write_text("name: mine\nreward_models:\n  - {name: hf-seqcls, label: chat, params: {model: 'trained:minilm-chat@cpu-pool-v1'}}\n"
                    "  - length\n")
    assert [r.label or r.name for r in load_pool_config(pool).reward_models] == ["chat", "length"]
    assert main(["validate", str(pool)]) == 0
    pool.write_text("name: mine\nreward_models:\n  - {name: hf-seqcls, params: {model: 'trained:minilm-math@cpu-pool-v1'}}\n")
    assert main(["validate", str(pool)]) != 0
    assert "reward_models[0].params.model: trained:minilm-math@cpu-pool-v1: no RM 'minilm-math'" in capsys.readouterr().err
    pool.write_text("name: mine\nreward_models:\n  - {name: hf-seqcls, params: {model: 'trained:minilm-math'}}\n")
    with pytest.raises(ConfigError, match="names no entry of `train`"):
        load_pool_config(pool)
    assert list_trained(tmp_path / "nothing") == []
