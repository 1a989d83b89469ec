"""Deterministic evaluation: episodes run in parallel, one per environment, raw returns."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, Sequence

import gymnasium as gym
import numpy as np

from . import metrics
from .envs import action_scaler, make_eval_envs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Raw (unscaled) returns and lengths of one evaluation's episodes."""

    returns: tuple[float, ...]
    lengths: tuple[int, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    @property
    def steps(self) -> int:
        return int(sum(self.lengths))

    def as_metrics(self) -> Dict[str, float]:
        return {
            metrics.EVAL_RETURN: self.mean,
            metrics.EVAL_RETURN_STD: self.std,
            metrics.EVAL_LENGTH: float(np.mean(self.lengths)),
        }


def run_episodes(
    agent, envs: Sequence[gym.Env], seeds: Sequence[int], on_step: Callable[[np.ndarray], None] | None = None
) -> EvalResult:
    """One deterministic episode per env, stepped together; finished envs are not stepped again.

    The agent's ``sampler(deterministic=True)``, taken once (the parameters do not change during an
    evaluation), gives the policy mean for the active envs in one batched call per round. The same agent and
    seeds give the same returns.
    ``on_step(indices)`` is called after the reset (every env) and after each round of steps
    (the envs stepped in it, the last step of an episode included), e.g. to render them.
    """
    scale = action_scaler(envs[0].action_space)
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]).astype(np.float32)
    returns = np.zeros(len(envs))
    lengths = np.zeros(len(envs), dtype=np.int64)
    active = np.ones(len(envs), dtype=bool)
    if on_step is not None:
        on_step(np.arange(len(envs)))
    sample = agent.sampler(deterministic=True)
    while active.any():
        idx = np.flatnonzero(active)
        actions, _ = sample(obs[idx])
        actions = scale(actions)
        for j, i in enumerate(idx):
            o, r, terminated, truncated, _ = envs[i].step(actions[j])
            returns[i] += r
            lengths[i] += 1
            obs[i] = o
            if terminated or truncated:
                active[i] = False
        if on_step is not None:
            on_step(idx)
    return EvalResult(tuple(float(r) for r in returns), tuple(int(n) for n in lengths))


class Evaluator:
    """Owns ``episodes`` environments, created once and reused by every evaluation."""

    def __init__(self, env_id: str, episodes: int, seed: int) -> None:
        self.seeds = [seed + i for i in range(episodes)]
        self.envs = make_eval_envs(env_id, episodes)

    def __call__(self, agent) -> EvalResult:
        return run_episodes(agent, self.envs, self.seeds)

    def close(self) -> None:
        for env in self.envs:
            env.close()
