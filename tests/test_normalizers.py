"""Feedback normalizers and the chain, checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmroute.harness.core.errors import UnknownPluginError
from rmroute.harness.core.plugins import create, get_registry
from rmroute.harness.core.testing import check_normalizer
from rmroute.harness.routing import NormalizerChain, build_chain
from rmroute.routers.normalize import QuantileNormalizer

NAMES = ["identity", "batch-baseline", "quantile", "ema-zscore"]


def _norm(name, **params):
    return create("normalizer", name, **params)


def _percentile(values, p):
    """Linear-interpolation percentile written out (numpy's default method)."""
    xs = sorted(values)
    h = (len(xs) - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


# ---- conformance and registry -----------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_check_normalizer(name):
    check_normalizer(lambda **kw: create("normalizer", name, **kw))


def test_check_normalizer_chain_in_error_mode():
    check_normalizer(lambda: build_chain(["batch-baseline", {"name": "quantile", "params": {"warmup": 4}}]))


def test_registry_metadata():
    reg = get_registry()
    for name in NAMES:
        meta = reg.get("normalizer", name).metadata
        assert meta["description"] and meta["paper"]


@pytest.mark.parametrize("name", NAMES)
def test_each_normalizer_names_bad_positions(name):
    n = _norm(name)
    with pytest.raises(ValueError, match=r"NaN/inf at position\(s\) \[1, 3\]"):
        n(np.array([0.0, np.nan, 1.0, np.inf]), np.zeros(4, dtype=int))


@pytest.mark.parametrize("name", NAMES)
def test_shape_and_arm_checks(name):
    n = _norm(name)
    with pytest.raises(ValueError, match="1-D"):
        n(np.zeros((2, 2)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="same shape"):
        n(np.zeros(3), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="arms must be >= 0"):
        n(np.zeros(2), np.array([0, -1]))
    with pytest.raises(ValueError, match="arms must be integers"):
        n(np.zeros(2), np.array([0.5, 1.0]))
    assert n(np.zeros(0), np.zeros(0, dtype=int)).shape == (0,)


# ---- identity and batch-baseline --------------------------------------------------------------
def test_identity_returns_a_copy():
    raw = np.array([3.0, -1.0, 0.25])
    out = _norm("identity")(raw, np.zeros(3, dtype=int))
    assert out.tolist() == raw.tolist() and out is not raw


def test_batch_baseline_is_mean_minus_each():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=9)
    mean = sum(raw.tolist()) / 9
    out = _norm("batch-baseline")(raw, np.zeros(9, dtype=int))
    np.testing.assert_allclose(out, [mean - v for v in raw], rtol=1e-12, atol=1e-14)
    assert _norm("batch-baseline")(np.array([4.2]), np.array([1])).tolist() == [0.0]


# ---- quantile ---------------------------------------------------------------------------------
def _quantile_by_hand(batches, low=20.0, high=80.0, warmup=20, max_history=None):
    history, outs = [], []
    for b in batches:
        history = history + list(b)
        if max_history is not None:
            history = history[-max_history:]
        if len(history) < warmup:
            outs.append([0.5] * len(b))
            continue
        lo, hi = _percentile(history, low), _percentile(history, high)
        row = []
        for r in b:
            if hi > lo:
                row.append(min(max((r - lo) / (hi - lo), 0.0), 1.0))
            else:
                row.append(1.0 if r > lo else 0.0 if r < lo else 0.5)
        outs.append(row)
    return outs


@pytest.mark.parametrize("params", [{}, {"low": 10, "high": 70, "warmup": 5}, {"warmup": 8, "max_history": 12}])
def test_quantile_matches_hand_computation(params):
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=int(rng.integers(1, 9))) * 3 for _ in range(15)]
    n = _norm("quantile", **params)
    got = [n(b, np.zeros(len(b), dtype=int)) for b in batches]
    for g, w in zip(got, _quantile_by_hand(batches, **params)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_quantile_warmup_and_history_includes_current_batch():
    n = _norm("quantile", warmup=3)
    assert n(np.array([1.0, 2.0]), np.zeros(2, dtype=int)).tolist() == [0.5, 0.5]
    # third value completes the warm-up: history [1, 2, 10] -> q20 = 1.4, q80 = 6.8
    out = n(np.array([10.0]), np.zeros(1, dtype=int))
    assert out.tolist() == [1.0]
    out = n(np.array([3.0]), np.zeros(1, dtype=int))  # history [1, 2, 10, 3]: q20 1.6, q80 5.8
    assert out[0] == pytest.approx((3.0 - 1.6) / (5.8 - 1.6))


def test_quantile_b1_stream_is_the_reference_per_reward_rule():
    # LASeR / BayesianRouter: append the reward, then rescale it against the whole history
    rng = np.random.default_rng(2)
    rewards = rng.normal(size=40)
    n = _norm("quantile", warmup=2)
    history = []
    for r in rewards:
        history.append(float(r))
        got = n(np.array([r]), np.zeros(1, dtype=int))[0]
        if len(history) < 2:
            assert got == 0.5
            continue
        lo, hi = _percentile(history, 20), _percentile(history, 80)
        want = 0.0 if r < lo else 1.0 if r > hi else (r - lo) / (hi - lo)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_quantile_is_order_invariant_within_a_batch():
    rng = np.random.default_rng(3)
    warm = rng.normal(size=30)
    b = rng.normal(size=10)
    perm = rng.permutation(10)
    n1, n2 = _norm("quantile"), _norm("quantile")
    n1(warm, np.zeros(30, dtype=int)), n2(warm, np.zeros(30, dtype=int))
    np.testing.assert_array_equal(n1(b, np.zeros(10, dtype=int))[perm], n2(b[perm], np.zeros(10, dtype=int)))


def test_quantile_degenerate_history():
    n = _norm("quantile", warmup=1)
    assert n(np.array([2.0, 2.0, 2.0]), np.zeros(3, dtype=int)).tolist() == [0.5, 0.5, 0.5]
    out = n(np.array([2.0] * 10 + [5.0, -1.0]), np.zeros(12, dtype=int))
    assert out[:10].tolist() == [0.5] * 10 and out[10] == 1.0 and out[11] == 0.0


@pytest.mark.parametrize("params, match", [
    ({"low": 90, "high": 80}, "low must be < high"),
    ({"high": 120}, r"high must be a percentile in \[0, 100\]"),
    ({"warmup": -1}, "warmup must be an int >= 0"),
    ({"max_history": 0}, "max_history must be None or an int >= 1"),
    ({"max_history": 5, "warmup": 10}, r"max_history \(5\) must be >= warmup \(10\)"),
])
def test_quantile_rejects_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        _norm("quantile", **params)


# ---- ema-zscore -------------------------------------------------------------------------------
def _ema_by_hand(stream, alpha, clip, min_count, eps):
    stats, outs = {}, []
    for arm, r in stream:
        m, s, c = stats.get(arm, (0.0, 0.0, 0))
        out = 0.0
        if c == 0:
            m, s = r, r * r
        else:
            if c >= min_count:
                z = (r - m) / math.sqrt(max(s - m * m, 0.0) + eps)
                out = max(-clip, min(clip, z))
            m, s = (1 - alpha) * m + alpha * r, (1 - alpha) * s + alpha * r * r
        stats[arm] = (m, s, c + 1)
        outs.append(out)
    return outs


@pytest.mark.parametrize("params", [{}, {"alpha": 0.3, "clip": 1.5, "min_count": 2, "eps": 1e-3}, {"alpha": 1.0, "min_count": 1}])
def test_ema_zscore_matches_hand_loop(params):
    rng = np.random.default_rng(4)
    batches = [(rng.normal(size=7) * 2 + 1, rng.integers(0, 3, size=7)) for _ in range(20)]
    full = {"alpha": 0.01, "clip": 2.0, "min_count": 5, "eps": 1e-6, **params}
    n = _norm("ema-zscore", **params)
    got = np.concatenate([n(r, a) for r, a in batches])
    stream = [(int(a), float(r)) for rb, ab in batches for r, a in zip(rb, ab)]
    np.testing.assert_allclose(got, _ema_by_hand(stream, **full), rtol=1e-12, atol=1e-12)


def test_ema_zscore_zero_until_min_count_and_clipped():
    n = _norm("ema-zscore", alpha=0.5, clip=1.0, min_count=3)
    out = n(np.array([1.0, 2.0, 3.0, 100.0, -100.0]), np.array([0, 0, 0, 0, 1]))
    assert out[:3].tolist() == [0.0, 0.0, 0.0]  # arm 0 had 0, 1, 2 earlier observations
    assert out[3] == 1.0  # a far outlier hits the clip
    assert out[4] == 0.0  # arm 1 has no history yet


def test_ema_zscore_batch_equals_one_at_a_time():
    rng = np.random.default_rng(5)
    raw, arms = rng.normal(size=50), rng.integers(0, 4, size=50)
    a, b = _norm("ema-zscore", alpha=0.2, min_count=2), _norm("ema-zscore", alpha=0.2, min_count=2)
    batch = a(raw, arms)
    single = [b(raw[i:i + 1], arms[i:i + 1])[0] for i in range(50)]
    np.testing.assert_array_equal(batch, single)


@pytest.mark.parametrize("params, match", [
    ({"alpha": 0}, r"alpha must be in \(0, 1\]"),
    ({"clip": -1}, "clip must be > 0"),
    ({"min_count": 0}, "min_count must be an int >= 1"),
    ({"eps": 0}, "eps must be a finite number > 0"),
])
def test_ema_zscore_rejects_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        _norm("ema-zscore", **params)


# ---- state ------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, with_nan", [
    (lambda: _norm("quantile", warmup=5, max_history=30), False),
    (lambda: _norm("ema-zscore", alpha=0.1, min_count=2), False),
    (lambda: build_chain(["batch-baseline", {"name": "ema-zscore", "params": {"min_count": 2}}, "quantile"], "skip"), True),
])
def test_state_round_trip_continues_identically(make, with_nan):
    rng = np.random.default_rng(6)
    batches = [(rng.normal(size=6), rng.integers(0, 3, size=6)) for _ in range(12)]
    if with_nan:
        batches[3][0][1] = batches[7][0][2] = np.nan
    first = make()
    for r, a in batches[:6]:
        first(r, a)
    state = first.state_dict()
    second = make()
    second.load_state_dict(state)
    continued = []
    for r, a in batches[6:]:
        out = first(r, a)
        np.testing.assert_array_equal(out, second(r, a))
        continued.append(out)
    assert getattr(first, "skipped", 0) == getattr(second, "skipped", 0)
    # the saved state is a snapshot: loading it again replays the same continuation
    third = make()
    third.load_state_dict(state)
    for (r, a), want in zip(batches[6:], continued):
        np.testing.assert_array_equal(third(r, a), want)


def test_state_is_a_snapshot():
    n = _norm("quantile", warmup=1)
    n(np.array([1.0, 2.0]), np.zeros(2, dtype=int))
    state = n.state_dict()
    n(np.array([3.0]), np.zeros(1, dtype=int))
    assert state["history"] == [1.0, 2.0]
    with pytest.raises(ValueError, match="state is for normalizer 'quantile'"):
        _norm("ema-zscore").load_state_dict(state)


# ---- chain ------------------------------------------------------------------------------------
def test_chain_applies_steps_in_order():
    rng = np.random.default_rng(7)
    batches = [rng.normal(size=8) for _ in range(6)]
    arms = np.zeros(8, dtype=int)
    chain = build_chain(["batch-baseline", {"name": "quantile", "params": {"warmup": 4}}])
    reversed_chain = build_chain([{"name": "quantile", "params": {"warmup": 4}}, "batch-baseline"])
    q = _norm("quantile", warmup=4)
    saw_difference = False
    for b in batches:
        centred = [sum(b.tolist()) / 8 - v for v in b]
        want = q(np.array(centred), arms)
        np.testing.assert_allclose(chain(b, arms), want, rtol=1e-12, atol=1e-12)
        saw_difference |= not np.allclose(reversed_chain(b, arms), want)
    assert saw_difference


def test_chain_error_mode_names_positions_and_changes_nothing():
    chain = build_chain([{"name": "quantile", "params": {"warmup": 1}}])
    with pytest.raises(ValueError, match=r"position\(s\) \[0, 2\].*on_bad_feedback: skip"):
        chain(np.array([np.nan, 1.0, -np.inf]), np.zeros(3, dtype=int))
    assert chain.state_dict()["steps"][0]["history"] == []


def test_chain_skip_mode_excludes_bad_values_from_statistics():
    rng = np.random.default_rng(8)
    skip = build_chain(["batch-baseline", {"name": "quantile", "params": {"warmup": 3}}], on_bad_feedback="skip")
    clean = build_chain(["batch-baseline", {"name": "quantile", "params": {"warmup": 3}}])
    total = 0
    for _ in range(6):
        raw = rng.normal(size=10)
        bad = rng.random(10) < 0.3
        raw[bad] = np.where(rng.random(bad.sum()) < 0.5, np.nan, np.inf)
        total += int(bad.sum())
        out = skip(raw, np.zeros(10, dtype=int))
        assert np.isnan(out[bad]).all()
        assert skip.last_skipped.tolist() == np.flatnonzero(bad).tolist()
        np.testing.assert_array_equal(out[~bad], clean(raw[~bad], np.zeros(int((~bad).sum()), dtype=int)))
    assert total > 0 and skip.skipped == total


def test_chain_skip_mode_all_bad_batch():
    chain = NormalizerChain([], on_bad_feedback="skip")
    out = chain(np.array([np.nan, np.nan]), np.array([0, 1]))
    assert np.isnan(out).all() and chain.skipped == 2


def test_chain_reports_a_step_that_makes_nan():
    def broken(raw, arms):
        out = raw.copy()
        out[-1] = np.nan
        return out

    chain = NormalizerChain([broken], on_bad_feedback="skip")
    with pytest.raises(ValueError, match=r"step 0 \(broken\) returned NaN/inf.*\[3\]"):
        chain(np.array([1.0, np.nan, 2.0, 3.0]), np.zeros(4, dtype=int))


def test_build_chain_specs_and_errors():
    class Ref:  # what a config PluginRef looks like
        name, params = "quantile", {"warmup": 2}

    chain = build_chain(["identity", {"name": "ema-zscore", "params": {"alpha": 0.5}}, Ref()])
    assert [s.name for s in chain.steps] == ["identity", "ema-zscore", "quantile"]
    assert chain.steps[1].alpha == 0.5 and chain.steps[2].warmup == 2
    with pytest.raises(ValueError, match="on_bad_feedback must be one of 'error', 'skip'"):
        build_chain([], on_bad_feedback="drop")
    with pytest.raises(ValueError, match=r"normalizers\[0\].*unknown key"):
        build_chain([{"name": "identity", "parms": {}}])
    with pytest.raises(UnknownPluginError, match="quantil"):
        build_chain(["quantil"])


# ---- LASeR's published rule: one scalar per batch, raw while the history is shorter than two -----
def _laser_reference(batches, low=20.0, high=80.0):
    """LASeR's rule written out by hand: per batch, r = mean of the batch; history.append(r); while
    len(history) < 2 the raw r, else clip((r - P_low) / (P_high - P_low), 0, 1) over the history,
    with percentiles by linear interpolation between order statistics (computed here without numpy's
    percentile: rank = p/100 * (n - 1))."""
    history, out = [], []
    for batch in batches:
        r = sum(batch) / len(batch)
        history.append(r)
        if len(history) < 2:
            out.append(r)
            continue
        srt = sorted(history)

        def pct(p):
            pos = p / 100 * (len(srt) - 1)
            lo_i = int(pos)
            frac = pos - lo_i
            return srt[lo_i] + (srt[min(lo_i + 1, len(srt) - 1)] - srt[lo_i]) * frac

        lo, hi = pct(low), pct(high)
        out.append(min(1.0, max(0.0, (r - lo) / (hi - lo))) if hi > lo else (1.0 if r > lo else 0.0 if r < lo else 0.5))
    return out


def test_quantile_per_batch_with_raw_warmup_is_laser_rule():
    rng = np.random.default_rng(3)
    batches = [(-rng.gamma(2.0, 0.3, size=int(rng.integers(1, 9)))).tolist() for _ in range(40)]
    norm = QuantileNormalizer(unit="batch", warmup=2, during_warmup="raw")
    expected = _laser_reference(batches)
    for batch, want in zip(batches, expected):
        got = norm(np.array(batch), np.zeros(len(batch), dtype=int))
        assert got.shape == (len(batch),)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert expected[0] < 0  # the first reward goes in raw (a negative reward pushes the first arm down)
    assert len(norm.history) == len(batches)  # one history value per batch, not per item


def test_quantile_rejects_unknown_unit_and_warmup_mode():
    with pytest.raises(ValueError, match="unit must be"):
        QuantileNormalizer(unit="pair")
    with pytest.raises(ValueError, match="during_warmup must be"):
        QuantileNormalizer(during_warmup="zero")
