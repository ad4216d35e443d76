"""Results store: round trip, atomic writes (also under a real crash), corrupt files, leaderboard."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest

from rmroute.harness import results as R
from rmroute.harness.core.errors import ResultsError
from rmroute.harness.board.build import build
from tests.conftest import REPO


def record(seed=0, suite="demo", router="random", accuracy=0.5, **extra):
    return R.RunRecord(
        run_id=R.new_run_id(f"s{seed}"), kind="replay", suite=suite,
        router=R.RouterInfo(name=router), reward_models=["length"],
        data=R.DataInfo(name="toy", sha256="a" * 64, n=10), seed=seed,
        metrics={"accuracy": accuracy, "nan_metric": float("nan")}, wall_s=1.5,
        config={"kind": "replay"}, config_sha256="c" * 64, code=R.code_version(),
        packages=R.package_versions(), command="rmroute run cfg.yaml", created=R.now_iso(), **extra,
    )


def test_round_trip_and_nan_as_null(tmp_path):
    rec = record()
    path = R.write_run(rec, tmp_path)
    assert path == tmp_path / "runs" / "demo" / f"{rec.run_id}.json"
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == R.SCHEMA_VERSION == 2 and raw["metrics"]["nan_metric"] is None
    back = R.load_run(path)
    assert back.run_id == rec.run_id and back.metrics["accuracy"] == 0.5
    assert back.packages["python"] == sys.version.split()[0]


def test_record_fields_are_complete():
    rec = record()
    assert rec.code.git_sha is None or len(rec.code.git_sha) == 40
    for field in ("schema_version", "run_id", "kind", "suite", "router", "reward_models", "data", "seed",
                  "metrics", "per_domain", "rm_calls", "wall_s", "config", "config_sha256", "code",
                  "packages", "command"):
        assert field in rec.model_dump()


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("old contents")

    def crash(fd):
        raise OSError("disk vanished")

    monkeypatch.setattr(R.os, "fsync", crash)
    with pytest.raises(OSError, match="disk vanished"):
        R.atomic_write_text(target, "x" * 100_000)
    assert target.read_text() == "old contents"  # readers still see the whole old file
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_process_killed_mid_write_leaves_no_target(tmp_path):
    # A real crash: the process dies (os._exit) after writing bytes but before the rename.
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from rmroute.harness import results as R
        R.os.fsync = lambda fd: os._exit(17)
        R.atomic_write_text(__import__('pathlib').Path({str(tmp_path / 'runs' / 'demo' / 'run.json')!r}), "x" * 10_000)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 17, out.stderr
    folder = tmp_path / "runs" / "demo"
    assert not (folder / "run.json").exists()
    leftovers = list(folder.iterdir())
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the temp file must not even trigger a warning
        runs, skipped = R.load_runs(tmp_path)
    assert runs == [] and skipped == []


def test_corrupt_and_foreign_files_are_skipped(tmp_path):
    good = R.write_run(record(), tmp_path)
    folder = good.parent
    (folder / "truncated.json").write_text(good.read_text()[: len(good.read_text()) // 2])
    (folder / "foreign.json").write_text(json.dumps({"hello": "world"}))
    (folder / "future.json").write_text(json.dumps({**json.loads(good.read_text()), "schema_version": 99}))
    bad_field = {**json.loads(good.read_text()), "seed": "zero"}
    (folder / "badfield.json").write_text(json.dumps(bad_field))
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(R.ResultsWarning) as caught:
        runs, skipped = R.load_runs(tmp_path)
    assert [r.run_id for r in runs] == [json.loads(good.read_text())["run_id"]]
    reasons = {p.name: why for p, why in skipped}
    assert set(reasons) == {"truncated.json", "foreign.json", "future.json", "badfield.json", "binary.json"}
    assert "not readable JSON" in reasons["truncated.json"]
    assert "no schema_version" in reasons["foreign.json"]
    assert "schema_version 99 is not supported" in reasons["future.json"]
    assert "seed" in reasons["badfield.json"]
    assert all(str(folder) in str(w.message) for w in caught)
    with pytest.raises(ResultsError, match="truncated.json"):
        R.load_run(folder / "truncated.json")


def test_leaderboard_groups_by_suite_and_config(tmp_path):
    for seed, acc in [(0, 0.6), (1, 0.8)]:
        R.write_run(record(seed=seed, accuracy=acc), tmp_path)
    R.write_run(record(seed=0, router="single", accuracy=0.4), tmp_path)
    other = record(seed=0, accuracy=0.9)
    other.config_sha256 = "d" * 64
    R.write_run(other, tmp_path)
    (tmp_path / "runs" / "demo" / "junk.json").write_text("{")
    with pytest.warns(R.ResultsWarning):
        path, n_runs, n_skipped = build(tmp_path)
    front = path.read_text()
    assert (n_runs, n_skipped) == (4, 1)
    assert "config `cccccccccccc`" in front and "config `dddddddddddd`" in front  # the front page lists both groups
    text = "\n".join(p.read_text() for p in sorted((tmp_path / "board").glob("*.md")))  # their track pages
    assert text.count("config_sha256 `cccccccc") == 1 and text.count("config_sha256 `dddddddd") == 1
    row = next(line for line in text.splitlines() if line.startswith("| random | 2 |"))
    assert "0.7 ± 0.14" in row  # mean and sample std of 0.6 and 0.8, computed by hand
    assert "nan_metric" not in text  # a metric that is null in the runs is not a column


def test_code_version_is_dirty_for_code_not_for_results(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "LEADERBOARD.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    assert R.code_version(tmp_path).dirty is False
    (tmp_path / "results" / "LEADERBOARD.md").write_text("rebuilt by a run\n")  # what runs write
    assert R.code_version(tmp_path).dirty is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert R.code_version(tmp_path).dirty is True
