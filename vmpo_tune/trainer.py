"""VMPOTrainer: collect -> targets -> update -> evaluate -> checkpoint.

:meth:`VMPOTrainer.iterate` is a generator that yields an :class:`EvalPoint` at each
scheduled evaluation (every ``eval_interval`` env steps and at the end), so a caller
can interleave several seeds or stop at any evaluation: closing the generator closes
the environments. :meth:`VMPOTrainer.train` runs it to the end with an optional
callback that can stop training by returning ``True``.

The trainer owns its files and its resume state. At each evaluation it keeps (in
memory, and in its output folder when ``checkpoints`` is on) everything a later run needs to
continue *exactly* as if it had never stopped: the agent (networks, statistics, duals,
optimisers, random generator), the environments' full state and current observations,
the evaluation history and the best agent so far. :meth:`save_state` /
:meth:`load_state` move that state through one opaque file; :meth:`artifacts` lists the
files worth keeping after a run (the best agent's checkpoint and the learning curve).

Why this module is long (about 475 lines): the loop, its evaluation schedule and its resume state
are one piece. What could be cut out already lives elsewhere (the rollout buffers in :mod:`.rollout`,
the targets in :mod:`.targets`, the update in :mod:`.agent`, evaluation in :mod:`.evaluation`, the
environments' state in :mod:`.envstate`); the rest is the order of those calls and what must be saved between them
for a resumed run to equal an uninterrupted one, which reads best in one file.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Tuple

import numpy as np
import torch

from . import envstate, metrics
from .agent import VMPOAgent
from .config import TRAIN_DEFAULTS as T
from .config import VMPO_DEFAULTS as D
from .config import TrainConfig, VMPOConfig, pick_fields
from .envs import (
    _extract_episode_returns,
    _extract_final_observations,
    _make_env,
    action_scaler,
    check_continuous,
    check_env_id,
    env_dims,
    make_vector_env,
)
from .evaluation import EvalResult, Evaluator
from .paths import BEST_CHECKPOINT, CURVE_FILE, STATE_FILE
from .rollout import RolloutBuffer
from .schedules import lr_factor

log = logging.getLogger(__name__)

_STATE_FORMAT = 2
_CSV_FIELDS = (
    "env_steps",
    "actual_steps",
    metrics.EVAL_RETURN,
    metrics.EVAL_RETURN_STD,
    metrics.EVAL_LENGTH,
    metrics.TRAIN_EPISODE_RETURN,
    metrics.STEPS_PER_SECOND,
    metrics.LR_FACTOR,
    *metrics.UPDATE_METRICS,
)


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

    The positional parameters are the documented ones; every parameter after ``env_id``,
    ``seed`` and ``device`` is a field of :class:`~vmpo_tune.config.TrainConfig` or
    :class:`~vmpo_tune.config.VMPOConfig` (documented there) with its default.
    """

    def __init__(
        self,
        env_id: str,
        seed: int,
        device: torch.device | str,
        policy_layer_sizes: Tuple[int, ...],
        value_layer_sizes: Tuple[int, ...],
        rollout_steps: int,
        normalize_advantages: bool = D.normalize_advantages,
        gamma: float = D.gamma,
        advantage_estimator: str = D.advantage_estimator,
        gae_lambda: float = D.gae_lambda,
        policy_lr: float = D.policy_lr,
        value_lr: float = D.value_lr,
        topk_fraction: float = D.topk_fraction,
        temperature_init: float = D.temperature_init,
        temperature_lr: float = D.temperature_lr,
        epsilon_eta: float = D.epsilon_eta,
        epsilon_mu: float = D.epsilon_mu,
        epsilon_sigma: float = D.epsilon_sigma,
        alpha_lr: float = D.alpha_lr,
        max_grad_norm: float = D.max_grad_norm,
        optimizer_type: str = D.optimizer_type,
        sgd_momentum: float = D.sgd_momentum,
        num_envs: int = T.num_envs,
        shared_encoder: bool = D.shared_encoder,
        m_steps: int = D.m_steps,
        *,
        eval_interval: int = T.eval_interval,
        eval_episodes: int = T.eval_episodes,
        eval_seed: int | None = T.eval_seed,
        reward_scale: float = T.reward_scale,
        checkpoints: bool = T.checkpoints,
        alpha_init: float = D.alpha_init,
        init_log_std: float = D.init_log_std,
        obs_clip: float = D.obs_clip,
        lr_schedule: str = D.lr_schedule,
        lr_final_fraction: float = D.lr_final_fraction,
        matmul_precision: str = D.matmul_precision,
        acting: str = D.acting,
    ) -> None:
        values = locals()
        device = torch.device(device)
        train_config = TrainConfig(**{**pick_fields(TrainConfig, values), "device": str(device)})
        self.agent_config, self.config = VMPOConfig(**pick_fields(VMPOConfig, values)), train_config
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
        self.env_id = check_env_id(train_config.env_id)
        probe = _make_env(self.env_id, train_config.seed)()
        try:
            check_continuous(probe, train_config.env_id)
            self.obs_dim, self.act_dim = env_dims(probe)
        finally:
            probe.close()
        self.agent = VMPOAgent.from_config(self.obs_dim, self.act_dim, self.agent_config, device, train_config.seed)
        self.env_steps = 0
        self.best_return, self.best_step = -math.inf, 0
        self.history: list[dict[str, Any]] = []
        """One row per evaluation so far (the learning curve, as written to the CSV)."""
        self.resumed_exactly: bool | None = None
        """After a resume: whether the environments continued exactly where they stopped."""
        self._best_agent: dict[str, Any] | None = None
        self._envs_at: tuple[int, envstate.EnvSnapshot, np.ndarray] | None = None

    @classmethod
    def from_configs(cls, agent_config: VMPOConfig, train_config: TrainConfig) -> VMPOTrainer:
        """The trainer of two configs (the same as passing their fields as keywords)."""
        return cls(**agent_config.to_dict(), **train_config.to_dict())

    # ------------------------------------------------------------------ public

    def train(
        self,
        total_steps: int,
        out_dir: str | os.PathLike | None,
        callback: Callable[[int, EvalResult], bool | None] | None = None,
        resume: bool = False,
        log_evaluations: bool = True,
    ) -> TrainResult:
        """Train for ``total_steps`` env steps; ``callback(env_steps, result)`` returning True stops."""
        start = time.perf_counter()
        start_steps = self.env_steps
        points: list[EvalPoint] = []
        stopped = False
        run = self.iterate(total_steps, out_dir, resume=resume, log_evaluations=log_evaluations)
        try:
            for point in run:
                points.append(point)
                if callback is not None and callback(point.env_steps, point.result):
                    stopped = True
                    break
        finally:
            run.close()
        wall = time.perf_counter() - start
        return TrainResult(
            final_return=points[-1].result.mean if points else float("nan"),
            best_return=self.best_return if self.history else float("nan"),
            best_step=self.best_step,
            env_steps=self.env_steps,
            wall_time=wall,
            steps_per_second=(self.env_steps - start_steps) / wall if wall > 0 else float("nan"),
            evaluations=points,
            stopped_early=stopped,
            out_dir=None if out_dir is None else str(out_dir),
        )

    def iterate(
        self,
        total_steps: int,
        out_dir: str | os.PathLike | None = None,
        resume: bool = False,
        on_update: Callable[[int, Mapping[str, Any]], None] | None = None,
        log_evaluations: bool = True,
    ) -> Iterator[EvalPoint]:
        """Generator of evaluations; environments are closed when it ends or is closed.

        With ``resume`` and a state file in ``out_dir`` (from an earlier run of the same
        configuration), training continues from it; a trainer that has trained already
        continues from its own state.
        """
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        out = None if out_dir is None else Path(out_dir)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            if resume and (out / STATE_FILE).exists():
                self.load_state(out / STATE_FILE)
                log.info("resumed from %s at %d env steps", out / STATE_FILE, self.env_steps)
        cfg = self.config
        marks = [m for m in _eval_marks(total_steps, cfg.eval_interval) if m > self.env_steps]
        envs = make_vector_env(self.env_id, cfg.num_envs, cfg.seed)
        evaluator = Evaluator(self.env_id, cfg.eval_episodes, cfg.resolved_eval_seed)
        try:
            obs = self._start(envs)
            buffer = RolloutBuffer(cfg.rollout_steps, cfg.num_envs, self.obs_dim, self.act_dim)
            scale = action_scaler(envs.single_action_space)
            window: dict[str, list[float]] = defaultdict(list)
            t0 = time.perf_counter()
            while self.env_steps < total_steps:
                factor = self._schedule(total_steps)
                obs = self._collect(envs, obs, buffer, scale, window)
                for key, value in self.agent.update(self._batch(buffer, obs)._asdict()).items():
                    window[key].append(value)
                window[metrics.LR_FACTOR].append(factor)
                self.env_steps += cfg.batch_size
                if on_update is not None:
                    on_update(self.env_steps, window)
                passed = [m for m in marks if m <= self.env_steps]
                if not passed and self.env_steps < total_steps:
                    continue
                mark = passed[-1] if passed else total_steps
                marks = [m for m in marks if m > self.env_steps]
                point = self._evaluate(evaluator, mark, window, t0)
                self._envs_at = (self.env_steps, envstate.capture(envs), obs.copy())
                self._record(out, point, log_evaluations)
                t0 = time.perf_counter()
                yield point
        finally:
            envs.close()
            evaluator.close()

    @property
    def final_return(self) -> float:
        """The return of the latest evaluation (NaN before the first)."""
        return float(self.history[-1][metrics.EVAL_RETURN]) if self.history else float("nan")

    @property
    def evaluation_returns(self) -> list[float]:
        """The learning curve so far: the mean return of each evaluation, in order."""
        return [float(row[metrics.EVAL_RETURN]) for row in self.history]

    @property
    def can_resume_exactly(self) -> bool:
        """Whether the next run continues exactly: the environments of the current step were saved whole."""
        at = self._envs_at
        return self.env_steps == 0 or (at is not None and at[0] == self.env_steps and at[1].exact)

    def discard_state(self, out_dir: str | os.PathLike) -> None:
        """Remove the resume state and the best checkpoint from ``out_dir`` (after they were kept elsewhere)."""
        for name in (STATE_FILE, BEST_CHECKPOINT):
            (Path(out_dir) / name).unlink(missing_ok=True)

    def artifacts(self, out_dir: str | os.PathLike) -> list[tuple[Path, str]]:
        """``(path, mimetype)`` of the files worth keeping after a run: the best checkpoint and the curve."""
        out = Path(out_dir)
        files = [(out / BEST_CHECKPOINT, "application/octet-stream"), (out / CURVE_FILE, "text/csv")]
        return [(path, mime) for path, mime in files if path.exists()]

    # ------------------------------------------------------------------ phases

    def _start(self, envs) -> np.ndarray:
        """The first observation: a fresh reset, or the saved environments of the state this run continues."""
        seed = self.config.seed
        if self.env_steps == 0:
            obs, _ = envs.reset(seed=seed)
            return obs
        if self._envs_at is not None and self._envs_at[0] == self.env_steps:
            _, snapshot, obs = self._envs_at
            envs.reset(seed=seed)
            envstate.restore(envs, snapshot.data)
            self.resumed_exactly = snapshot.exact
            if not snapshot.exact:
                log.warning(
                    "the environments could not be saved whole (%s): the resumed run is not bit-identical "
                    "to an uninterrupted one",
                    "; ".join(snapshot.inexact),
                )
            return obs.copy()
        log.warning(
            "no environment state for step %d: the environments restart (the run is not bit-identical to an "
            "uninterrupted one)",
            self.env_steps,
        )
        self.resumed_exactly = False
        obs, _ = envs.reset(seed=seed + self.env_steps)
        return obs

    def _schedule(self, total_steps: int) -> float:
        a = self.agent_config
        factor = lr_factor(a.lr_schedule, self.env_steps / total_steps, a.lr_final_fraction)
        self.agent.set_lr_factor(factor)
        return factor

    def _collect(self, envs, obs, buffer: RolloutBuffer, scale, window) -> np.ndarray:
        """Fill the buffer with one rollout; returns the observation after it."""
        buffer.reset()
        sample = self.agent.sampler(calls=buffer.steps)  # the parameters change only after the rollout
        n = self.config.num_envs
        no_final: list = [None] * n
        while not buffer.full:
            actions, means = sample(obs)
            next_obs, rewards, terminated, truncated, infos = envs.step(scale(actions))
            ended = np.logical_or(terminated, truncated)
            final_obs = _extract_final_observations(infos, n) if ended.any() else no_final
            buffer.add(obs, actions, means, rewards, terminated, truncated, final_obs)
            if ended.any():
                window[metrics.TRAIN_EPISODE_RETURN].extend(r for _, r in _extract_episode_returns(infos))
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

    def _evaluate(self, evaluator: Evaluator, mark: int, window: dict[str, list[float]], t0: float) -> EvalPoint:
        t_eval = time.perf_counter()
        result = evaluator(self.agent)
        t_eval = time.perf_counter() - t_eval
        train_metrics = {k: float(np.nanmean(v)) for k, v in window.items() if v}
        updates = len(window[metrics.ETA])
        train_metrics[metrics.STEPS_PER_SECOND] = self.config.batch_size * updates / (time.perf_counter() - t0)
        window.clear()
        if not math.isfinite(result.mean):
            raise FloatingPointError(f"evaluation return is {result.mean}: the run diverged")
        return EvalPoint(mark, self.env_steps, result, train_metrics, time.perf_counter() - t0, t_eval)

    def _record(self, out: Path | None, point: EvalPoint, log_evaluations: bool) -> None:
        """Log the evaluation, remember the best agent, and write the files."""
        m = point.train_metrics
        if log_evaluations:
            log.info(
                "%s seed %d | steps %d | eval %.1f +- %.1f | %.0f steps/s | eta %.3g kl/mean %.2e kl/std %.2e",
                self.config.env_id,
                self.config.seed,
                point.env_steps,
                point.result.mean,
                point.result.std,
                m.get(metrics.STEPS_PER_SECOND, float("nan")),
                m.get(metrics.ETA, float("nan")),
                m.get(metrics.KL_MEAN, float("nan")),
                m.get(metrics.KL_STD, float("nan")),
            )
        improved = point.result.mean > self.best_return
        if improved:
            self.best_return, self.best_step = point.result.mean, point.env_steps
            self._best_agent = copy.deepcopy(self.agent.state_dict())
        row = {"env_steps": point.env_steps, "actual_steps": point.actual_steps, **point.result.as_metrics()}
        self.history.append({**row, **point.train_metrics})
        if out is None:
            return
        _write_csv(out / CURVE_FILE, self.history)
        if self.config.checkpoints:
            self.save_state(out / STATE_FILE)
            if improved or not (out / BEST_CHECKPOINT).exists():  # (a resumed run holds its best in memory)
                _atomic_save(self._best_agent, out / BEST_CHECKPOINT)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything a later run needs to continue exactly (see the module docstring)."""
        envs = self._envs_at if self._envs_at is not None and self._envs_at[0] == self.env_steps else None
        return {
            "format": _STATE_FORMAT,
            "agent": self.agent.state_dict(),
            "train_config": self.config.to_dict(),
            "env_steps": self.env_steps,
            "best_return": self.best_return,
            "best_step": self.best_step,
            "best_agent": self._best_agent,
            "history": list(self.history),
            "envs": None if envs is None else envs[1].data,
            "envs_inexact": [] if envs is None else list(envs[1].inexact),
            "obs": None if envs is None else torch.from_numpy(envs[2]),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(
                f"this resume state has format {state.get('format')!r}; this trainer reads {_STATE_FORMAT}"
            )
        self.agent.load_state_dict(state["agent"])
        self.env_steps = int(state["env_steps"])
        self.best_return, self.best_step = float(state["best_return"]), int(state["best_step"])
        self._best_agent = state["best_agent"]
        self.history = [dict(row) for row in state["history"]]
        self._envs_at = None
        if state["envs"] is not None:
            snapshot = envstate.EnvSnapshot(state["envs"], tuple(state["envs_inexact"]))
            self._envs_at = (self.env_steps, snapshot, state["obs"].cpu().numpy())

    def save_state(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to one file, atomically."""
        _atomic_save(self.state_dict(), Path(path))

    def load_state(self, path: str | os.PathLike) -> None:
        """Continue from a :meth:`save_state` file (of a trainer with the same configuration)."""
        self.load_state_dict(torch.load(path, map_location=self.agent.device, weights_only=True))

    def state_bytes(self) -> bytes:
        """:meth:`state_dict` as bytes, for storing it elsewhere as an opaque blob."""
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return buffer.getvalue()

    def load_state_bytes(self, data: bytes) -> None:
        self.load_state_dict(torch.load(io.BytesIO(data), map_location=self.agent.device, weights_only=True))


def _eval_marks(total_steps: int, interval: int) -> list[int]:
    """Env-step marks of the scheduled evaluations: every ``interval`` steps, and ``total_steps``."""
    marks = list(range(interval, total_steps, interval))
    return [*marks, total_steps]


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = Path(f"{path}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = Path(f"{path}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
