"""One CPU code path on every machine (rmroute.harness.determinism), and the committed cross-machine check:
a slice of the offline router's features and bundle, recomputed here, must hash as committed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from rmroute.harness.determinism import PINS, arrays_sha256, fixed_threads, profile
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


def test_reference_slice_hashes_match_the_committed_ones():
    """Recompute the slice in a fresh process (an empty embedding cache, so the encoder really runs)
    and compare with results/reference-hashes.json; a mismatch means this machine computes other
    bits than the one that published the runs."""
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    proc = subprocess.run([sys.executable, "-m", "rmroute.harness.reference_slice"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    got = json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])
    want = json.loads((REPO / "results" / "reference-hashes.json").read_text())
    assert got["compute"]["profile"] == "avx2", got["compute"]
    assert (got["features_sha256"], got["bundle_sha256"]) == (want["features_sha256"], want["bundle_sha256"]), (
        f"this machine computes other bits than the published ones: {got} vs {want}")
    assert proc.returncode == 0, proc.stderr[-2000:]
