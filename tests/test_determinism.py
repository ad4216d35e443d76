"""One CPU code path on every machine (rmroute.harness.determinism), and the committed cross-machine check:
a slice of the offline router's features and bundle, recomputed here, must hash as committed."""

from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from rmroute.harness.determinism import PINS, PURPOSES, SHARED_SALTS, arrays_sha256, derived_rng, fixed_threads, profile
from tests.conftest import REPO


def test_pins_are_in_effect_in_this_process():
    import torch

    assert profile() == "avx2"
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert all(os.environ[k] == v for k, v in PINS.items())


def test_fixed_threads_sets_and_restores():
    import torch

    before = torch.get_num_threads()
    with fixed_threads(3) as n:
        assert n == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


def test_arrays_sha256_tells_values_shapes_and_nan_payloads_apart():
    a = np.array([1.0, np.nan, 3.0])
    other_nan = a.copy()
    other_nan[1] = -np.nan  # another NaN bit pattern: the same missing value
    assert arrays_sha256(a) == arrays_sha256(other_nan)
    assert arrays_sha256(a) != arrays_sha256(np.array([1.0, np.nan, 3.0 + 1e-15]))
    assert arrays_sha256(np.zeros((2, 3))) != arrays_sha256(np.zeros((3, 2)))
    assert arrays_sha256(a, a) != arrays_sha256(a)


#: each purpose's seed sequence as the code wrote it inline before derived_rng, by hand
BY_HAND = {
    "replay-stream": lambda seed: [seed, 104729],
    "replay-drift": lambda seed: [seed, 7919],
    "arm-order": lambda seed: [seed, 613],
    "replay-folds": lambda seed: [seed, 827],
    "replay-fold-split": lambda seed: [seed, 1031],
    "replay-label-budget": lambda seed: [seed, 1237],
    "replay-consensus": lambda seed: [seed, 1429],
    "train-prompt-order": lambda seed: [seed, 2718],
    "train-offline-pairs": lambda seed: [seed, 31],
    "train-run": lambda seed: [seed, 7],
    "train-generation": lambda seed, iteration: [seed, iteration, 11],
    "train-generation-chunk": lambda seed, iteration, chunk: [seed, iteration, chunk, 13],
    "rm-validation-split": lambda seed: [seed, 1],
    "rm-length-batches": lambda seed, epoch: [seed, epoch, 7],
    "router-monte-carlo": lambda seed: [seed, 1],
    "table-splits": lambda seed: [seed, 1613],
}


def _keys(purpose: str, value: int = 3) -> tuple[int, ...]:
    return (value,) * len(PURPOSES[purpose].keys)


@pytest.mark.parametrize("purpose", sorted(BY_HAND))
def test_derived_rng_gives_the_stream_built_by_hand(purpose):
    for seed in (0, 1, 2**31 - 1):
        for value in (0, 5):
            keys = _keys(purpose, value)
            got = derived_rng(seed, purpose, *keys)
            want = np.random.default_rng(BY_HAND[purpose](seed, *keys))
            assert np.array_equal(got.random(16), want.random(16))
            assert np.array_equal(got.permutation(50), want.permutation(50))


def test_every_purpose_is_written_out_by_hand():
    assert set(BY_HAND) == set(PURPOSES)


def test_purposes_have_distinct_salts_and_streams():
    by_salt: dict[tuple[int, int], set[str]] = {}
    for name, p in PURPOSES.items():
        by_salt.setdefault((p.salt, len(p.keys)), set()).add(name)
    shared = {frozenset(names) for names in by_salt.values() if len(names) > 1}
    assert shared == SHARED_SALTS  # a new purpose with a salt (and keys) already taken fails here
    for a, b in itertools.combinations(sorted(PURPOSES), 2):
        same = np.array_equal(derived_rng(0, a, *_keys(a)).random(4), derived_rng(0, b, *_keys(b)).random(4))
        assert same == (frozenset({a, b}) in SHARED_SALTS), (a, b)


def test_derived_rng_refuses_unknown_purposes_and_wrong_keys():
    with pytest.raises(ValueError, match="unknown seed purpose 'replay-strem'"):
        derived_rng(0, "replay-strem")
    with pytest.raises(ValueError, match="takes 1 key"):
        derived_rng(0, "train-generation")
    with pytest.raises(ValueError, match="takes 0 key"):
        derived_rng(0, "replay-stream", 1)


def test_no_salt_is_inlined_outside_the_table():
    """Every seeded generator of the host and the routers that mixes a salt into its seed goes through derived_rng."""
    inlined = []
    for folder in ("harness", "routers"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.name == "determinism.py" and path.parent.name == "harness":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "default_rng"
                        and node.args and isinstance(node.args[0], (ast.List, ast.Tuple))):
                    inlined.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert inlined == []


def _reference_slice(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run([sys.executable, "-m", "rmroute.harness.reference_slice"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert "}" in proc.stdout, proc.stderr[-2000:]  # exit 1 only says the hashes differ from the file's
    return json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])


def test_reference_slice_hashes_match_the_committed_ones():
    """Recompute the slice in a fresh process (an empty embedding cache, so the encoder really runs)
    and compare with results/reference-hashes.json. On a CPU of the vendor that published the runs
    (``cpu_vendor`` in the file) the bits must match; MKL's reproducible mode (``MKL_CBWR``) holds on
    Intel processors only, and on an AMD EPYC the features differ (docs/reproducibility.md), so on
    another vendor the check is that the pin makes this machine agree with itself across thread
    counts, and the difference from the published hashes is reported."""
    want = json.loads((REPO / "results" / "reference-hashes.json").read_text())
    got = _reference_slice(threads=2)
    assert got["compute"]["profile"] == "avx2", got["compute"]
    mine = (got["features_sha256"], got["bundle_sha256"])
    if got["cpu_vendor"] == want["cpu_vendor"]:
        assert mine == (want["features_sha256"], want["bundle_sha256"]), (
            f"this machine computes other bits than the published ones: {got} vs {want}")
        return
    again = _reference_slice(threads=1)
    assert (again["features_sha256"], again["bundle_sha256"]) == mine, "the pin leaves this CPU thread-dependent"
    if mine != (want["features_sha256"], want["bundle_sha256"]):
        warnings.warn(f"{got['cpu_vendor']} CPU: the reference slice differs from the hashes published on "
                      f"{want['cpu_vendor']} (expected across vendors, docs/reproducibility.md)")