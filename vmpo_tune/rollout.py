"""Preallocated ``T x N`` rollout storage and the typed batch it turns into."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .targets import compute_targets


class Batch(NamedTuple):
    """A flattened ``B = T * N`` batch, the input of :meth:`VMPOAgent.update`."""

    obs: np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    advantages: np.ndarray
    old_means: np.ndarray
    old_log_stds: np.ndarray


class RolloutBuffer:
    """Holds one rollout; truncations are folded into the rewards when the batch is built.

    ``truncated`` steps record the true final observation; :meth:`bootstrap_obs` lists
    them so the caller can evaluate ``V`` on all of them in one batch, and
    :meth:`to_batch` adds ``gamma * V(final_obs)`` to those rewards and cuts the return
    there (terminations bootstrap from nothing).
    """

    def __init__(self, steps: int, num_envs: int, obs_dim: int, act_dim: int) -> None:
        self.steps, self.num_envs = steps, num_envs
        self.obs = np.zeros((steps, num_envs, obs_dim), dtype=np.float32)
        self.actions = np.zeros((steps, num_envs, act_dim), dtype=np.float32)
        self.means = np.zeros((steps, num_envs, act_dim), dtype=np.float32)
        self.rewards = np.zeros((steps, num_envs), dtype=np.float64)
        self.dones = np.zeros((steps, num_envs), dtype=np.float64)
        self._truncated: list[tuple[int, int, np.ndarray]] = []
        self.t = 0

    def reset(self) -> None:
        self.t = 0
        self._truncated.clear()

    @property
    def full(self) -> bool:
        return self.t >= self.steps

    def add(self, obs, actions, means, rewards, terminated, truncated, final_obs: list) -> None:
        t = self.t
        self.obs[t], self.actions[t], self.means[t], self.rewards[t] = obs, actions, means, rewards
        self.dones[t] = np.logical_or(terminated, truncated)
        for i in np.flatnonzero(np.logical_and(truncated, np.logical_not(terminated))):
            self._truncated.append((t, int(i), final_obs[i]))
        self.t = t + 1

    def bootstrap_obs(self) -> np.ndarray:
        """Final observations of truncated (not terminated) steps, in insertion order."""
        if not self._truncated:
            return np.zeros((0, self.obs.shape[-1]), dtype=np.float32)
        return np.stack([o for _, _, o in self._truncated]).astype(np.float32)

    def to_batch(
        self,
        values: np.ndarray,
        last_values: np.ndarray,
        bootstrap_values: np.ndarray,
        log_std: np.ndarray,
        gamma: float,
        estimator: str,
        gae_lambda: float,
        reward_scale: float = 1.0,
    ) -> Batch:
        """Targets and advantages for the stored rollout, flattened to ``T * N``."""
        rewards = self.rewards * reward_scale
        for (t, i, _), v in zip(self._truncated, bootstrap_values):
            rewards[t, i] += gamma * float(v)
        targets, advantages = compute_targets(
            rewards, self.dones, values.reshape(self.steps, self.num_envs), last_values, gamma, estimator, gae_lambda
        )
        n = self.steps * self.num_envs
        return Batch(
            obs=self.obs.reshape(n, -1),
            actions=self.actions.reshape(n, -1),
            returns=targets.reshape(n).astype(np.float32),
            advantages=advantages.reshape(n).astype(np.float32),
            old_means=self.means.reshape(n, -1),
            old_log_stds=np.broadcast_to(log_std, (n, log_std.shape[-1])),
        )
