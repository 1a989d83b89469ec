"""Value targets and advantages for a ``T x N`` rollout (pure numpy).

``dones[t] = 1`` means transition ``t`` ended its episode, so nothing is bootstrapped
past it. Truncated episodes are handled by the caller, which adds
``gamma * V(final_obs)`` to the reward of the truncating step and marks it done.
"""

from __future__ import annotations

import numpy as np

from .config import ADVANTAGE_ESTIMATORS


def discounted_returns(rewards, dones, last_values, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma (1 - d_t) G_{t+1}``, bootstrapped from ``G_T = V(s_T)``."""
    rewards, notdone = np.asarray(rewards, dtype=np.float64), 1.0 - np.asarray(dones, dtype=np.float64)
    out = np.empty_like(rewards)
    running = np.asarray(last_values, dtype=np.float64)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * notdone[t] * running
        out[t] = running
    return out


def td_targets(rewards, dones, values, last_values, gamma: float) -> np.ndarray:
    """One-step targets ``r_t + gamma (1 - d_t) V(s_{t+1})``."""
    values = np.asarray(values, dtype=np.float64)
    next_values = np.concatenate([values[1:], np.asarray(last_values, dtype=np.float64)[None]], axis=0)
    return np.asarray(rewards, dtype=np.float64) + gamma * (1.0 - np.asarray(dones, dtype=np.float64)) * next_values


def gae_advantages(rewards, dones, values, last_values, gamma: float, lam: float) -> np.ndarray:
    """GAE(lambda): ``A_t = delta_t + gamma lambda (1 - d_t) A_{t+1}``."""
    values = np.asarray(values, dtype=np.float64)
    notdone = 1.0 - np.asarray(dones, dtype=np.float64)
    deltas = td_targets(rewards, dones, values, last_values, gamma) - values
    out = np.empty_like(deltas)
    running = np.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * notdone[t] * running
        out[t] = running
    return out


def compute_targets(
    rewards, dones, values, last_values, gamma: float, estimator: str, gae_lambda: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(targets, advantages)``, both ``T x N`` float64, with ``advantage = target - V``."""
    values = np.asarray(values, dtype=np.float64)
    if estimator == "returns":
        targets = discounted_returns(rewards, dones, last_values, gamma)
    elif estimator == "dae":
        targets = td_targets(rewards, dones, values, last_values, gamma)
    elif estimator == "gae":
        targets = gae_advantages(rewards, dones, values, last_values, gamma, gae_lambda) + values
    else:
        raise ValueError(f"unknown advantage_estimator {estimator!r}; valid: {', '.join(ADVANTAGE_ESTIMATORS)}")
    return targets, targets - values
