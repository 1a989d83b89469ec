"""Frozen configuration dataclasses: the one place where defaults are defined.

``VMPOConfig`` holds everything the agent needs, ``TrainConfig`` everything the
trainer adds around it. Both round-trip through plain dicts (``to_dict`` /
``from_dict``) so a study, an exported YAML file and a checkpoint all carry the
same complete configuration. Unknown keys and out-of-range values raise
``ValueError`` naming the key and what would be valid.

Learning-rate convention (the search space depends on it): every learning rate
is the per-M-step Adam step size, used as given. Nothing is divided by
``sqrt(m_steps)``; a batch reused ``m_steps`` times simply takes ``m_steps``
optimiser steps. The dual variables (temperature and the two KL multipliers)
are optimised in log space with Adam, so ``temperature_lr`` and ``alpha_lr``
bound the change of ``log(eta)`` / ``log(alpha)`` per M-step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

ADVANTAGE_ESTIMATORS = ("returns", "dae", "gae")
OPTIMIZER_TYPES = ("adam", "adamw", "sgd", "rmsprop")

_C = TypeVar("_C")


class _DictRoundTrip:
    """``to_dict`` / ``from_dict`` shared by the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) that ``from_dict`` turns back into an equal config."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        """Build from a dict; unknown keys raise ``ValueError`` listing the valid ones."""
        valid = field_names(cls)
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; valid keys: {', '.join(valid)}")
        return cls(**data)


@dataclass(frozen=True)
class VMPOConfig(_DictRoundTrip):
    """Hyperparameters of the V-MPO agent (networks, E-step, M-step, duals)."""

    policy_layer_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy MLP (tanh activations)."""
    value_layer_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the value MLP (ignored with ``shared_encoder``)."""
    normalize_advantages: bool = True
    """Standardise advantages per batch before the top-k selection."""
    gamma: float = 0.99
    """Discount factor."""
    advantage_estimator: str = "returns"
    """How targets are computed: ``returns``, ``dae`` (one-step TD) or ``gae``."""
    gae_lambda: float = 0.95
    """GAE lambda (only used by ``gae``)."""
    policy_lr: float = 5e-4
    """Step size of the policy parameters (per M-step)."""
    value_lr: float = 1e-3
    """Step size of the value parameters (per M-step)."""
    topk_fraction: float = 0.5
    """Fraction of the batch, by advantage, that receives positive weight."""
    temperature_init: float = 1.0
    """Initial temperature eta."""
    temperature_lr: float = 1e-4
    """Adam step size of log(eta)."""
    epsilon_eta: float = 0.1
    """Temperature constraint: bound on KL(psi || uniform over top-k)."""
    epsilon_mu: float = 0.01
    """Trust-region bound on the mean KL term."""
    epsilon_sigma: float = 0.01
    """Trust-region bound on the standard-deviation KL term."""
    alpha_lr: float = 1e-4
    """Adam step size of log(alpha_mu) and log(alpha_sigma)."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip, applied to the policy and the value parameters separately (0 disables)."""
    optimizer_type: str = "adam"
    """Optimiser of the network parameters: adam, adamw, sgd or rmsprop."""
    sgd_momentum: float = 0.9
    """Momentum when ``optimizer_type`` is sgd."""
    shared_encoder: bool = False
    """Share the policy trunk with the value head."""
    m_steps: int = 1
    """Gradient steps taken on each batch (the batch is reused against the rollout policy)."""
    alpha_init: float = 1.0
    """Initial KL multipliers alpha_mu and alpha_sigma (the paper starts at 1)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy."""
    obs_clip: float = 10.0
    """Normalised observations are clipped to +-obs_clip."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy_layer_sizes", _sizes("policy_layer_sizes", self.policy_layer_sizes))
        object.__setattr__(self, "value_layer_sizes", _sizes("value_layer_sizes", self.value_layer_sizes))
        _choice("advantage_estimator", self.advantage_estimator, ADVANTAGE_ESTIMATORS)
        _choice("optimizer_type", self.optimizer_type, OPTIMIZER_TYPES)
        _in_range("gamma", self.gamma, 0.0, 1.0, low_open=True)
        _in_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        _in_range("topk_fraction", self.topk_fraction, 0.0, 1.0, low_open=True)
        _in_range("sgd_momentum", self.sgd_momentum, 0.0, 1.0)
        for name in ("policy_lr", "value_lr", "temperature_lr", "alpha_lr", "max_grad_norm"):
            _in_range(name, getattr(self, name), 0.0, math.inf)
        for name in ("temperature_init", "alpha_init", "epsilon_eta", "epsilon_mu", "epsilon_sigma", "obs_clip"):
            _in_range(name, getattr(self, name), 0.0, math.inf, low_open=True)
        _in_range("init_log_std", self.init_log_std, -5.0, 2.0)
        _positive_int("m_steps", self.m_steps)



@dataclass(frozen=True)
class TrainConfig(_DictRoundTrip):
    """What the trainer adds around the agent: environment, rollout, evaluation."""

    env_id: str = "Hopper-v5"
    """Gymnasium id; ``dm_control/DOMAIN/TASK`` is resolved to ``dm_control/DOMAIN-TASK-v0``."""
    seed: int = 0
    """Seeds the networks, the action noise and the training environments."""
    rollout_steps: int = 256
    """Steps T per environment in one rollout; a batch holds T * num_envs transitions."""
    num_envs: int = 1
    """Training environments stepped together (one process)."""
    device: str = "cpu"
    """Torch device for the networks: cpu, cuda or cuda:N."""
    eval_interval: int = 50_000
    """Evaluate every this many env steps (and always at the end of training)."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes, run in parallel."""
    eval_seed: int | None = None
    """Seed of the evaluation episodes; None means ``seed + 10_000``."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before the targets are computed (evaluation reports raw returns)."""
    checkpoints: bool = True
    """Write ``last.pt`` and ``best.pt`` to the output directory at each evaluation."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError("env_id must be a non-empty string such as 'Hopper-v5'")
        for name in ("rollout_steps", "num_envs", "eval_interval", "eval_episodes"):
            _positive_int(name, getattr(self, name))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        _in_range("reward_scale", self.reward_scale, 0.0, math.inf, low_open=True)
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    @property
    def batch_size(self) -> int:
        return self.rollout_steps * self.num_envs

    @property
    def resolved_eval_seed(self) -> int:
        return self.seed + 10_000 if self.eval_seed is None else self.eval_seed



def field_names(cls: type) -> tuple[str, ...]:
    """Names of a config dataclass's fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def _sizes(name: str, value: Any) -> tuple[int, ...]:
    sizes = tuple(value)
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    return sizes


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def _in_range(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a finite number in {bracket}{low}, {high}], got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
