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


def test_test_decision_does_not_explore():
    """select_greedy sends every item to the RM with the best mean and draws nothing."""
    router = EpsilonGreedyRouter(n_arms=3, dim=2, seed=0, epsilon=0.9)
    X = np.zeros((200, 2))
    router.update(X[:3], np.array([0, 1, 2]), np.array([0.1, 0.7, 0.4]))
    before = router.rng.bit_generator.state
    assert router.select_greedy(X).arms.tolist() == [1] * 200
    assert router.rng.bit_generator.state == before
    assert np.mean(router.select(X).arms == 1) < 0.8  # select still explores (epsilon 0.9)


def test_update_learns_per_domain_from_the_items_of_its_rows():
    router = EpsilonGreedyRouter(n_arms=2, dim=1, seed=0)
    items = [{"domain": "math"}, {"domain": "chat"}, {"domain": "math"}, {}]
    router.update(np.zeros((4, 1)), np.array([0, 0, 1, 1]), np.array([1.0, 0.0, 0.5, 0.3]), items=items)
    router.update(np.zeros((1, 1)), np.array([0]), np.array([0.0]), items=[{"domain": "math"}])
    np.testing.assert_allclose(router.domain_means("math"), [0.5, 0.5])  # (1 + 0) / 2 and 0.5
    np.testing.assert_allclose(router.domain_means("chat"), [0.0, np.nan])
    assert np.isnan(router.domain_means("code")).all()
    np.testing.assert_allclose(router.means(), [1 / 3, 0.4])  # the item without a domain counts here
