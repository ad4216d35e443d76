"""Every evaluation suite end to end on CPU, offline: configs/eval-tiny.yaml (a tiny policy built from
config, a tiny hf-local judge, a few items each) through `rmroute run`, into run JSONs and the
policy table."""

from __future__ import annotations

import json

from rmroute.harness.cli import main
from tests.conftest import REPO

SUITES = ("gsm8k", "mmlu", "alpaca-eval", "arena-hard", "mt-bench")


def test_eval_tiny_config_end_to_end(tmp_path):
    out = tmp_path / "results"
    assert main(["run", str(REPO / "configs" / "eval-tiny.yaml"), "--out", str(out)]) == 0
    runs = {}
    for path in (out / "runs" / "eval-tiny").glob("*.json"):
        rec = json.loads(path.read_text())
        runs[rec["extra"]["eval_suite"]] = rec
    assert set(runs) == set(SUITES)
    for name, rec in runs.items():
        assert rec["status"] == "ok", (name, rec["error"])
        assert rec["kind"] == "evaluate" and rec["router"]["label"] == "tiny-base"
        assert rec["extra"]["flags"]["limit"] == rec["config"]["settings"]["suites"][SUITES.index(name)]["params"]["limit"]
        samples = out / "runs" / "eval-tiny" / rec["extra"]["samples"]
        lines = [json.loads(x) for x in samples.read_text().splitlines()]
        assert lines, name
        for key in rec["extra"]["headline"]:
            assert key in rec["metrics"], (name, key)
    assert runs["mmlu"]["data"]["n"] == 4  # 2 items x 2 subjects
    assert 0.0 <= runs["gsm8k"]["metrics"]["acc"] <= 1.0 and runs["gsm8k"]["data"]["n"] == 3
    assert runs["alpaca-eval"]["extra"]["flags"]["lc_without_gamed_baselines"] is True
    assert runs["alpaca-eval"]["extra"]["judge"] == "hf-local:tiny" and runs["gsm8k"]["extra"]["judge"] is None
    assert 1.0 <= runs["mt-bench"]["metrics"]["score"] <= 10.0
    assert runs["arena-hard"]["extra"]["judge_stats"]  # the judge's counters for this suite alone

    board = (out / "checks.md").read_text()  # tiny random policies: a pipeline check, off the front page
    header = next(line for line in board.splitlines() if line.startswith("| policy |"))
    for col in ("gsm8k acc", "mmlu acc", "alpaca-eval lc_win_rate", "alpaca-eval win_rate", "arena-hard score", "mt-bench score"):
        assert col in header
    row = next(line for line in board.splitlines() if line.startswith("| tiny-base |"))
    assert row.count("–") == 0 and "‡" in row and "§" in row
