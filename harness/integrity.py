"""Is a run file consistent with itself? Recompute every metric its own stored outcomes determine.

A run file carries, next to its metrics, the raw material some of them were computed from: a replay
run's per-item test outcomes and regret curve, a train run's per-iteration log. :func:`check_run`
recomputes each metric it can from that material and compares it with the stored value (counts
exactly, other numbers within ``FLOAT_TOL``); it returns one line per disagreement, empty when the
file is consistent. An edited metric (``test_routing_accuracy: 0.99``) is caught this way; a file
edited consistently throughout is not (there is no signature).

The leaderboard skips inconsistent runs (:func:`rmroute.harness.results.load_runs`) and ``--resume`` runs them
again (:func:`rmroute.harness.results.finished_ok`). Failed runs are not checked (their metrics are empty).

What is recomputed (docs/results.md lists the same):

* replay (``rmroute.harness.runners.replay.replay_one``): from ``extra.test_outcomes`` (one character per
  test pair: '1' right, '0' wrong, 'h' a half, i.e. a tie or no decision, which schema_version 1
  files never hold; :func:`rmroute.harness.analysis.decode_outcomes`) ``test_accuracy``, the mean score;
  with ``extra.test_oracle`` ('1' where some RM of the pool has the gold sign, one per test pair)
  ``test_oracle_accuracy`` and ``test_routing_accuracy`` (the mean score on the oracle's pairs). Older
  files have no ``test_oracle``: there the two must still be possible, i.e. whole numbers of items
  that agree with the outcomes (see :func:`_oracle_bounds`). Where a file has them, the schema 2
  fields must be well formed: ``extra.test_items`` one integer item id per test pair, ``extra.fold``
  ``{index, n_folds}`` with 0 ≤ index < n_folds, ``extra.arm_order`` a permutation of
  ``reward_models``, ``extra.offline_accuracy`` a number in [0, 1] for every RM and no other key,
  ``extra.feedback`` a mapping whose ``mode`` is one of ``FEEDBACK_MODES``. ``stream_regret`` is the last point
  of ``extra.curves.regret``; ``rm_calls.{stream,test}_total`` the sums of the per-RM counts;
  ``test_calls_per_item`` = ``rm_calls.test_total`` / test items; ``stream_calls_per_item`` =
  ``rm_calls.stream_total`` / stream items (the last point of ``extra.curves.regret_x``);
  ``per_domain[*].n`` sum to the test items and ``per_domain[*].accuracy`` × n to the summed scores.
  A metric whose material is missing from the file is reported, not passed.
* train (``rmroute.harness.runners.train.runner.summarise``): every metric but ``cost`` (RM costs are not stored) from
  ``extra.iterations``, the per-iteration log: ``iterations``, ``pairs_total``, ``pairs_kept``,
  ``rm_calls``, ``calls_per_pair``, ``abstained``, ``fallbacks``, ``final_loss``,
  ``final_reward_margin``, ``mean_dpo_loss``, ``feedback_skipped`` (the NaN feedback values);
  ``rm_calls.total`` and ``rm_calls.per_rm``; and ``extra.curves`` against the log.
* evaluate: nothing. Its metrics come from the per-sample log next to the run file (git-ignored,
  in each suite's own format), not from anything inside the file.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from rmroute.harness.analysis import decode_outcomes
from rmroute.harness.records import RunRecord

#: how far a recomputed non-count metric may be from the stored one
FLOAT_TOL = 1e-12
#: how far ``share × items`` may be from a whole number of items (older replay files, see _oracle_bounds)
COUNT_TOL = 1e-9


def check_run(record: RunRecord) -> list[str]:
    """The ways ``record`` disagrees with itself, one line each naming the metric and its source;
    empty when every recomputable metric matches (and always for failed runs)."""
    if record.status != "ok":
        return []
    check = _CHECKS.get(record.kind)
    return check(record) if check else []


# ---- comparing numbers --------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A stored number as a float (null = NaN, as the results store writes NaN); None if not a number."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _agree(stored: Any, expected: float, exact: bool) -> bool:
    s = _number(stored)
    if s is None:
        return False
    if math.isnan(s) or math.isnan(expected):
        return math.isnan(s) and math.isnan(expected)
    return s == expected if exact else abs(s - expected) <= FLOAT_TOL


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


class _Report:
    """Collects the problems of one run file."""

    def __init__(self, record: RunRecord) -> None:
        self.metrics = record.metrics
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def value(self, where: str, stored: Any, expected: float, source: str, exact: bool) -> None:
        """``stored`` (found at ``where``) must equal ``expected``, recomputed from ``source``."""
        if not _agree(stored, expected, exact):
            self.add(f"{where} is {stored!r}, but {source} give(s) {expected!r}")

    def metric(self, key: str, expected: float, source: str, exact: bool = False) -> None:
        if key in self.metrics:
            self.value(f"metrics.{key}", self.metrics[key], expected, source, exact)

    def missing(self, keys: tuple[str, ...], source: str) -> None:
        """The metrics in ``keys`` that the run has cannot be checked: ``source`` is not in the file."""
        for key in keys:
            if key in self.metrics:
                self.add(f"metrics.{key} cannot be checked: {source} is missing or malformed")


# ---- replay runs ----------------------------------------------------------------------------------


def _bits(extra: dict[str, Any], key: str, report: _Report) -> str | None:
    """``extra[key]`` as a string of '0'/'1' (None when absent or malformed; malformed is reported)."""
    value = extra.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or set(value) - {"0", "1"}:
        report.add(f"extra.{key}: expected a string of '0' and '1' (one per test pair), got {str(value)[:40]!r}")
        return None
    return value


def _outcomes(record: RunRecord, report: _Report) -> np.ndarray | None:
    """The scores in ``extra.test_outcomes`` ('1', '0', 'h'; 'h' only from schema_version 2 on); None when
    absent or malformed (malformed is reported)."""
    value = record.extra.get("test_outcomes")
    if value is None:
        return None
    allowed = "01" if record.schema_version < 2 else "10h"
    if not isinstance(value, str) or set(value) - set(allowed):
        said = "'0' and '1'" if record.schema_version < 2 else "'1', '0' and 'h'"
        report.add(f"extra.test_outcomes: expected a string of {said} (one per test pair; schema_version "
                   f"{record.schema_version}), got {str(value)[:40]!r}")
        return None
    return decode_outcomes(value, "extra.test_outcomes")


#: the online feedback modes a replay run may record in ``extra.feedback.mode``
FEEDBACK_MODES = ("gold", "budget", "consensus")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_split_fields(record: RunRecord, report: _Report, n: int | None) -> None:
    """The schema 2 fields of a replay run, where present: item ids, fold, arm order, offline
    accuracies and feedback mode are well formed and agree with the run's RMs and test pairs."""
    extra, rms = record.extra, list(record.reward_models)
    if "test_items" not in extra and record.schema_version >= 2 and n is not None:
        report.add("extra.test_items is missing: a schema 2 replay run records the item id of each test pair")
    if "test_items" in extra:
        items = extra["test_items"]
        if not isinstance(items, list) or not all(_is_int(i) for i in items):
            report.add("extra.test_items: expected a list of integer item ids (one per test pair)")
        elif n is not None and len(items) != n:
            report.add(f"extra.test_items has {len(items)} ids, extra.test_outcomes {n} test pairs")
    if "fold" in extra:
        fold = extra["fold"]
        ok = isinstance(fold, dict) and set(fold) == {"index", "n_folds"} and _is_int(fold.get("index")) \
            and _is_int(fold.get("n_folds")) and 0 <= fold["index"] < fold["n_folds"]
        if not ok:
            report.add(f"extra.fold: expected {{index, n_folds}} with 0 <= index < n_folds, got {str(fold)[:60]!r}")
    if "arm_order" in extra:
        order = extra["arm_order"]
        if not isinstance(order, list) or sorted(map(str, order)) != sorted(rms) or len(order) != len(rms):
            report.add(f"extra.arm_order: expected an ordering of the run's reward_models ({', '.join(rms)}), "
                       f"got {str(order)[:80]!r}")
    if "offline_accuracy" in extra:
        acc = extra["offline_accuracy"]
        if not isinstance(acc, dict) or set(acc) != set(rms):
            report.add(f"extra.offline_accuracy: expected one entry per RM of reward_models ({', '.join(rms)}), "
                       f"got keys {sorted(acc) if isinstance(acc, dict) else type(acc).__name__}")
        else:
            bad = [k for k, v in acc.items() if (x := _number(v)) is None or not 0.0 <= x <= 1.0]
            if bad:
                report.add(f"extra.offline_accuracy: {', '.join(sorted(bad))}: expected a number in [0, 1]")
    if "feedback" in extra:
        fb = extra["feedback"]
        if not isinstance(fb, dict) or fb.get("mode") not in FEEDBACK_MODES:
            report.add(f"extra.feedback: expected a mapping with mode one of {', '.join(FEEDBACK_MODES)}, "
                       f"got {str(fb)[:60]!r}")


def _last(curve: Any) -> float | None:
    """The last point of a stored curve (0 for an empty one); None when it is not a list of numbers."""
    if not isinstance(curve, list):
        return None
    return _number(curve[-1]) if curve else 0.0


def _per_rm_sum(per_rm: Any) -> int | None:
    if not isinstance(per_rm, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in per_rm.values()):
        return None
    return sum(per_rm.values())


def _check_replay(record: RunRecord) -> list[str]:
    report = _Report(record)
    extra = record.extra
    outcomes = _outcomes(record, report)
    oracle = _bits(extra, "test_oracle", report)
    _check_split_fields(record, report, None if outcomes is None else outcomes.size)
    curves = extra.get("curves") if isinstance(extra.get("curves"), dict) else {}
    calls = record.rm_calls

    # RM call counts: each total is the sum of its per-RM counts
    for part in ("stream", "test"):
        total, per_rm = f"{part}_total", f"{part}_per_rm"
        if total in calls:
            summed = _per_rm_sum(calls.get(per_rm))
            if summed is None:
                report.add(f"rm_calls.{total} cannot be checked: rm_calls.{per_rm} is missing or not RM -> count")
            else:
                report.value(f"rm_calls.{total}", calls[total], summed, f"rm_calls.{per_rm} (summed)", exact=True)

    regret_end, stream_items = _last(curves.get("regret")), _last(curves.get("regret_x"))
    if regret_end is None:
        report.missing(("stream_regret",), "extra.curves.regret")
    else:
        report.metric("stream_regret", regret_end, "extra.curves.regret (last point)", exact=True)
    if stream_items is None or "stream_total" not in calls:
        report.missing(("stream_calls_per_item",), "extra.curves.regret_x or rm_calls.stream_total")
    else:
        stream_calls = _number(calls["stream_total"])
        if stream_calls is not None:
            report.metric("stream_calls_per_item", _ratio(stream_calls, stream_items),
                          "rm_calls.stream_total / stream items (extra.curves.regret_x)")

    if outcomes is None:
        report.missing(("test_accuracy", "test_oracle_accuracy", "test_routing_accuracy", "test_calls_per_item"),
                       "extra.test_outcomes")
        return report.problems
    n, right = outcomes.size, float(outcomes.sum())
    report.metric("test_accuracy", _ratio(right, n), "extra.test_outcomes (mean score)")
    if oracle is None:
        _oracle_bounds(report, n, right)
    elif len(oracle) != n:
        report.add(f"extra.test_oracle has {len(oracle)} items, extra.test_outcomes {n}")
    else:
        on_oracle = np.frombuffer(oracle.encode(), dtype=np.uint8) == ord("1")
        n_oracle = int(on_oracle.sum())
        report.metric("test_oracle_accuracy", _ratio(n_oracle, n), "extra.test_oracle")
        report.metric("test_routing_accuracy", _ratio(float(outcomes[on_oracle].sum()), n_oracle),
                      "extra.test_outcomes and extra.test_oracle")
    if "test_total" in calls:
        test_calls = _number(calls["test_total"])
        if test_calls is not None:
            report.metric("test_calls_per_item", _ratio(test_calls, n), "rm_calls.test_total / test items (extra.test_outcomes)")
    else:
        report.missing(("test_calls_per_item",), "rm_calls.test_total")
    _check_per_domain(report, record.per_domain, n, right)
    return report.problems


def _oracle_bounds(report: _Report, n: int, right: float) -> None:
    """Files written before ``extra.test_oracle`` existed: the oracle and routing accuracies cannot be
    recomputed, but they must be possible. The oracle accuracy is k/n for a whole number k of items
    some RM gets right; the routing accuracy is h/k for a score sum h on those k items, a multiple of
    1/2 (a half for a tie), with right − (n − k) ≤ h ≤ min(right, k) (the n − k other items score at
    most n − k), where ``right`` is the sum of all n scores."""
    share, routing = _number(report.metrics.get("test_oracle_accuracy")), _number(report.metrics.get("test_routing_accuracy"))
    if share is None or routing is None or math.isnan(share) or n == 0:
        return
    k = share * n
    if abs(k - round(k)) > COUNT_TOL * n or not 0 <= round(k) <= n:
        report.add(f"metrics.test_oracle_accuracy is {share!r}, which is no whole number of the {n} test items "
                   "(extra.test_outcomes)")
        return
    k = round(k)
    if k == 0:
        report.metric("test_routing_accuracy", math.nan, "metrics.test_oracle_accuracy (0: no item to route)")
        return
    h, lo, hi = routing * k, max(0.0, right - (n - k)), min(right, float(k))
    if math.isnan(h) or abs(2 * h - round(2 * h)) > COUNT_TOL * k or not lo <= round(2 * h) / 2 <= hi:
        report.add(f"metrics.test_routing_accuracy is {routing!r}, but with a score sum of {right:g} over {n} test "
                   f"items (extra.test_outcomes) and {k} oracle items (metrics.test_oracle_accuracy) it must be h/{k} "
                   f"for h a multiple of 1/2 from {lo:g} to {hi:g}")


def _check_per_domain(report: _Report, per_domain: dict[str, dict[str, Any]], n: int, right: float) -> None:
    if not per_domain:
        return
    sizes = [d.get("n") for d in per_domain.values()]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        report.add("per_domain: every domain needs an integer n")
        return
    report.value("per_domain n (summed)", sum(sizes), n, "extra.test_outcomes (its length)", exact=True)
    accs = [_number(d.get("accuracy")) for d in per_domain.values()]
    if all(a is not None and not math.isnan(a) for a in accs):
        weighted = sum(a * s for a, s in zip(accs, sizes))
        if abs(weighted - right) > COUNT_TOL * max(1, n):
            report.add(f"per_domain accuracy × n sums to {weighted!r}, but the scores of extra.test_outcomes "
                       f"sum to {right!r}")


# ---- train runs -----------------------------------------------------------------------------------

#: train metrics that are counts (compared exactly); the others are compared within FLOAT_TOL
TRAIN_COUNTS = ("iterations", "pairs_total", "pairs_kept", "rm_calls", "abstained", "fallbacks", "feedback_skipped")
#: curves a train run stores next to its log: extra.curves[key][i] == extra.iterations[i][key]
TRAIN_CURVES = ("dpo_loss", "loss_before", "reward_margin", "pairs_kept", "rm_calls")


def _as_float(value: Any) -> float:
    number = _number(value)
    if number is None:
        raise TypeError(f"{value!r} is not a number")
    return number


def train_expected(its: list[dict[str, Any]], names: list[str]) -> tuple[dict[str, float], dict[str, int]]:
    """(metrics, RM calls per RM) of a train run, recomputed from its per-iteration log the way
    ``rmroute.harness.runners.train.runner.summarise`` computes them (every metric but ``cost``). Raises KeyError or
    TypeError when the log is not what the train runner writes."""
    per_rm = {rm: sum(int(it["calls_per_rm"][rm]) for it in its) for rm in names}
    pairs = sum(int(it["pairs"]) for it in its)
    losses = [_as_float(it["dpo_loss"]) for it in its]
    finite = [x for x in losses if math.isfinite(x)]
    metrics = {
        "iterations": len(its),
        "pairs_total": pairs,
        "pairs_kept": sum(int(it["pairs_kept"]) for it in its),
        "rm_calls": sum(per_rm.values()),
        "calls_per_pair": sum(per_rm.values()) / max(1, pairs),
        "abstained": sum(int(it["abstained"]) for it in its),
        "fallbacks": sum(int(it["fallbacks"]) for it in its),
        # the chain returns NaN (stored as null) exactly where it skipped a feedback value
        "feedback_skipped": sum(math.isnan(_as_float(v)) for it in its for v in it["feedback"]),
        # runs written before issue 15 measured the loss after the step (``loss_after``)
        "final_loss": _as_float(its[-1]["loss_before"] if "loss_before" in its[-1] else its[-1]["loss_after"]),
        "final_reward_margin": _as_float(its[-1]["reward_margin"]),
        "mean_dpo_loss": float(np.mean(finite)) if finite else math.nan,  # np.mean, as summarise takes it
    }
    return metrics, per_rm


def _check_train(record: RunRecord) -> list[str]:
    report = _Report(record)
    its, names = record.extra.get("iterations"), record.reward_models
    source = "extra.iterations"
    if not isinstance(its, list) or not its or not all(isinstance(it, dict) for it in its):
        report.missing(TRAIN_COUNTS + ("calls_per_pair", "final_loss", "final_reward_margin", "mean_dpo_loss"), source)
        return report.problems
    try:
        expected, per_rm = train_expected(its, names)
    except (KeyError, TypeError, ValueError) as exc:
        report.add(f"{source}: not the per-iteration log the train runner writes ({type(exc).__name__}: {exc})")
        return report.problems
    for key, value in expected.items():
        report.metric(key, value, source, exact=key in TRAIN_COUNTS)
    calls = record.rm_calls
    if "total" in calls:
        report.value("rm_calls.total", calls["total"], expected["rm_calls"], f"{source} (calls_per_rm, summed)", exact=True)
    if "per_rm" in calls:
        stored = calls["per_rm"] if isinstance(calls["per_rm"], dict) else {}
        for rm in sorted(set(per_rm) | set(stored)):
            report.value(f"rm_calls.per_rm[{rm!r}]", stored.get(rm), per_rm.get(rm, math.nan),
                         f"{source} (calls_per_rm, summed)", exact=True)
    curves = record.extra.get("curves") if isinstance(record.extra.get("curves"), dict) else {}
    for key in TRAIN_CURVES:
        curve = curves.get(key)
        if curve is None:
            continue
        logged = [it.get(key) for it in its]
        if not isinstance(curve, list) or len(curve) != len(logged):
            report.add(f"extra.curves.{key} has {len(curve) if isinstance(curve, list) else 'no'} points, "
                       f"{source} {len(logged)} iterations")
            continue
        for i, (point, value) in enumerate(zip(curve, logged)):
            v = _number(value)
            if v is None or not _agree(point, v, exact=False):
                report.add(f"extra.curves.{key}[{i}] is {point!r}, but {source}[{i}].{key} is {value!r}")
                break
    return report.problems


_CHECKS: dict[str, Callable[[RunRecord], list[str]]] = {"replay": _check_replay, "train": _check_train}
