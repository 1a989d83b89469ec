"""DeepMind Control Suite tasks as flat-observation Gymnasium environments (the ``[dmc]`` extra).

Ids: ``dm_control/DOMAIN-TASK-v0`` (Shimmy's registration) or the documented short form
``dm_control/DOMAIN/TASK``; both name the same task (``dm_control/walker-walk-v0`` ==
``dm_control/walker/walk``). Episodes are the suite's own: 1,000 control steps, rewards in
[0, 1] per step, so returns lie in 0-1,000.

Observations: the suite returns a dictionary; :class:`FlatObservation` concatenates its
entries, each flattened, **in the order the task's ``observation_spec()`` lists them** (the
order the task's code builds them in; not alphabetical). For ``walker-walk`` that is
``orientations`` (14), ``height`` (1), ``velocity`` (9): 24 numbers.

Importing the suite has side effects this module undoes or prevents: dm_control's
``composer`` turns every ``DeprecationWarning`` on for the whole process (the filters are
restored after the import), and without ``MUJOCO_GL`` it tries GLFW and complains about a
missing display (a headless platform is chosen first: EGL or OSMesa when their libraries are
present, else rendering is disabled and only training works).
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import warnings

import gymnasium as gym
import numpy as np

PREFIX = "dm_control/"
INSTALL = "pip install -e '.[dmc]'"


class DmcError(ValueError):
    """A DeepMind Control id that cannot be used (missing extra, unknown domain or task)."""


def is_dmc(env_id: str) -> bool:
    return env_id.startswith(PREFIX)


def _headless_platform() -> str:
    """The headless OpenGL platform whose library is installed (``disabled`` when none is)."""
    for platform, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            return platform
    return "disabled"


@functools.lru_cache(maxsize=1)
def _import_suite():
    """Import dm_control's suite and register Shimmy's ids, without their process-wide side effects."""
    if "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = _headless_platform()
        if os.environ["MUJOCO_GL"] != "disabled":
            os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    filters = list(warnings.filters)
    try:
        import shimmy  # noqa: F401  (registers dm_control/DOMAIN-TASK-v0)
        from dm_control import suite
    except ImportError as exc:
        raise DmcError(f"DeepMind Control tasks need the dmc extra ({exc.name} is missing): {INSTALL}") from None
    finally:
        warnings.filters[:] = filters
        warnings._filters_mutated()  # type: ignore[attr-defined]  (what warnings.simplefilter does after a change)
    return suite


def tasks() -> dict[str, list[str]]:
    """Every suite domain and its tasks."""
    out: dict[str, list[str]] = {}
    for domain, task in _import_suite().ALL_TASKS:
        out.setdefault(domain, []).append(task)
    return out


def resolve(env_id: str) -> str:
    """``dm_control/DOMAIN/TASK`` or ``dm_control/DOMAIN-TASK-v0`` as Shimmy's registered id; a
    :class:`DmcError` naming the valid domains (or the domain's tasks) when there is no such task."""
    rest = env_id[len(PREFIX) :]
    if "/" in rest:
        domain, _, task = rest.partition("/")
    else:
        name = rest[: -len("-v0")] if rest.endswith("-v0") else rest
        domain, _, task = name.partition("-")
    known = tasks()
    if domain not in known:
        raise DmcError(f"unknown DeepMind Control domain {domain!r} in {env_id!r}; domains: {', '.join(sorted(known))}")
    if task not in known[domain]:
        raise DmcError(
            f"unknown task {task!r} for DeepMind Control domain {domain!r} in {env_id!r}; "
            f"{domain} has: {', '.join(sorted(known[domain]))} (ids look like dm_control/{domain}/{known[domain][0]})"
        )
    resolved = f"{PREFIX}{domain}-{task}-v0"
    if resolved not in gym.registry:
        raise DmcError(f"{resolved!r} is not registered: the installed shimmy is too old; {INSTALL}")
    return resolved


class FlatObservation(gym.ObservationWrapper):
    """A suite task's dictionary observation as one float64 vector, keys in ``observation_spec()`` order."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        spec = env.unwrapped._env.observation_spec()
        self.keys = tuple(spec)
        self.sizes = tuple(int(np.prod(spec[k].shape)) for k in self.keys)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (sum(self.sizes),), np.float64)
        # real time: one picture per control step (Shimmy's own value is the control step in milliseconds)
        self.metadata = {**env.metadata, "render_fps": round(1.0 / env.unwrapped._env.control_timestep())}

    def observation(self, observation):
        return np.concatenate([np.asarray(observation[k], dtype=np.float64).ravel() for k in self.keys])


def make(resolved: str, **kwargs) -> gym.Env:
    """One suite environment with a flat observation (``kwargs``: Gymnasium's ``render_mode`` and size)."""
    _import_suite()
    render = {}
    if "width" in kwargs or "height" in kwargs:
        render = {"render_kwargs": {"width": kwargs.pop("width", 320), "height": kwargs.pop("height", 240)}}
    return FlatObservation(gym.make(resolved, **kwargs, **render))
