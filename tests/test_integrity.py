"""Run files are self-consistent: rmroute.harness.integrity.check_run recomputes what a run's stored outcomes,
curves and logs determine; the leaderboard skips, and --resume re-runs, a run whose metrics disagree.

The runs checked are real: a small replay grid on synthetic data (the runner of
tests/test_replay_runner.py) and the committed run files under results/runs/."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rmroute.harness import results as R
from rmroute.harness.cli import main
from rmroute.harness.integrity import check_run
from tests.conftest import REPO
from tests.test_replay_runner import setup  # noqa: F401 - the fixture: synthetic replay data, counted cells



@pytest.fixture
def grid(setup):  # noqa: F811
    """tests/test_replay_runner.py's grid run once (a failing router included): (config, results
    folder, cell counter, the ok run files)."""
    cfg, out, calls = setup
    main(["run", str(cfg), "--out", str(out), "--no-leaderboard"])  # non-zero: the grid's `boom` cells fail
    files = sorted((out / "runs" / "synthetic").glob("*.json"))
    assert files and len(files) == calls["n"]
    return cfg, out, calls, [f for f in files if json.loads(f.read_text())["status"] == "ok"]


def edited(path: Path, edit) -> R.RunRecord:
    """The run in ``path`` after ``edit(raw JSON dict)``, loaded as a record."""
    data = json.loads(path.read_text())
    edit(data)
    return R.RunRecord.model_validate(data)


def set_in(path: tuple[str, ...], value):
    def edit(data):
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return edit


# ---- replay runs ------------------------------------------------------------------------------------


def test_runs_written_by_the_replay_runner_are_consistent(grid):
    _, _, _, files = grid
    for f in files:
        run = R.load_run(f)
        assert run.extra["test_oracle"] and len(run.extra["test_oracle"]) == len(run.extra["test_outcomes"])
        assert check_run(run) == [], f


REPLAY_EDITS = [  # (where in the run JSON, new value, what the first problem names)
    (("metrics", "test_routing_accuracy"), 0.99, "metrics.test_routing_accuracy"),
    (("metrics", "test_accuracy"), 0.5, "metrics.test_accuracy"),
    (("metrics", "test_oracle_accuracy"), 0.9, "metrics.test_oracle_accuracy"),
    (("metrics", "stream_regret"), 3, "metrics.stream_regret"),
    (("metrics", "test_calls_per_item"), 2.0, "metrics.test_calls_per_item"),
    (("metrics", "stream_calls_per_item"), 2.0, "metrics.stream_calls_per_item"),
    (("rm_calls", "test_total"), 1, "rm_calls.test_total"),
    (("rm_calls", "stream_per_rm", "rm-code"), 7, "rm_calls.stream_total"),
    (("extra", "test_outcomes"), "10" * 100, "metrics.test_accuracy"),  # the outcomes edited, not the metrics
    (("extra", "curves", "regret"), [0.0, 1.0], "metrics.stream_regret"),
    (("extra", "test_oracle"), "1" * 199, "extra.test_oracle has 199 items"),
]


def test_an_edited_replay_run_is_named(grid):
    _, _, _, files = grid
    path = next(f for f in files if "bayesian" in f.name)
    for where, value, named in REPLAY_EDITS:
        problems = check_run(edited(path, set_in(where, value)))
        assert problems and named in problems[0], (where, problems)


def test_per_domain_counts_are_checked(grid):
    _, _, _, files = grid
    path = files[0]
    domain = next(iter(json.loads(path.read_text())["per_domain"]))
    problems = check_run(edited(path, set_in(("per_domain", domain, "n"), 1)))
    assert any("per_domain n" in p for p in problems), problems
    accuracy = json.loads(path.read_text())["per_domain"][domain]["accuracy"]
    problems = check_run(edited(path, set_in(("per_domain", domain, "accuracy"), 1.0 - accuracy)))
    assert any("per_domain accuracy" in p for p in problems), problems


def test_recomputed_values_match_an_independent_count(grid):
    """The numbers check_run compares with, counted here from the per-item strings by hand."""
    _, _, _, files = grid
    run = R.load_run(files[0])
    out, ora = run.extra["test_outcomes"], run.extra["test_oracle"]
    right = [i for i, c in enumerate(out) if c == "1"]
    oracle = [i for i, c in enumerate(ora) if c == "1"]
    assert run.metrics["test_accuracy"] == pytest.approx(len(right) / len(out), abs=1e-15)
    assert run.metrics["test_oracle_accuracy"] == pytest.approx(len(oracle) / len(out), abs=1e-15)
    assert run.metrics["test_routing_accuracy"] == pytest.approx(len(set(right) & set(oracle)) / len(oracle), abs=1e-15)
    # a value off by more than the tolerance is caught, one within it is not
    off = run.metrics["test_routing_accuracy"] + 1e-9
    assert check_run(edited(files[0], set_in(("metrics", "test_routing_accuracy"), off)))
    near = run.metrics["test_routing_accuracy"] + 1e-14
    assert check_run(edited(files[0], set_in(("metrics", "test_routing_accuracy"), near))) == []


def test_older_files_without_test_oracle_are_bounded(grid):
    """Without extra.test_oracle the routing and oracle accuracies must still be whole numbers of items
    that agree with the outcomes."""
    _, _, _, files = grid
    path = next(f for f in files if "bayesian" in f.name)

    def old(data):
        del data["extra"]["test_oracle"]

    assert check_run(edited(path, old)) == []

    def old_and(where, value):
        def edit(data):
            old(data)
            set_in(where, value)(data)
        return edit

    problems = check_run(edited(path, old_and(("metrics", "test_routing_accuracy"), 0.99)))
    assert problems and "metrics.test_routing_accuracy is 0.99" in problems[0], problems
    problems = check_run(edited(path, old_and(("metrics", "test_oracle_accuracy"), 0.1234567)))
    assert problems and "metrics.test_oracle_accuracy" in problems[0], problems


def test_missing_material_is_a_problem_and_failed_runs_are_not_checked(grid):
    _, _, _, files = grid
    path = files[0]

    def drop(data):
        del data["extra"]["test_outcomes"]

    problems = check_run(edited(path, drop))
    assert any("metrics.test_accuracy cannot be checked: extra.test_outcomes" in p for p in problems), problems
    problems = check_run(edited(path, set_in(("extra", "test_outcomes"), "10x1")))
    assert any("extra.test_outcomes: expected a string of '1', '0' and 'h'" in p for p in problems), problems
    problems = check_run(edited(path, lambda d: (set_in(("extra", "test_outcomes"), "10h1")(d),
                                                 set_in(("schema_version",), 1)(d))))
    assert any("expected a string of '0' and '1' (one per test pair; schema_version 1)" in p for p in problems), problems

    def failed(data):
        data["status"], data["error"] = "failed", "RuntimeError: x"
        data["metrics"]["test_accuracy"] = 0.123

    assert check_run(edited(path, failed)) == []


def test_an_edited_run_is_left_off_the_leaderboard_and_run_again_on_resume(grid):
    cfg, out, calls, files = grid
    assert main(["leaderboard", str(out)]) == 0
    board = (out / "LEADERBOARD.md").read_text()
    path = next(f for f in files if "bayesian" in f.name and "seed1" in f.name)
    original = json.loads(path.read_text())
    tampered = json.loads(path.read_text())
    tampered["metrics"]["test_routing_accuracy"] = 0.99
    path.write_text(json.dumps(tampered))

    with pytest.warns(R.ResultsWarning, match=r"synthetic/iid--bayesian--seed1--\w+\.json.*test_routing_accuracy"):
        runs, skipped = R.load_runs(out)
    assert [p for p, _ in skipped] == [path] and len(runs) == calls["n"] - 1
    with pytest.warns(R.ResultsWarning):
        assert main(["leaderboard", str(out)]) == 0
    text = (out / "LEADERBOARD.md").read_text()
    assert "## Skipped files" in text and "test_routing_accuracy is 0.99" in text
    (track,) = (out / "board").glob("synthetic-*-iid.md")  # the iid track page holds the full table
    bayes = next(line for line in track.read_text().splitlines() if line.startswith("| bayesian |"))
    assert bayes.split("|")[2].strip() == "1" and "0.99" not in bayes  # one seed left in its row

    assert not R.finished_ok(path)
    n_failed = len(list((out / "runs" / "synthetic").glob("*.json"))) - len(files)
    calls["n"] = 0
    main(["run", str(cfg), "--out", str(out), "--resume"])
    assert calls["n"] == 1 + n_failed  # that cell ran again (and the failed ones, as always); no other
    again = json.loads(path.read_text())
    assert again["metrics"] == original["metrics"] and R.finished_ok(path)
    assert (out / "LEADERBOARD.md").read_text() == board


# ---- schema_version 2: half outcomes, item ids, folds, arm order, offline accuracies, feedback ------


def with_halves(data):
    """Turn some outcomes into halves (ties) and set the metrics to values counted here by hand:
    a '1' scores 1, an 'h' 1/2; routing accuracy over the pairs whose oracle character is '1'."""
    out = list(data["extra"]["test_outcomes"])
    for i in range(0, len(out), 7):
        out[i] = "h"
    out = "".join(out)
    oracle = data["extra"]["test_oracle"]
    score = {"1": 1.0, "0": 0.0, "h": 0.5}
    on = [score[c] for c, o in zip(out, oracle) if o == "1"]
    data["extra"]["test_outcomes"] = out
    data["metrics"]["test_accuracy"] = sum(score[c] for c in out) / len(out)
    data["metrics"]["test_routing_accuracy"] = sum(on) / len(on)
    domains = list(data["per_domain"])
    # per-domain accuracies must still sum (× n) to the total score: put it all on one domain's record
    total = sum(score[c] for c in out)
    rest = sum(data["per_domain"][d]["accuracy"] * data["per_domain"][d]["n"] for d in domains[1:])
    data["per_domain"][domains[0]]["accuracy"] = (total - rest) / data["per_domain"][domains[0]]["n"]


SPLIT_FIELDS = {"fold": {"index": 1, "n_folds": 5}, "feedback": {"mode": "budget", "share": 0.25}}


def schema2(data):
    """A complete schema 2 replay record: halves, item ids (two pairs per item), fold, arm order,
    offline accuracies and feedback."""
    with_halves(data)
    n = len(data["extra"]["test_outcomes"])
    data["extra"].update(SPLIT_FIELDS, test_items=[1000 + i // 2 for i in range(n)],
                         arm_order=list(reversed(data["reward_models"])),
                         offline_accuracy={rm: 0.5 for rm in data["reward_models"]})


def test_schema2_fields_and_half_outcomes_are_consistent(grid):
    _, _, _, files = grid
    path = next(f for f in files if "bayesian" in f.name)
    run = edited(path, schema2)
    assert run.schema_version == 2 and "h" in run.extra["test_outcomes"]
    assert check_run(run) == []
    # the metrics as written before the halves no longer agree: named
    problems = check_run(edited(path, lambda d: (schema2(d), d["metrics"].update(test_accuracy=R.load_run(path).metrics["test_accuracy"]))))
    assert problems and "metrics.test_accuracy" in problems[0], problems


SCHEMA2_EDITS = [  # (edit after schema2, what the problem names)
    (lambda d: d["extra"]["test_items"].pop(), "extra.test_items has"),
    (lambda d: d["extra"]["test_items"].__setitem__(0, "a"), "extra.test_items: expected a list of integer"),
    (lambda d: d["extra"].update(fold={"index": 5, "n_folds": 5}), "extra.fold"),
    (lambda d: d["extra"].update(arm_order=d["reward_models"][:-1]), "extra.arm_order"),
    (lambda d: d["extra"]["offline_accuracy"].update(nope=0.5), "extra.offline_accuracy: expected one entry per RM"),
    (lambda d: d["extra"]["offline_accuracy"].update({d["reward_models"][0]: 1.5}), "expected a number in [0, 1]"),
    (lambda d: d["extra"].update(feedback={"mode": "oracle"}), "extra.feedback"),
    (lambda d: d["extra"].update(test_oracle=d["extra"]["test_oracle"][:-1]), "extra.test_oracle has"),
]


@pytest.mark.parametrize("edit, named", SCHEMA2_EDITS)
def test_malformed_schema2_fields_are_named(grid, edit, named):
    _, _, _, files = grid
    path = next(f for f in files if "bayesian" in f.name)
    problems = check_run(edited(path, lambda d: (schema2(d), edit(d))))
    assert problems and any(named in p for p in problems), problems


def test_schema1_files_load_and_schema3_does_not(grid, tmp_path):
    _, _, _, files = grid
    data = json.loads(files[0].read_text())
    data["schema_version"] = 1
    (tmp_path / "v1.json").write_text(json.dumps(data))
    assert R.load_consistent_run(tmp_path / "v1.json").schema_version == 1
    data["schema_version"] = 3
    (tmp_path / "v3.json").write_text(json.dumps(data))
    with pytest.raises(R.ResultsError, match="v3.json: schema_version 3 is not supported .*reads 1, 2"):
        R.load_run(tmp_path / "v3.json")


# ---- train, evaluate and the committed runs ----------------------------------------------------------


def committed(kind: str) -> list[Path]:
    paths = sorted(p for p in (REPO / "results" / "runs").rglob("*.json") if ".samples" not in str(p))
    return [p for p in paths if json.loads(p.read_text())["kind"] == kind]


@pytest.mark.parametrize("kind", ["replay", "train", "evaluate"])
def test_every_committed_run_is_consistent(kind):
    paths = committed(kind)
    assert paths
    bad = {p.name: check_run(R.load_run(p)) for p in paths}
    assert not {k: v for k, v in bad.items() if v}


@pytest.mark.parametrize("where, value, named", [
    (("metrics", "final_loss"), 0.5, "metrics.final_loss"),
    (("metrics", "mean_dpo_loss"), 0.5, "metrics.mean_dpo_loss"),
    (("metrics", "pairs_kept"), 10_000, "metrics.pairs_kept"),
    (("metrics", "calls_per_pair"), 9.0, "metrics.calls_per_pair"),
    (("metrics", "iterations"), 99, "metrics.iterations"),
    (("metrics", "feedback_skipped"), 3, "metrics.feedback_skipped"),
    (("rm_calls", "total"), 1, "rm_calls.total"),
    (("extra", "curves", "dpo_loss"), [0.1], "extra.curves.dpo_loss"),
    (("extra", "iterations"), [], "cannot be checked: extra.iterations"),
])
def test_an_edited_train_run_is_named(where, value, named):
    path = committed("train")[0]
    problems = check_run(edited(path, set_in(where, value)))
    assert problems and any(named in p for p in problems), problems


def test_train_metrics_match_an_independent_sum():
    run = R.load_run(committed("train")[0])
    its = run.extra["iterations"]
    assert run.metrics["pairs_kept"] == sum(it["pairs_kept"] for it in its)
    assert run.rm_calls["total"] == sum(sum(it["calls_per_rm"].values()) for it in its) == run.metrics["rm_calls"]
    losses = [it["dpo_loss"] for it in its if it["dpo_loss"] is not None and math.isfinite(it["dpo_loss"])]
    assert run.metrics["mean_dpo_loss"] == pytest.approx(sum(losses) / len(losses), abs=1e-12)
    rm = run.reward_models[0]
    problems = check_run(edited(committed("train")[0], set_in(("rm_calls", "per_rm", rm), run.rm_calls["per_rm"][rm] + 1)))
    assert problems and f"rm_calls.per_rm[{rm!r}]" in problems[0]


def test_evaluate_runs_have_nothing_to_recompute():
    path = committed("evaluate")[0]
    key = next(iter(json.loads(path.read_text())["metrics"]))
    assert check_run(edited(path, set_in(("metrics", key), 0.123))) == []
