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
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from .validate import choice, in_range, positive_int, strict_bool

ADVANTAGE_ESTIMATORS = ("returns", "dae", "gae")
OPTIMIZER_TYPES = ("adam", "adamw", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "linear", "cosine")
MATMUL_PRECISIONS = ("highest", "high", "medium")
ACTINGS = ("numpy", "torch")

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
    lr_schedule: str = "constant"
    """How the policy and value step sizes change over a run's budget: constant, linear or cosine decay."""
    lr_final_fraction: float = 0.0
    """With a decaying ``lr_schedule``: the step sizes at the end of the budget, as a fraction of the start."""
    matmul_precision: str = "highest"
    """The update's float32 matrix products, as ``torch.set_float32_matmul_precision`` names them: ``highest``
    computes them in float32; ``medium`` lets PyTorch round their inputs to bfloat16 where the hardware multiplies
    that faster (oneDNN on CPUs with AMX, GPUs; an AMD EPYC with AVX-512 BF16 keeps float32), ``high`` to TF32
    (GPUs). Acting and evaluation always compute in float32."""
    acting: str = "numpy"
    """How rollouts and evaluations compute the policy's actions, in float32 either way: ``numpy`` (NumPy, its BLAS
    for the products; a rollout's action noise drawn from the agent's generator once per rollout) or ``torch``
    (PyTorch operators, the noise drawn on every step). They compute the same policy and differ by float rounding
    (means within 1e-5 relative), so a run reproduces exactly only on the path it ran on. A ``numpy`` policy call
    costs about a quarter of a ``torch`` one between simulator steps on one CPU core (BENCHMARKS.md); ``torch`` is
    how every run stored before this option (2026-12-07) acted, and a stored configuration without the key acts so
    (:data:`STORED_BEFORE`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy_layer_sizes", _sizes("policy_layer_sizes", self.policy_layer_sizes))
        object.__setattr__(self, "value_layer_sizes", _sizes("value_layer_sizes", self.value_layer_sizes))
        choice("advantage_estimator", self.advantage_estimator, ADVANTAGE_ESTIMATORS)
        choice("optimizer_type", self.optimizer_type, OPTIMIZER_TYPES)
        choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        choice("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)
        choice("acting", self.acting, ACTINGS)
        in_range("lr_final_fraction", self.lr_final_fraction, 0.0, 1.0)
        for name in ("normalize_advantages", "shared_encoder"):
            strict_bool(name, getattr(self, name))
        in_range("gamma", self.gamma, 0.0, 1.0, low_open=True)
        in_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        in_range("topk_fraction", self.topk_fraction, 0.0, 1.0, low_open=True)
        in_range("sgd_momentum", self.sgd_momentum, 0.0, 1.0)
        for name in ("policy_lr", "value_lr", "temperature_lr", "alpha_lr", "max_grad_norm"):
            in_range(name, getattr(self, name), 0.0, math.inf)
        for name in ("temperature_init", "alpha_init", "epsilon_eta", "epsilon_mu", "epsilon_sigma", "obs_clip"):
            in_range(name, getattr(self, name), 0.0, math.inf, low_open=True)
        in_range("init_log_std", self.init_log_std, -5.0, 2.0)
        positive_int("m_steps", self.m_steps)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VMPOConfig:
        """Back from a stored dict (a trial's record, a run file, a checkpoint); a key it lacks because it was
        stored before the field existed takes the value runs had then (:data:`STORED_BEFORE`), else the default."""
        return super().from_dict({**STORED_BEFORE, **data})


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
    """At each evaluation, write the resume state (``resume.pt``) and the best agent (``best.pt``) to the output."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError("env_id must be a non-empty string such as 'Hopper-v5'")
        for name in ("rollout_steps", "num_envs", "eval_interval", "eval_episodes"):
            positive_int(name, getattr(self, name))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        in_range("reward_scale", self.reward_scale, 0.0, math.inf, low_open=True)
        strict_bool("checkpoints", self.checkpoints)
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    @property
    def batch_size(self) -> int:
        return self.rollout_steps * self.num_envs

    @property
    def resolved_eval_seed(self) -> int:
        return self.seed + 10_000 if self.eval_seed is None else self.eval_seed


RUN_IDENTITY_EXCLUDES = ("seed", "device", "eval_seed")
"""TrainConfig fields that differ between runs of one configuration (:meth:`RunConfig.identity` leaves them out)."""

STORED_BEFORE: Mapping[str, Any] = {"acting": "torch"}
"""VMPOConfig fields whose default is not what configurations stored before the field ran at: the value those ran
at, which :meth:`VMPOConfig.from_dict` gives a stored configuration without the key (so it reproduces)."""

AGENT_IDENTITY_EXCLUDES = ("acting",)
"""VMPOConfig fields that say how a configuration is computed, not what it is (:meth:`RunConfig.identity` leaves
them out: a run acting with ``torch`` and one acting with ``numpy`` are runs of one configuration)."""

IDENTITY_SINCE = ("matmul_precision",)
"""VMPOConfig fields added after configurations were first stored: at their default :meth:`RunConfig.identity` leaves
them out, so a configuration stored before them keeps its key (confirmations match units and candidates by it)."""


@dataclass(frozen=True)
class RunConfig:
    """A complete run: the agent, the trainer around it and the env-step budget.

    The one shape of what a trial records, a confirmation unit trains and an exported run file
    holds; stored as :meth:`to_dict` (``{"agent": {...}, "train": {...}, "total_steps": N}``).
    """

    agent: VMPOConfig
    train: TrainConfig
    total_steps: int

    def __post_init__(self) -> None:
        positive_int("total_steps", self.total_steps)

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent.to_dict(), "train": self.train.to_dict(), "total_steps": int(self.total_steps)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Back from :meth:`to_dict`; a missing or unknown key raises ``ValueError`` naming it."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a run configuration must be a mapping with agent, train and total_steps, got {data!r}")
        unknown = sorted(set(data) - {"agent", "train", "total_steps"})
        missing = [k for k in ("agent", "train", "total_steps") if k not in data]
        if unknown or missing:
            raise ValueError(
                f"run configuration: unknown key(s) {unknown}, missing {missing}; it holds agent, train, total_steps"
            )
        return cls(VMPOConfig.from_dict(data["agent"]), TrainConfig.from_dict(data["train"]), data["total_steps"])

    def identity(self) -> str:
        """The configuration without what differs between its runs (:data:`RUN_IDENTITY_EXCLUDES`) or its budget:
        two runs of one configuration on two seeds have the same identity."""
        agent = {
            k: v
            for k, v in self.agent.to_dict().items()
            if k not in AGENT_IDENTITY_EXCLUDES and not (k in IDENTITY_SINCE and v == getattr(VMPO_DEFAULTS, k))
        }
        train = {k: v for k, v in self.train.to_dict().items() if k not in RUN_IDENTITY_EXCLUDES}
        return json.dumps({"agent": agent, "train": train}, sort_keys=True)


def field_names(cls: type) -> tuple[str, ...]:
    """Names of a config dataclass's fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def pick_fields(cls: type[_C], values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` (for example a constructor's ``locals()``) that are fields of ``cls``."""
    names = set(field_names(cls))
    return {k: v for k, v in values.items() if k in names}


def _sizes(name: str, value: Any) -> tuple[int, ...]:
    sizes = tuple(value)
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    return sizes


VMPO_DEFAULTS = VMPOConfig()
"""The default agent configuration; constructors take their default values from it."""
TRAIN_DEFAULTS = TrainConfig()
"""The default trainer configuration; constructors take their default values from it."""
