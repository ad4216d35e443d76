"""The example plugin's own tests: conformance via rmroute's author kit, plus its behaviour."""

import numpy as np

from rmroute import check_router
from rmroute_example_router import EpsilonGreedyRouter


def test_conformance():
    check_router(EpsilonGreedyRouter, epsilon=0.2)


def test_settles_on_the_best_arm():
    router = EpsilonGreedyRouter(n_arms=3, dim=2, seed=0, epsilon=0.1)
    X = np.zeros((50, 2))
    truth = np.array([0.2, 0.8, 0.5])
    for _ in range(40):
        arms = router.select(X).arms
        router.update(X, arms, (router.rng.random(50) < truth[arms]).astype(float))
    assert np.argmax(router.means()) == 1
    share = np.mean(router.select(X).arms == 1)
    assert share > 0.8, share
