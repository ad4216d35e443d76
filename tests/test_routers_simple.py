import numpy as np
import pytest

from rmroute.harness.core.plugins import create


def test_single_always_its_arm():
    r = create("router", "single", n_arms=4, dim=3, seed=0, arm=2)
    sel = r.select(np.ones((5, 3)))
    assert sel.arms.tolist() == [2] * 5 and sel.n_calls.tolist() == [1] * 5
    with pytest.raises(ValueError, match=r"arm must be in \[0, 4\)"):
        create("router", "single", n_arms=4, dim=3, arm=4)


def test_random_is_uniform_and_seeded():
    a = create("router", "random", n_arms=4, dim=2, seed=7).select(np.zeros((20_000, 2))).arms
    b = create("router", "random", n_arms=4, dim=2, seed=7).select(np.zeros((20_000, 2))).arms
    assert np.array_equal(a, b)
    share = np.bincount(a, minlength=4) / a.size
    assert np.all(np.abs(share - 0.25) < 0.015), share  # 5 sigma for n=20000 is ~0.015
