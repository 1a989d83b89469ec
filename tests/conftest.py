"""Shared fixtures: one torch thread, and a tiny deterministic env for rollout semantics."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch

torch.set_num_threads(1)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class ChainEnv(gym.Env):
    """obs = [step count, 1]; reward = step count after the step; terminates at ``terminate_at``.

    A no-op autoreset step would show up as a reward of 0 or a count that does not go up
    by one, so the tests can tell every stored transition apart.
    """

    metadata = {"render_modes": []}

    def __init__(self, terminate_at: int | None = None) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.terminate_at = terminate_at
        self.count = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0, 1.0]), {}

    def step(self, action):
        self.count += 1
        terminated = self.terminate_at is not None and self.count == self.terminate_at
        return np.array([float(self.count), 1.0]), float(self.count), terminated, False, {}


gym.register("VmpoTest/ChainTruncate-v0", entry_point=ChainEnv, max_episode_steps=5)
gym.register("VmpoTest/ChainTerminate-v0", entry_point=ChainEnv, kwargs={"terminate_at": 4}, max_episode_steps=100)
gym.register("VmpoTest/Discrete-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv", max_episode_steps=50)


@pytest.fixture
def tiny_agent_kwargs():
    return dict(policy_layer_sizes=(32, 32), value_layer_sizes=(32, 32), seed=0)
