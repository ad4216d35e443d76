"""The evaluate runner with fixture suites: run files, failures kept apart, resume, train-run policies,
the policy leaderboard and --dry-run. The real suites end to end are in tests/test_evaluate_e2e.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rmroute.harness.cli import main
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.plugins import build_registry, reset_registry
from tests.conftest import FIXTURE_PLUGINS

CONFIG = """\
kind: evaluate
suite: policy-eval
seeds: [0, 1]
settings:
  device: cpu
  policies:
    - {label: base-tiny, policy: {model: tiny}}
  suites:
    - {name: fixture-count, params: {limit: 3}}
    - fixture-judged
    - fixture-fail
  generator: {name: fixture-echo}
  judge: fixture-judge
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    import fixture_eval

    reset_registry(build_registry(extra_plugins=[("fixture-eval", fixture_eval)]))
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(CONFIG)
    return cfg, tmp_path / "results"


def _records(out):
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "runs" / "policy-eval").glob("*.json"))}


def test_runs_failures_resume_and_policy_table(setup, capsys):
    cfg, out = setup
    assert main(["run", str(cfg), "--out", str(out)]) == 2  # the failing suite's cells make the exit non-zero
    assert "2 of 6 run(s) failed" in capsys.readouterr().err
    recs = _records(out)
    assert len(recs) == 3 * 2  # 3 suites x 2 seeds, the failing suite included
    by_suite = {(r["extra"]["eval_suite"], r["seed"]): r for r in recs.values()}
    # fixture-count on "what?", "no", "why?!" (limit 3): the echo generator returns the last 3
    # characters reversed: "?ta", "on", "!?y" -> 2 of 3 contain "?"
    count = by_suite[("fixture-count", 0)]
    assert count["status"] == "ok" and count["kind"] == "evaluate"
    assert count["metrics"] == {"share": pytest.approx(2 / 3), "n_hits": 2.0}
    assert count["data"]["n"] == 3 and count["extra"]["headline"] == ["share"]
    assert count["extra"]["policy"]["model"] == "tiny" and count["router"]["label"] == "base-tiny"
    samples = out / "runs" / "policy-eval" / count["extra"]["samples"]
    assert samples.is_file() and len(samples.read_text().splitlines()) == 3
    # fixture-judged: outputs "?ta", "on", "!?y", "?ko" against "x": longer in every case -> 1.0
    judged = by_suite[("fixture-judged", 1)]
    assert judged["metrics"]["win_rate"] == 1.0
    assert judged["extra"]["judge"] == "fixture-judge" and judged["extra"]["judge_stats"] == {"requests": 4}
    failed = by_suite[("fixture-fail", 0)]
    assert failed["status"] == "failed" and "fixture-fail/1" in failed["error"] and failed["metrics"] == {}

    # an evaluate config without `board: result` is a pipeline check: its policy table is on checks.md
    front = (out / "LEADERBOARD.md").read_text()
    assert "No policy has been trained and evaluated as a result yet" in front and "base-tiny" not in front
    assert "Skipped files" not in front  # *.samples/ folders are not scanned
    board = (out / "checks.md").read_text()
    assert "## Policies" in board
    row = next(line for line in board.splitlines() if line.startswith("| base-tiny"))
    assert "0.6667 [0.667, 0.667]" in row  # two seeds, identical values: bootstrap interval collapses
    assert "| 1 [1, 1]‡ |" in row  # the flag marker next to the win rate
    assert "Failed evaluation runs (2)" in board and "fixture-fail/1" in board
    html = (out / "checks.html").read_text()
    assert "<table" in html and "base-tiny" in html

    # resume: ok runs are kept (files untouched), the failed suite runs again
    mtimes = {p: (out / "runs" / "policy-eval" / p).stat().st_mtime_ns for p in recs}
    assert main(["run", str(cfg), "--out", str(out), "--resume"]) == 2
    after = {p: (out / "runs" / "policy-eval" / p).stat().st_mtime_ns for p in recs}
    changed = {p for p in recs if after[p] != mtimes[p]}
    assert changed == {p for p, r in recs.items() if r["status"] == "failed"}


def test_a_judged_suite_without_a_judge_fails_alone(setup):
    cfg, out = setup
    cfg.write_text(CONFIG.replace("  judge: fixture-judge\n", "").replace("seeds: [0, 1]", "seeds: [0]"))
    assert main(["run", str(cfg), "--out", str(out), "--no-leaderboard"]) == 2
    recs = {r["extra"]["eval_suite"]: r for r in _records(out).values()}
    assert recs["fixture-count"]["status"] == "ok"
    assert recs["fixture-judged"]["status"] == "failed" and "needs a judge" in recs["fixture-judged"]["error"]
    # run again with a judge: the newer ok run supersedes the failure on the policy table
    board = out / "checks.md"
    assert main(["leaderboard", str(out)]) == 0 and "needs a judge" in board.read_text()
    cfg.write_text(CONFIG.replace("seeds: [0, 1]", "seeds: [0]").replace("    - fixture-fail\n", ""))
    time.sleep(1.1)  # `created` has one-second resolution: the rerun must be newer
    assert main(["run", str(cfg), "--out", str(out)]) == 0  # fixture-fail is not in this config
    text = board.read_text()  # fixture-fail (first config only) is still the newest of its kind
    assert "needs a judge" not in text and "Failed evaluation runs (1)" in text and "fixture-fail/1" in text


def test_a_result_config_puts_its_policies_on_the_front_page(setup):
    cfg, out = setup
    cfg.write_text("board: result\n" + CONFIG.replace("seeds: [0, 1]", "seeds: [0]").replace("    - fixture-fail\n", ""))
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    front = (out / "LEADERBOARD.md").read_text()
    assert "## Policies" in front and any(line.startswith("| base-tiny") for line in front.splitlines())
    assert "base-tiny" not in (out / "checks.md").read_text()


def test_a_benchmark_suite_is_refused_by_name(setup, capsys):
    cfg, out = setup
    cfg.write_text(CONFIG.replace("    - fixture-fail\n", "    - rmroute-pairs-v1\n"))
    assert main(["run", str(cfg), "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "rmroute-pairs-v1" in err and "not an evaluation suite" in err and "fixture-count" in err


def test_dry_run_prints_the_plan(setup, capsys):
    cfg, out = setup
    assert main(["run", str(cfg), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "1 polic(ies) × 3 suite(s) × 2 seed(s) = 6 runs" in text and "judge fixture-judge" in text
    assert not out.exists()


def test_policy_from_a_train_run_loads_its_adapter(tmp_path, setup):
    """A train run JSON names its base policy and final adapter; evaluate loads both."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rmroute.harness.runners.evaluate import policy_from_train_run
    from rmroute.harness.pipelines.policy import load_policy
    from rmroute.harness.results import CodeVersion, DataInfo, RouterInfo, RunRecord, write_run

    base = load_policy({"model": "tiny"}, device="cpu")
    peft_model = get_peft_model(base.model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a non-zero B so that the adapter changes the logits
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.05)
    run_dir = tmp_path / "res" / "runs" / "train-tiny"
    peft_model.save_pretrained(run_dir / "r1.ckpt" / "adapter")
    rec = RunRecord(run_id="r1", kind="train", suite="train-tiny", router=RouterInfo(name="bayesian", label="bayesian"),
                    reward_models=["length"], data=DataInfo(name="x", sha256="0" * 64, n=1), seed=3, metrics={},
                    wall_s=0.0, config={}, config_sha256="0" * 64, code=CodeVersion(git_sha=None, dirty=None),
                    packages={}, command="", created="2026-01-01T00:00:00+00:00",
                    extra={"policy": {"model": "tiny"}, "adapter": "r1.ckpt/adapter"})
    path = write_run(rec, tmp_path / "res")
    plan = policy_from_train_run(path)
    assert plan.label == "bayesian@seed3" and plan.router == "bayesian" and plan.reward_models == ("length",)
    loaded = load_policy(plan.spec, device="cpu")
    ids = base.tokenizer(["what is 2+2?"], return_tensors="pt").input_ids
    fresh = load_policy({"model": "tiny"}, device="cpu").model
    with torch.no_grad():
        assert not torch.allclose(loaded.model(ids).logits, fresh(ids).logits)

    broken = rec.model_copy(update={"run_id": "r2", "extra": {"policy": {"model": "tiny"}}})
    with pytest.raises(ConfigError, match="extra.adapter"):
        policy_from_train_run(write_run(broken, tmp_path / "res"))


def test_train_then_evaluate_the_trained_policy(tmp_path, setup):
    """A real (tiny) train run, then `train_runs:` evaluates its policy: base + the run's final adapter."""
    import torch
    from safetensors.torch import load_file

    from rmroute.harness.runners.evaluate import policy_from_train_run
    from rmroute.harness.pipelines.policy import load_policy
    from rmroute.harness.runners import run_config
    from tests.test_train import _config

    cfg, path = _config(tmp_path, "train", settings={"iterations": 1})
    out = tmp_path / "res"
    (train_json,) = run_config(cfg, path, out)
    rec = json.loads(train_json.read_text())
    assert rec["status"] == "ok" and not Path(rec["extra"]["adapter"]).is_absolute()

    plan = policy_from_train_run(train_json)
    adapter = Path(plan.spec.adapter)
    assert adapter.is_dir() and plan.router == "random" and plan.label == "random@seed0"
    saved = load_file(adapter / "adapter_model.safetensors")
    loaded = load_policy(plan.spec, device="cpu").model
    live = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert saved and len(live) == len(saved)
    for key, tensor in saved.items():  # the evaluated policy carries exactly the trained LoRA weights
        match = [v for k, v in live.items() if k.replace(".default", "").endswith(key.split("base_model.model.", 1)[-1])]
        assert len(match) == 1 and torch.equal(match[0], tensor)
    assert any(t.abs().sum() > 0 for k, t in saved.items() if "lora_B" in k)  # training moved B off zero

    eval_cfg = tmp_path / "eval-trained.yaml"
    eval_cfg.write_text(
        "kind: evaluate\nsuite: eval-trained\nsettings:\n  device: cpu\n"
        f"  policies: [{{train_runs: {train_json.parent}}}]\n"
        "  suites: [fixture-count]\n  generator: {name: fixture-echo}\n")
    assert main(["run", str(eval_cfg), "--out", str(out)]) == 0
    board = (out / "checks.md").read_text()  # an evaluate config without `board: result`: a check
    assert "| random@seed0 | random | 0.75 [" in board  # fixture-count on all 4 prompts: "?ta", "!?y", "?ko" hit
    # both kinds of run reproduce exactly from their JSON (CPU, fixed seeds): metric by metric
    assert main(["reproduce", str(train_json)]) == 0
    (eval_json,) = (out / "runs" / "eval-trained").glob("*.json")
    assert main(["reproduce", str(eval_json)]) == 0
