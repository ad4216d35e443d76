"""The run grid the runners share (rmroute.harness.runners.grid): run ids, --only, --resume,
one cell's failure, the run record's shared fields."""

from __future__ import annotations

import numpy as np
import pytest

from rmroute.harness.core.config import RunConfig, config_sha256
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.results import DataInfo, RouterInfo, load_run
from rmroute.harness.runners import grid

CFG = RunConfig.model_validate({"kind": "replay", "suite": "grid-test", "seeds": [0, 1], "routers": ["random"]})


def cells() -> list[grid.Cell]:
    return [grid.Cell(label, seed, scen) for scen in ("iid", "drift") for label in ("a", "b:c") for seed in (0, 1)]


def write(g: grid.Grid, cell: grid.Cell, outcome: grid.Outcome, accuracy: float = 0.5):
    return g.write(cell, outcome, router=RouterInfo(name="random", label=cell.label), reward_models=["length"],
                   data=DataInfo(name="toy", sha256="0" * 64, n=1), metrics={"accuracy": accuracy},
                   command="rmroute run cfg.yaml")


def test_run_ids_name_the_cell_and_the_config(tmp_path):
    g = grid.Grid(CFG, "cfg.yaml", tmp_path, "replay")
    sha = config_sha256(CFG)
    assert g.sha == sha
    assert grid.run_id("iid", "single:rm/x", 3, sha) == f"iid--single_rm_x--seed3--{sha[:10]}"
    assert g.run_id(grid.Cell("bayesian", 1, "drift")) == f"drift--bayesian--seed1--{sha[:10]}"
    assert g.run_id(grid.Cell("laser", 0, prefix="train")) == f"train--laser--seed0--{sha[:10]}"
    assert g.path(grid.Cell("laser", 0)) == tmp_path / "runs" / "grid-test" / f"default--laser--seed0--{sha[:10]}.json"


def test_only_keeps_the_matching_cells_and_refuses_no_match(tmp_path):
    g = grid.Grid(CFG, "cfg.yaml", tmp_path, "replay")
    everything = cells()
    assert g.select(everything, None) == everything
    assert g.select(everything, {"label": "a", "seed": 1, "scenario": "drift"}) == [grid.Cell("a", 1, "drift")]
    # keys it leaves out match every cell; keys that are not the grid's (a runner's "entry") are ignored
    assert g.select(everything, {"seed": 0, "entry": 5}) == [c for c in everything if c.seed == 0]
    with pytest.raises(ConfigError, match="no grid cell matches"):
        g.select(everything, {"label": "a", "seed": 7, "scenario": "iid"})


def test_attempt_turns_an_exception_into_a_failed_outcome():
    ok = grid.attempt(lambda x, y=1: x + y, 2, y=3)
    assert (ok.status, ok.error, ok.value) == ("ok", None, 5) and ok.wall_s >= 0

    def boom():
        raise ValueError("this router fails")

    failed = grid.attempt(boom)
    assert (failed.status, failed.error, failed.value) == ("failed", "ValueError: this router fails", None)
    with pytest.raises(KeyError):
        grid.attempt(lambda: {}["stop"], reraise=(KeyError,))


def test_records_carry_the_shared_fields_and_resume_reruns_only_unfinished_cells(tmp_path):
    g = grid.Grid(CFG, "cfg.yaml", tmp_path, "replay")
    done, failed, corrupt, missing = [grid.Cell("a", s, "iid") for s in range(4)]
    path = write(g, done, grid.attempt(lambda: None))
    assert path == g.path(done)
    rec = load_run(path)
    assert (rec.run_id, rec.kind, rec.suite, rec.scenario, rec.seed, rec.status) == (
        g.run_id(done), "replay", "grid-test", "iid", 0, "ok")
    assert rec.config_sha256 == config_sha256(CFG) and rec.config == CFG.model_dump(mode="json")
    write(g, failed, grid.Outcome("failed", "ValueError: no", None, 0.1))
    assert load_run(g.path(failed)).error == "ValueError: no"
    g.path(corrupt).write_text("{ not json")
    todo = [done, failed, corrupt, missing]
    assert g.pending(todo, resume=False) == todo
    assert g.pending(todo, resume=True) == [failed, corrupt, missing]


def test_jsonable_params_and_executors():
    assert grid.jsonable_params({"arm": 2, "prior_mean": np.zeros((3, 4))}) == {"arm": 2, "prior_mean": "array[3, 4]"}
    grid.check_executor("local")
    grid.check_executor("ray")
    with pytest.raises(ConfigError, match="executor must be 'local' or 'ray', got 'dask'"):
        grid.check_executor("dask")
