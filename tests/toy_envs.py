"""Tiny deterministic envs that search tests drive through the CLI (``tests.toy_envs:Survive-v0``).

Survive: reward 1 per step, the episode ends as soon as ``|action| > 0.5``, at most 50
steps. A fresh policy (mean near 0) survives all 50 steps in a deterministic evaluation;
a policy wrecked by a huge learning rate dies at once. So a trial's evaluation curve is
known in advance: that makes pruning testable without luck.
"""

import gymnasium as gym
import numpy as np


class SurviveEnv(gym.Env):
    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, self.np_random.normal() * 0.01]), {}

    def step(self, action):
        self.t += 1
        dead = bool(abs(float(np.asarray(action).reshape(-1)[0])) > 0.5)
        return np.array([self.t / 50.0, self.np_random.normal() * 0.01]), 1.0, dead, False, {}


if "Survive-v0" not in gym.registry:
    gym.register("Survive-v0", entry_point=SurviveEnv, max_episode_steps=50)
