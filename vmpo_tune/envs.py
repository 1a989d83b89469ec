"""Environment creation and the one copy of vector-env info parsing.

Training environments use Gymnasium's *same-step* autoreset: when an episode ends, the
step returns the reset observation and the true final observation sits in
``info["final_obs"]``. No no-op reset step ever reaches a rollout.
"""

from __future__ import annotations

import importlib
import logging
from copy import deepcopy
from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import concatenate, iterate

from . import dmc, simulator

log = logging.getLogger(__name__)


class EnvError(ValueError):
    """An environment id that cannot be used (unknown, or a non-continuous action space)."""


def _resolve_env_id(env_id: str) -> str:
    """``dm_control/DOMAIN/TASK`` becomes ``dm_control/DOMAIN-TASK-v0``; other ids are unchanged."""
    parts = env_id.split("/")
    if len(parts) == 3 and parts[0] == "dm_control":
        return f"dm_control/{parts[1]}-{parts[2]}-v0"
    return env_id


def check_env_id(env_id: str) -> str:
    """Resolve an id and make sure it is registered; raises :class:`EnvError` naming close matches.

    Gymnasium's ``module:EnvId`` form is supported: the module is imported first (it
    registers its envs), and the id is returned unchanged so every process imports it.
    """
    if ":" in env_id:
        module, name = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EnvError(f"cannot import {module!r} for env {env_id!r}: {exc}; check the module path") from None
        check_env_id(name)
        return env_id
    if dmc.is_dmc(env_id):
        try:
            return dmc.resolve(env_id)
        except dmc.DmcError as exc:
            raise EnvError(str(exc)) from None
    resolved = env_id
    if resolved not in gym.registry:
        import difflib

        close = difflib.get_close_matches(resolved, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.envs.registry for valid ids"
        raise EnvError(f"unknown env id {env_id!r}{hint}")
    return resolved


def check_continuous(env: gym.Env | gym.vector.VectorEnv, env_id: str) -> None:
    """V-MPO here needs a ``Box`` action space; anything else is a ``ValueError``."""
    space = getattr(env, "single_action_space", env.action_space)
    if not isinstance(space, gym.spaces.Box):
        raise EnvError(
            f"env {env_id!r} has a {type(space).__name__} action space; vmpo-tune trains continuous (Box) "
            "action spaces only: pick a continuous-control env such as Hopper-v5"
        )
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise EnvError(f"env {env_id!r} needs a flat Box observation space, got {obs_space}")


def _make(env_id: str, **kwargs) -> gym.Env:
    """One environment of a checked id (DeepMind Control tasks with a flat observation, see :mod:`.dmc`)."""
    resolved = _resolve_env_id(env_id)
    simulator.route_warnings()
    return dmc.make(resolved, **kwargs) if dmc.is_dmc(resolved) else gym.make(resolved, **kwargs)


def check_env(env_id: str) -> str:
    """Build the env once and check its spaces (what a study's first trial would find); returns the resolved id."""
    resolved = check_env_id(env_id)
    env = _make(resolved)
    try:
        check_continuous(env, env_id)
    finally:
        env.close()
    return resolved


def _make_env(gym_id: str, seed: int) -> Callable[[], gym.Env]:
    """A thunk creating one environment whose action space is seeded with ``seed``."""

    def thunk() -> gym.Env:
        env = _make(gym_id)
        env.action_space.seed(seed)
        return env

    return thunk


class TrainingVectorEnv(gym.vector.SyncVectorEnv):
    """Gymnasium's ``SyncVectorEnv`` with same-step autoreset, without merging every step's info dicts.

    ``SyncVectorEnv.step`` merges each sub-environment's ``info`` into batched arrays on every step (for
    Hopper-v5, five keys per environment per step: about 8% of a vector step on one core). Training reads only
    what an episode's end leaves, ``final_obs`` and ``final_info``, so this step keeps those and drops the
    per-step keys. Everything else (the sub-environments, their order, the observations, rewards and flags, the
    state :mod:`.envstate` saves) is the parent's, bit for bit; ``tests/test_envs.py`` checks it step by step
    against ``SyncVectorEnv``. Written against the pinned Gymnasium (1.4.0), whose ``step`` this follows. An
    autoreset's own ``info`` (from ``reset``) is dropped too: nothing reads it.
    """

    snapshot_kind = "SyncVectorEnv"
    """Its state is the parent's: :mod:`.envstate` names it so, and checkpoints taken before this class existed
    (with a plain ``SyncVectorEnv``) restore into it."""

    def step(self, actions):
        if self.autoreset_mode != gym.vector.AutoresetMode.SAME_STEP:
            return super().step(actions)
        infos: dict = {}
        for i, (action, env) in enumerate(zip(iterate(self.action_space, actions), self.envs, strict=True)):
            obs, self._rewards[i], self._terminations[i], self._truncations[i], info = env.step(action)
            if self._terminations[i] or self._truncations[i]:
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, _ = env.reset()
            self._env_obs[i] = obs
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return (
            deepcopy(self._observations) if self.copy else self._observations,
            np.copy(self._rewards),
            np.copy(self._terminations),
            np.copy(self._truncations),
            infos,
        )


def make_vector_env(env_id: str, num_envs: int, seed: int) -> gym.vector.SyncVectorEnv:
    """Synchronous vector env (:class:`TrainingVectorEnv`) with same-step autoreset and episode statistics."""
    resolved = check_env_id(env_id)
    envs = TrainingVectorEnv(
        [_make_env(resolved, seed + i) for i in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    try:
        check_continuous(envs, env_id)
    except EnvError:
        envs.close()
        raise
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def make_eval_envs(env_id: str, n: int, render_size: tuple[int, int] | None = None) -> list[gym.Env]:
    """``n`` independent environments for parallel evaluation episodes (rendering ``(width, height)``
    RGB pictures when ``render_size`` is given; rendering changes no simulation state)."""
    resolved = check_env_id(env_id)
    render = {}
    if render_size is not None:
        render = {"render_mode": "rgb_array", "width": render_size[0], "height": render_size[1]}
    envs = [_make(resolved, **render) for _ in range(n)]
    check_continuous(envs[0], env_id)
    return envs


def mujoco_model(env: gym.Env):
    """The ``MjModel`` an environment simulates (Gymnasium's MuJoCo envs and DeepMind Control tasks)."""
    base = env.unwrapped
    return base.model if hasattr(base, "model") else base._env.physics.model.ptr


def env_dims(env: gym.Env | gym.vector.VectorEnv) -> tuple[int, int]:
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    act_space = getattr(env, "single_action_space", env.action_space)
    return int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))


def action_scaler(space: gym.spaces.Box) -> Callable[[np.ndarray], np.ndarray]:
    """Map policy outputs (clipped to [-1, 1]) onto the env's action bounds."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if np.all(low == -1.0) and np.all(high == 1.0):
        return lambda a: np.clip(a, -1.0, 1.0)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return lambda a: a
    center, half = (high + low) / 2.0, (high - low) / 2.0
    return lambda a: (center + half * np.clip(a, -1.0, 1.0)).astype(space.dtype)


def _iter_final_info_entries(infos) -> list[tuple[int, dict]]:
    """Yield (env_index, final_info_dict) entries across possible final_info layouts.

    Gymnasium 1.x puts a dict of arrays with a ``_final_info`` mask in ``infos``;
    0.29 used an object array (or list) of per-env dicts.
    """
    if not infos or "final_info" not in infos:
        return []
    final = infos["final_info"]
    if isinstance(final, dict):
        mask = np.asarray(infos.get("_final_info", []), dtype=bool)
        entries = []
        for i in np.flatnonzero(mask):
            entries.append((int(i), {k: v[i] for k, v in final.items() if not k.startswith("_") and _has(final, k, i)}))
        return entries
    return [(i, item) for i, item in enumerate(final) if item is not None]


def _has(d: dict, key: str, i: int) -> bool:
    mask = d.get(f"_{key}")
    return True if mask is None else bool(np.asarray(mask)[i])


def _extract_final_observations(infos, num_envs: int) -> list[np.ndarray | None]:
    """Extract per-env terminal observations from vector-env info dict."""
    out: list[np.ndarray | None] = [None] * num_envs
    if infos and "final_obs" in infos:
        mask = np.asarray(infos.get("_final_obs", np.ones(num_envs, dtype=bool)), dtype=bool)
        for i in np.flatnonzero(mask):
            out[int(i)] = np.asarray(infos["final_obs"][i])
    elif infos and "final_observation" in infos:  # Gymnasium 0.29 layout
        mask = np.asarray(infos.get("_final_observation", np.ones(num_envs, dtype=bool)), dtype=bool)
        for i in np.flatnonzero(mask):
            out[int(i)] = np.asarray(infos["final_observation"][i])
    return out


def _extract_episode_returns(infos) -> list[tuple[int, float]]:
    """Extract per-env episode returns from vector-env info dict."""
    if infos and "episode" in infos:
        episode = infos["episode"]
        mask = np.asarray(infos.get("_episode", np.ones(len(episode["r"]), dtype=bool)), dtype=bool)
        return [(int(i), float(episode["r"][i])) for i in np.flatnonzero(mask)]
    out = []
    for i, entry in _iter_final_info_entries(infos):
        if "episode" in entry:
            out.append((i, float(np.asarray(entry["episode"]["r"]).reshape(-1)[0])))
    return out
