"""The pool builder and its report, on a tiny suite where each RM's record is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rmroute.harness.cli import main
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.plugins import build_registry, reset_registry
from rmroute.harness.pipelines.pool import build_pool, load_pool_config
from rmroute.harness.pipelines.pool_report import pool_report, render_markdown
from tests.conftest import FIXTURE_PLUGINS

POOL = """\
name: tiny-pool
benchmark: {suite: tiny-suite, seed: 0}
reward_models:
  - length
  - lexical-overlap
  - {name: length, label: length-log, params: {log: true}}
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    import fixture_suite

    reset_registry(build_registry(extra_plugins=[("tiny", fixture_suite)]))
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "pool-tiny.yaml"
    path.write_text(POOL)
    return path


def test_build_and_report(tiny):
    pool = build_pool(load_pool_config(tiny), show_progress=False, log=lambda m: None)
    assert pool.names == ["length", "lexical-overlap", "length-log"] and pool.costs == [0.0, 0.0, 0.0]
    assert set(pool.margins) == {"offline", "online", "test"} and pool.margins["test"].shape == (30, 3)
    rep = pool_report(pool)
    # by construction: length is right on 'long' and wrong on 'echo'; overlap the other way round
    assert rep["per_domain"]["long"]["length"]["acc"] == 1.0 and rep["per_domain"]["echo"]["length"]["acc"] == 0.0
    assert rep["per_domain"]["echo"]["lexical-overlap"]["acc"] == 1.0
    # 'long': 'alpha beta gamma delta' vs 'alpha' share no prompt word: overlap ties, and a tie scores 0.5
    assert rep["per_domain"]["long"]["lexical-overlap"]["acc"] == 0.5
    assert rep["tie_rate"] == {"length": 0.0, "lexical-overlap": 0.5, "length-log": 0.0}  # the 15 'long' of 30
    assert rep["abstain_rate"] == {"length": 0.0, "lexical-overlap": 0.0, "length-log": 0.0}
    # overall: length 15 right of 30 = 0.5; overlap (15 x 1 + 15 x 0.5) / 30 = 0.75, the best single RM
    h = rep["headroom"]
    assert h["domain_best_arms"] == {"echo": "lexical-overlap", "long": "length"}
    assert h["best_single"] == "lexical-overlap" and h["best_single_test"]["acc"] == 0.75
    assert h["domain_best_test"]["acc"] == 1.0 and h["gain"] == 0.25
    assert rep["oracle"]["test"] == 1.0  # the strict rule: length is right on 'long', overlap on 'echo'
    md = render_markdown(rep)
    assert "+25.0 points" in md and "| long (n=15) |" in md and "a tie or an abstention scores 0.5" in md
    assert "| lexical-overlap | 50.0 | 0.0 |" in md
    # scored once: a second build scores nothing
    again = build_pool(load_pool_config(tiny), show_progress=False, log=lambda m: None)
    assert all(r.scored == 0 for r in again.score_reports)
    np.testing.assert_array_equal(again.margins["test"], pool.margins["test"])


def test_cli_pool_build_writes_the_report(tiny, tmp_path):
    out = tmp_path / "report"
    assert main(["pool", "build", str(tiny), "--out", str(out)]) == 0
    data = json.loads((out / "tiny-pool.json").read_text())
    assert data["names"] == ["length", "lexical-overlap", "length-log"] and (out / "tiny-pool.md").is_file()


def test_trained_reference_must_name_a_train_entry(tmp_path):
    path = tmp_path / "pool-bad.yaml"
    path.write_text("name: p\nreward_models:\n  - {name: hf-seqcls, params: {model: 'trained:nope'}}\n")
    with pytest.raises(ConfigError, match="'trained:nope' names no entry of `train`"):
        load_pool_config(path)


def test_one_rm_builder_resolves_labels_and_trained_models(tmp_path):
    """build_reward_model: the label names the RM; `trained:<name>` becomes that entry's folder only
    when the trained folders are given (a pool), and an unknown name is refused."""
    from rmroute.harness.core.config import PluginRef, RunConfig
    from rmroute.harness.pipelines.pool import build_reward_model, build_reward_models
    from rmroute.harness.pipelines.scoring import reward_models_to_score

    plain, labelled = build_reward_models([PluginRef(name="length"), PluginRef(name="length", label="len-2")])
    assert (plain.name, labelled.name) == ("length", "len-2")
    trained = {"minilm-math": tmp_path / "rms" / "minilm-math-abc"}
    ref = PluginRef(name="hf-seqcls", label="math", params={"model": "trained:minilm-math", "batch_size": 4})
    rm = build_reward_model(ref, trained)
    assert (rm.name, rm.model_id, rm.batch_size) == ("math", str(trained["minilm-math"]), 4)
    assert build_reward_model(ref).model_id == "trained:minilm-math"  # no pool: passed on as written
    with pytest.raises(ConfigError, match="'trained:minilm-math' names no `train` entry"):
        build_reward_model(ref, {})
    # `rmroute score`: an RM that does not build is reported by its label; the others go on
    cfg = RunConfig.model_validate({"kind": "replay", "suite": "s", "routers": ["random"], "reward_models": [
        "length", {"name": "hf-seqcls", "label": "broken", "params": {"model": "m", "batch_size": 0}}]})
    rms, failed = reward_models_to_score(cfg)
    assert [r.name for r in rms] == ["length"]
    assert failed == [("broken", "could not be built: ValueError: hf-seqcls: batch_size must be >= 1 and "
                                 "max_length >= 8, got 0, 1024")]


def test_a_trained_rm_that_did_not_learn_stops_the_build(tiny, tmp_path):
    """A `train` entry with a learning rate of 1e-9: the build names the RM, the config line and the
    evidence; `require_learning: false` in that entry keeps the RM and the build goes on."""
    from rmroute.harness.pipelines.rm_train import NotLearnedError
    from tests.tiny_models import build_tiny_bert

    base = build_tiny_bert(tmp_path / "bert", seed=0)
    entry = (f"  dead: {{base_model: {base}, learning_rate: 1.0e-9, max_steps: 3, eval_every: 1, batch_size: 2, "
             "max_length: 32, eval_fraction: 0.5, threads: 1, progress: falseEXTRA}\n")
    pool = "train:\n" + entry + POOL + "  - {name: hf-seqcls, label: dead, params: {model: 'trained:dead', max_length: 32}}\n"
    tiny.write_text(pool.replace("EXTRA", ""))
    with pytest.raises(NotLearnedError) as err:
        build_pool(load_pool_config(tiny), show_progress=False, log=lambda m: None)
    msg = str(err.value)
    assert msg.startswith(f"{tiny}:2: train.dead: RM 'dead': the RM trained into ") and "did not learn" in msg
    assert "training loss never left ln 2" in msg and "`require_learning: false`" in msg
    tiny.write_text(pool.replace("EXTRA", ", require_learning: false"))
    built = build_pool(load_pool_config(tiny), show_progress=False, log=lambda m: None)
    assert built.names[-1] == "dead" and built.margins["test"].shape == (30, 4)


def test_a_train_entry_is_checked_when_the_config_loads(tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text("name: p\ntrain:\n  rm: {domain_mix: {math: 1}, require_learnin: false}\nreward_models: [length]\n")
    with pytest.raises(ConfigError, match=r"pool\.yaml:3: train\.rm: unknown key 'require_learnin'; allowed keys: .*require_learning"):
        load_pool_config(path)
