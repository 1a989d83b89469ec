import numpy as np
import pytest

from vmpo_tune.targets import compute_targets

# The hand-computed case of ARCHITECTURE.md, "V-MPO as implemented" (gamma 0.9).
REWARDS = np.array([[1, 2], [0.5, -1], [3, 0]])
DONES = np.array([[0, 0], [0, 1], [1, 0]])
VALUES = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
LAST = np.array([0.7, 0.8])


def test_returns_match_hand_computation():
    targets, adv = compute_targets(REWARDS, DONES, VALUES, LAST, 0.9, "returns")
    np.testing.assert_allclose(targets, [[3.88, 1.10], [3.20, -1.00], [3.00, 0.72]], atol=1e-12)
    np.testing.assert_allclose(adv, targets - VALUES)


def test_dae_matches_hand_computation():
    targets, adv = compute_targets(REWARDS, DONES, VALUES, LAST, 0.9, "dae")
    np.testing.assert_allclose(targets, [[1.27, 2.36], [0.95, -1.00], [3.00, 0.72]], atol=1e-12)
    np.testing.assert_allclose(adv, targets - VALUES)


def test_gae_lambda_limits_equal_dae_and_returns():
    rng = np.random.default_rng(0)
    rewards, values, last = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)), rng.normal(size=3)
    dones = (rng.random((7, 3)) < 0.3).astype(float)
    for lam, other in ((0.0, "dae"), (1.0, "returns")):
        gae = compute_targets(rewards, dones, values, last, 0.97, "gae", lam)
        ref = compute_targets(rewards, dones, values, last, 0.97, other)
        np.testing.assert_allclose(gae[0], ref[0], atol=1e-12)
        np.testing.assert_allclose(gae[1], ref[1], atol=1e-12)


def test_gae_hand_computed_single_env():
    # gamma 0.5, lambda 0.5, no dones: deltas = r + 0.5 V' - V
    r, v, last = np.array([[1.0], [2.0]]), np.array([[0.0], [1.0]]), np.array([2.0])
    d1 = 2.0 + 0.5 * 2.0 - 1.0  # 2.0
    d0 = 1.0 + 0.5 * 1.0 - 0.0  # 1.5
    targets, adv = compute_targets(r, np.zeros((2, 1)), v, last, 0.5, "gae", 0.5)
    np.testing.assert_allclose(adv[:, 0], [d0 + 0.25 * d1, d1])
    np.testing.assert_allclose(targets, adv + v)


def test_unknown_estimator_names_valid_ones():
    with pytest.raises(ValueError, match="returns, dae, gae"):
        compute_targets(REWARDS, DONES, VALUES, LAST, 0.9, "vtrace")
