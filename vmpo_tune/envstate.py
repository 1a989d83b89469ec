"""Save and restore the complete state of a training vector env, so a resumed run is exact.

A checkpoint of the agent alone is not enough: the environments are mid-episode, their
random generators have moved on, the time-limit counters and the episode statistics
hold values. :func:`capture` walks every layer of the vector env (the statistics
wrapper, the ``SyncVectorEnv``, and for each sub-environment every wrapper down to the
base env) and keeps each layer's own data:

* plain attributes (numbers, strings, NumPy arrays, and lists, tuples, dicts and deques
  of them): time-limit counters, episode returns and lengths, flags, buffers;
* NumPy random generators, by their bit-generator state;
* MuJoCo's ``MjData``, whole (the integration state *and* the derived quantities some
  rewards read, such as body positions), through MuJoCo's own pickling;
* a DeepMind Control ``Environment`` (inside Shimmy's wrapper): its counters, its task's plain
  attributes and NumPy ``RandomState``, and its physics' ``MjData``, copied back *into* the
  existing physics (dm_control's named views point into that memory).

Links between layers, spaces, specs, renderers and MuJoCo models are left alone (they do
not change while an env runs). An attribute of any other type makes the snapshot
*inexact*: :attr:`EnvSnapshot.inexact` names it, so a caller can say so.

The snapshot is bytes: a compressed pickle that :func:`restore` reads back with an unpickler that
only accepts the types above, so a checkpoint cannot run code.
"""

from __future__ import annotations

import collections
import enum
import io
import logging
import pickle
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

import gymnasium as gym
import numpy as np

from . import simulator

log = logging.getLogger(__name__)

_PLAIN = (type(None), bool, int, float, complex, str, bytes, np.ndarray, np.generic)
_LINKS = frozenset({"env", "envs", "env_fns", "unwrapped"})
_CONSTANT_TYPES: tuple[type, ...] = (gym.Space, gym.envs.registration.EnvSpec, enum.Enum)
_CONSTANT_NAMES = frozenset(
    {
        "spec",
        "metadata",
        "render_mode",
        "_saved_kwargs",
        "_ezpickle_args",
        "_ezpickle_kwargs",
        "_cached_spec",
        "mujoco_renderer",
        "model",
        "observation_structure",
        "fullpath",
    }
)
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "deque"),
    ("mujoco._structs", "MjData"),
    ("builtins", "complex"),
}


@dataclass(frozen=True)
class EnvSnapshot:
    """The state of a vector env; ``inexact`` lists what could not be saved (empty when exact)."""

    data: bytes
    inexact: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return not self.inexact


def layers(vector_env: Any) -> Iterator[tuple[str, Any]]:
    """``(path, object)`` for the vector env, its wrappers, and every sub-env's wrappers and base env."""
    obj, depth = vector_env, 0
    while obj is not None:
        yield f"vector[{depth}]", obj
        subs = getattr(obj, "envs", None)
        if isinstance(subs, list):
            for i, sub in enumerate(subs):
                level = 0
                while sub is not None:
                    yield f"env{i}[{level}]", sub
                    sub, level = getattr(sub, "env", None), level + 1
            return
        obj, depth = getattr(obj, "env", None), depth + 1


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return not isinstance(value, np.ndarray) or value.dtype != object
    if isinstance(value, (list, tuple, collections.deque)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _is_plain(v) for k, v in value.items())
    return False


def _layer_state(path: str, obj: Any, inexact: list[str]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name in _LINKS or name in _CONSTANT_NAMES or isinstance(value, _CONSTANT_TYPES) or callable(value):
            continue
        if isinstance(value, np.random.Generator):
            state[name] = ("rng", value.bit_generator.state)
        elif type(value).__name__ == "MjData":
            state[name] = ("mjdata", value)
        elif _is_dm_control_env(value):
            state[name] = ("dm_control", _dm_control_state(f"{path} {type(obj).__name__}.{name}", value, inexact))
        elif _is_plain(value):
            state[name] = ("plain", value)
        elif isinstance(value, (gym.Env, gym.vector.VectorEnv)):
            continue
        else:
            inexact.append(f"{path} {type(obj).__name__}.{name} ({type(value).__name__})")
    return state


def _is_dm_control_env(value: Any) -> bool:
    return type(value).__module__.startswith("dm_control.") and type(value).__name__ == "Environment"


def _plain_attrs(path: str, obj: Any, skip: frozenset[str], inexact: list[str]) -> dict[str, Any]:
    out = {}
    for name, value in vars(obj).items():
        if name in skip or callable(value):
            continue
        if isinstance(value, np.random.RandomState):
            out[name] = ("random_state", value.get_state())
        elif _is_plain(value):
            out[name] = ("plain", value)
        else:
            inexact.append(f"{path}.{name} ({type(value).__name__})")
    return out


def _dm_control_state(path: str, env: Any, inexact: list[str]) -> dict[str, Any]:
    """A dm_control ``Environment``: its own and its task's attributes, and its physics' ``MjData``."""
    return {
        "env": _plain_attrs(path, env, frozenset({"_task", "_physics"}), inexact),
        "task": _plain_attrs(f"{path}._task", env._task, frozenset(), inexact),
        "mjdata": env._physics.data.ptr,
    }


def _restore_plain_attrs(obj: Any, state: dict[str, Any]) -> None:
    for name, (kind, value) in state.items():
        if kind == "random_state":
            getattr(obj, name).set_state(value)
        else:
            setattr(obj, name, value)


def _restore_dm_control(env: Any, state: dict[str, Any]) -> None:
    mujoco = simulator.load()

    _restore_plain_attrs(env, state["env"])
    _restore_plain_attrs(env._task, state["task"])
    physics = env._physics
    mujoco.mj_copyData(physics.data.ptr, physics.model.ptr, state["mjdata"])


def _kind(obj: Any) -> str:
    """A layer's name in a snapshot: its class name, or the ``snapshot_kind`` of a subclass that holds the same
    state as the class it names (so snapshots of either restore into the other)."""
    return getattr(type(obj), "snapshot_kind", type(obj).__name__)


def capture(vector_env: Any) -> EnvSnapshot:
    """Snapshot every layer of ``vector_env`` (see the module docstring)."""
    inexact: list[str] = []
    states = [(path, _kind(obj), _layer_state(path, obj, inexact)) for path, obj in layers(vector_env)]
    return EnvSnapshot(zlib.compress(pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL), 1), tuple(inexact))


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"an env snapshot may not contain {module}.{name}")
        return super().find_class(module, name)


def restore(vector_env: Any, data: bytes) -> None:
    """Put a :func:`capture` snapshot back into a vector env built the same way (same id, count)."""
    states = _SafeUnpickler(io.BytesIO(zlib.decompress(data))).load()
    current = list(layers(vector_env))
    shape = [(path, _kind(obj)) for path, obj in current]
    if shape != [(path, kind) for path, kind, _ in states]:
        raise ValueError("the env snapshot was taken from a differently built vector env; cannot restore it")
    for (_, obj), (_, _, state) in zip(current, states):
        for name, (kind, value) in state.items():
            if kind == "rng":
                rng = getattr(obj, name, None)
                if not isinstance(rng, np.random.Generator):
                    rng = np.random.Generator(getattr(np.random, value["bit_generator"])())
                rng.bit_generator.state = value
                setattr(obj, name, rng)
            elif kind == "dm_control":
                _restore_dm_control(getattr(obj, name), value)
            else:
                setattr(obj, name, value)
