"""VMPOTrainer: collect -> targets -> update -> evaluate -> checkpoint.

:meth:`VMPOTrainer.iterate` is a generator that yields an :class:`EvalPoint` at each
scheduled evaluation (every ``eval_interval`` env steps and at the end), so a caller
can interleave several seeds or stop at any evaluation: closing the generator closes
the environments. :meth:`VMPOTrainer.train` runs it to the end with an optional
callback that can stop training by returning ``True``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping

import numpy as np
import torch

from . import metrics as M
from ._signature import bind, config_signature, with_self
from .agent import VMPOAgent
from .config import TrainConfig, VMPOConfig, field_names
from .envs import (  # noqa: F401  (documented helpers, importable from here)
    _extract_episode_returns,
    _extract_final_observations,
    _iter_final_info_entries,
    _make_env,
    _resolve_env_id,
    action_scaler,
    check_continuous,
    check_env_id,
    env_dims,
    find_wrapper,
    make_vector_env,
)
from .evaluation import EvalResult, Evaluator, _evaluate_vectorized  # noqa: F401
from .rollout import RolloutBuffer

log = logging.getLogger(__name__)

_SIGNATURE = config_signature(
    configs=[TrainConfig, VMPOConfig],
    positional=(
        "env_id", "seed", "device", "policy_layer_sizes", "value_layer_sizes", "rollout_steps",
        *field_names(VMPOConfig)[2:18], "num_envs", "shared_encoder", "m_steps",
    ),
    required=("env_id", "seed", "device", "policy_layer_sizes", "value_layer_sizes", "rollout_steps"),
    annotations={"device": torch.device},
)  # fmt: skip

CHECKPOINT_LAST, CHECKPOINT_BEST, EVAL_CSV = "last.pt", "best.pt", "evaluations.csv"


@dataclass(frozen=True)
class EvalPoint:
    """One scheduled evaluation: its env-step mark, the result and training metrics since the last one."""

    env_steps: int
    actual_steps: int
    result: EvalResult
    train_metrics: Mapping[str, float]
    wall_time: float
    """Seconds since the previous evaluation point (training and this evaluation)."""
    eval_time: float
    """Seconds this evaluation took."""


@dataclass
class TrainResult:
    """What a training run produced; returns are raw environment returns."""

    final_return: float
    best_return: float
    best_step: int
    env_steps: int
    wall_time: float
    steps_per_second: float
    evaluations: list[EvalPoint] = field(default_factory=list)
    stopped_early: bool = False
    out_dir: str | None = None


class VMPOTrainer:
    """Trains a :class:`VMPOAgent` on a Gymnasium env.

    Takes the documented arguments (``inspect.signature(VMPOTrainer)``) plus keyword-only
    ``eval_interval``, ``eval_episodes``, ``eval_seed``, ``reward_scale``, ``checkpoints``
    and the agent's extra keywords; defaults come from :class:`TrainConfig` and
    :class:`VMPOConfig`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = bind(_SIGNATURE, args, kwargs)
        device = torch.device(values.pop("device"))
        train_keys = set(field_names(TrainConfig))
        train = {k: v for k, v in values.items() if k in train_keys}
        agent = {k: v for k, v in values.items() if k not in train_keys}
        self._setup(VMPOConfig(**agent), TrainConfig(**train, device=str(device)))

    __init__.__signature__ = with_self(_SIGNATURE)  # type: ignore[attr-defined]

    @classmethod
    def from_configs(cls, agent_config: VMPOConfig, train_config: TrainConfig) -> VMPOTrainer:
        trainer = cls.__new__(cls)
        trainer._setup(agent_config, train_config)
        return trainer

    def _setup(self, agent_config: VMPOConfig, train_config: TrainConfig) -> None:
        self.agent_config, self.config = agent_config, train_config
        device = torch.device(train_config.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
        self.env_id = check_env_id(train_config.env_id)
        probe = _make_env(self.env_id, train_config.seed)()
        try:
            check_continuous(probe, train_config.env_id)
            self.obs_dim, self.act_dim = env_dims(probe)
        finally:
            probe.close()
        self.agent = VMPOAgent.from_config(self.obs_dim, self.act_dim, agent_config, device, seed=train_config.seed)
        self.env_steps = 0
        self._best_return = -math.inf

    # ------------------------------------------------------------------ public

    def train(
        self,
        total_steps: int,
        out_dir: str | os.PathLike | None,
        callback: Callable[[int, EvalResult], bool | None] | None = None,
        resume: bool = False,
    ) -> TrainResult:
        """Train for ``total_steps`` env steps; ``callback(env_steps, result)`` returning True stops."""
        start = time.perf_counter()
        start_steps = self.env_steps
        points: list[EvalPoint] = []
        stopped = False
        run = self.iterate(total_steps, out_dir, resume=resume)
        try:
            for point in run:
                points.append(point)
                if callback is not None and callback(point.env_steps, point.result):
                    stopped = True
                    break
        finally:
            run.close()
        return summarize(points, self.env_steps, self.env_steps - start_steps, time.perf_counter() - start, stopped,
                         None if out_dir is None else str(out_dir))  # fmt: skip

    def iterate(
        self,
        total_steps: int,
        out_dir: str | os.PathLike | None = None,
        resume: bool = False,
        on_update: Callable[[int, Mapping[str, float]], None] | None = None,
    ) -> Iterator[EvalPoint]:
        """Generator of evaluations; environments are closed when it ends or is closed."""
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        cfg = self.config
        out = None if out_dir is None else Path(out_dir)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        best = -math.inf
        if resume and out is not None and (out / CHECKPOINT_LAST).exists():
            best = self.load_checkpoint(out / CHECKPOINT_LAST)
            log.info("resumed from %s at %d env steps", out / CHECKPOINT_LAST, self.env_steps)
        elif self.env_steps > 0:
            best = self._best_return
        marks = [m for m in _eval_marks(total_steps, cfg.eval_interval) if m > self.env_steps]
        envs = make_vector_env(self.env_id, cfg.num_envs, cfg.seed)
        evaluator = Evaluator(self.env_id, cfg.eval_episodes, cfg.resolved_eval_seed)
        try:
            obs, _ = envs.reset(seed=cfg.seed + self.env_steps)
            buffer = RolloutBuffer(cfg.rollout_steps, cfg.num_envs, self.obs_dim, self.act_dim)
            scale = action_scaler(envs.single_action_space)
            window: dict[str, list[float]] = defaultdict(list)
            t0 = time.perf_counter()
            while self.env_steps < total_steps:
                obs = self._collect(envs, obs, buffer, scale, window)
                for key, value in self.agent.update(self._batch(buffer, obs)._asdict()).items():
                    window[key].append(value)
                self.env_steps += cfg.batch_size
                if on_update is not None:
                    on_update(self.env_steps, window)
                passed = [m for m in marks if m <= self.env_steps]
                if not passed and self.env_steps < total_steps:
                    continue
                mark = passed[-1] if passed else total_steps
                marks = [m for m in marks if m > self.env_steps]
                t_eval = time.perf_counter()
                result = evaluator(self.agent)
                t_eval = time.perf_counter() - t_eval
                train_metrics = {k: float(np.nanmean(v)) for k, v in window.items() if v}
                train_metrics[M.STEPS_PER_SECOND] = cfg.batch_size * len(window[M.ETA]) / (time.perf_counter() - t0)
                window.clear()
                point = EvalPoint(mark, self.env_steps, result, train_metrics, time.perf_counter() - t0, t_eval)
                if not math.isfinite(result.mean):
                    raise FloatingPointError(f"evaluation return is {result.mean}: the run diverged")
                best = self._record(out, point, best)
                t0 = time.perf_counter()
                yield point
        finally:
            envs.close()
            evaluator.close()

    # ------------------------------------------------------------------ phases

    def _collect(self, envs, obs, buffer: RolloutBuffer, scale, window) -> np.ndarray:
        """Fill the buffer with one rollout; returns the observation after it."""
        buffer.reset()
        agent, n = self.agent, self.config.num_envs
        no_final: list = [None] * n
        while not buffer.full:
            actions, means = agent.sample(obs)
            next_obs, rewards, terminated, truncated, infos = envs.step(scale(actions))
            ended = np.logical_or(terminated, truncated)
            final_obs = _extract_final_observations(infos, n) if ended.any() else no_final
            buffer.add(obs, actions, means, rewards, terminated, truncated, final_obs)
            if ended.any():
                window[M.TRAIN_EPISODE_RETURN].extend(r for _, r in _extract_episode_returns(infos))
            obs = next_obs
        return obs

    def _batch(self, buffer: RolloutBuffer, last_obs: np.ndarray):
        """Values of the rollout, the last and the truncated-final observations in one forward pass."""
        rollout_obs = buffer.obs.reshape(-1, self.obs_dim)
        extra = buffer.bootstrap_obs()
        values = np.atleast_1d(self.agent.value(np.concatenate([rollout_obs, last_obs, extra])))
        n_roll, n_env = rollout_obs.shape[0], last_obs.shape[0]
        a = self.agent_config
        return buffer.to_batch(
            values[:n_roll],
            values[n_roll : n_roll + n_env],
            values[n_roll + n_env :],
            self.agent.log_std(),
            a.gamma,
            a.advantage_estimator,
            a.gae_lambda,
            self.config.reward_scale,
        )

    def _record(self, out: Path | None, point: EvalPoint, best: float) -> float:
        """Log the evaluation; write the CSV row and the last / best checkpoints."""
        m = point.train_metrics
        log.info(
            "%s seed %d | steps %d | eval %.1f +- %.1f | %.0f steps/s | eta %.3g kl/mean %.2e kl/std %.2e",
            self.config.env_id, self.config.seed, point.env_steps, point.result.mean, point.result.std,
            m.get(M.STEPS_PER_SECOND, float("nan")), m.get(M.ETA, float("nan")),
            m.get(M.KL_MEAN, float("nan")), m.get(M.KL_STD, float("nan")),
        )  # fmt: skip
        improved = point.result.mean > best
        best = self._best_return = max(best, point.result.mean)
        if out is None:
            return best
        row = {"env_steps": point.env_steps, "actual_steps": point.actual_steps, **point.result.as_metrics(),
               **point.train_metrics}  # fmt: skip
        _append_csv(out / EVAL_CSV, row)
        if self.config.checkpoints:
            self.save_checkpoint(out / CHECKPOINT_LAST, best)
            if improved:
                self.save_checkpoint(out / CHECKPOINT_BEST, best)
        return best

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path: str | os.PathLike, best_return: float = -math.inf) -> None:
        """Agent state plus trainer progress, written atomically."""
        state = {
            "agent": self.agent.state_dict(),
            "train_config": self.config.to_dict(),
            "env_steps": self.env_steps,
            "best_return": best_return,
        }
        tmp = Path(f"{path}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str | os.PathLike) -> float:
        """Restore the agent and the env-step counter; returns the best evaluation so far."""
        state = torch.load(path, map_location=self.agent.device, weights_only=True)
        self.agent.load_state_dict(state["agent"])
        self.env_steps = int(state["env_steps"])
        self._best_return = float(state["best_return"])
        return self._best_return

    def reset(self) -> None:
        """A fresh agent at step 0 (same configs and seed)."""
        self._setup(self.agent_config, self.config)


def summarize(
    points: list[EvalPoint], env_steps: int, new_steps: int, wall: float, stopped: bool, out_dir: str | None
) -> TrainResult:
    means = [p.result.mean for p in points]
    best_i = int(np.argmax(means)) if means else -1
    return TrainResult(
        final_return=means[-1] if means else float("nan"),
        best_return=means[best_i] if means else float("nan"),
        best_step=points[best_i].env_steps if means else 0,
        env_steps=env_steps,
        wall_time=wall,
        steps_per_second=new_steps / wall if wall > 0 else float("nan"),
        evaluations=points,
        stopped_early=stopped,
        out_dir=out_dir,
    )


def _eval_marks(total_steps: int, interval: int) -> list[int]:
    """Env-step marks of the scheduled evaluations: every ``interval`` steps, and ``total_steps``."""
    marks = list(range(interval, total_steps, interval))
    return [*marks, total_steps]


_CSV_FIELDS = (
    "env_steps", "actual_steps", M.EVAL_RETURN, M.EVAL_RETURN_STD, M.EVAL_LENGTH, M.TRAIN_EPISODE_RETURN,
    M.STEPS_PER_SECOND, *M.UPDATE_METRICS,
)  # fmt: skip


def _append_csv(path: Path, row: Dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS, restval="", extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)

