"""VMPOAgent: acting, the V-MPO update (E-step, M-step, duals), checkpoints.

The maths lives in :mod:`vmpo_tune.losses` and :mod:`vmpo_tune.targets`; this class
orchestrates it. Conventions (see also :mod:`vmpo_tune.config`):

* The policy loss is the decoupled Gaussian likelihood (mean with the rollout std, std
  with the rollout mean), weighted by the top-k softmax weights ``psi``.
* The trust region ``D_mu`` / ``D_sigma`` is taken over the full batch against the
  rollout ("old") policy; with ``m_steps > 1`` the batch is reused ``m_steps`` times.
* Temperature and multipliers are ``exp`` of log-parameters stepped by Adam, clamped to
  ``[1e-8, 1e8]``, so they stay positive and finite.
* The M-steps' matrix products run at ``matmul_precision`` (float32 unless asked otherwise); acting, evaluation
  and the update's metrics compute in float32.
* Observation statistics change only in :meth:`update`, once per batch, after the
  gradient steps, by exactly the batch size; :meth:`act` and :meth:`value` read them.
"""

from __future__ import annotations

import copy
import logging
import math
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Mapping, Tuple

import numpy as np
import torch
from torch import nn

from . import metrics
from .config import OPTIMIZER_TYPES, VMPOConfig, pick_fields
from .config import VMPO_DEFAULTS as D
from .losses import (
    decoupled_log_prob,
    gaussian_kl_mean,
    gaussian_kl_std,
    multiplier_loss,
    temperature_loss,
    topk_mask,
    topk_weights,
)
from .networks import LOG_STD_MAX, LOG_STD_MIN, DiagonalGaussianPolicy, layer_init

__all__ = ["VMPOAgent", "DiagonalGaussianPolicy", "layer_init", "NonFiniteError", "BATCH_KEYS"]

log = logging.getLogger(__name__)

BATCH_KEYS = ("obs", "actions", "returns", "advantages", "old_means", "old_log_stds")
_LOG_DUAL_MIN, _LOG_DUAL_MAX = math.log(1e-8), math.log(1e8)


@contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """PyTorch's float32 matrix-product precision set to ``precision`` inside the block, restored after it."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


class NonFiniteError(FloatingPointError, ValueError):
    """NaN or inf in a batch or a loss: the run diverged. Parameters are left as they were."""


class _Duals(nn.Module):
    """Log-parameters of the temperature eta and the KL multipliers alpha_mu, alpha_sigma."""

    def __init__(self, temperature_init: float, alpha_init: float) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature_init)))
        self.log_alpha_mu = nn.Parameter(torch.tensor(math.log(alpha_init)))
        self.log_alpha_sigma = nn.Parameter(torch.tensor(math.log(alpha_init)))

    @torch.no_grad()
    def clamp_(self) -> None:
        for p in self.parameters():
            p.clamp_(_LOG_DUAL_MIN, _LOG_DUAL_MAX)


def _numpy_sampler(
    mean_action: Callable[[np.ndarray], np.ndarray],
    std: np.ndarray,
    generator: torch.Generator,
    deterministic: bool,
    calls: int,
) -> Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """:meth:`VMPOAgent.sampler` with ``acting: numpy``: the noise of ``calls`` calls drawn at once."""
    if deterministic:

        def mean_only(obs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            mean = mean_action(obs)
            return mean, mean

        return mean_only
    block: list = [np.zeros((0,), dtype=np.float32), 0]  # the drawn noise, the next call's row

    def sample(obs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        mean = mean_action(obs)
        noise, row = block
        if row >= len(noise) or noise.shape[1:] != mean.shape:
            noise = torch.randn((calls, *mean.shape), generator=generator, device=generator.device).cpu().numpy()
            row = 0
        block[0], block[1] = noise, row + 1
        action = noise[row] * std  # mean + noise * std, as the torch path computes it
        action += mean
        return action, mean

    return sample


class VMPOAgent:
    """V-MPO for continuous actions with a diagonal Gaussian policy.

    The parameters after ``device`` are the fields of :class:`~vmpo_tune.config.VMPOConfig`
    (documented there, one line each), with its defaults; the first twenty keep the
    documented positional order. ``seed`` (keyword-only) seeds the network initialisation
    and the action noise of this agent alone, so several agents in one process do not
    share a random stream; without it both follow ``torch.manual_seed``, as any PyTorch
    module does.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        device: torch.device | str,
        policy_layer_sizes: Tuple[int, ...] = D.policy_layer_sizes,
        value_layer_sizes: Tuple[int, ...] = D.value_layer_sizes,
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
        shared_encoder: bool = D.shared_encoder,
        m_steps: int = D.m_steps,
        *,
        alpha_init: float = D.alpha_init,
        init_log_std: float = D.init_log_std,
        obs_clip: float = D.obs_clip,
        lr_schedule: str = D.lr_schedule,
        lr_final_fraction: float = D.lr_final_fraction,
        matmul_precision: str = D.matmul_precision,
        acting: str = D.acting,
        seed: int | None = None,
    ) -> None:
        config = VMPOConfig(**pick_fields(VMPOConfig, locals()))
        self.obs_dim, self.act_dim, self.device, self.config = int(obs_dim), int(act_dim), torch.device(device), config
        self.generator = torch.Generator(device=self.device)
        if seed is None:  # follow the global torch RNG (torch.manual_seed), as nn.Module initialisation does
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        self.generator.manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.policy = DiagonalGaussianPolicy(
                self.obs_dim,
                self.act_dim,
                config.policy_layer_sizes,
                config.value_layer_sizes,
                config.shared_encoder,
                init_log_std=config.init_log_std,
                obs_clip=config.obs_clip,
            ).to(self.device)
        self.duals = _Duals(config.temperature_init, config.alpha_init).to(self.device)
        self.optimizer = self._build_optimizer(
            [
                {"params": self.policy.policy_parameters(), "lr": config.policy_lr},
                {"params": self.policy.value_parameters(), "lr": config.value_lr},
            ]
        )
        self.dual_optimizer = torch.optim.Adam(
            [
                {"params": [self.duals.log_temperature], "lr": config.temperature_lr},
                {"params": [self.duals.log_alpha_mu, self.duals.log_alpha_sigma], "lr": config.alpha_lr},
            ]
        )

    @classmethod
    def from_config(
        cls, obs_dim: int, act_dim: int, config: VMPOConfig, device: torch.device | str = "cpu", seed: int | None = None
    ) -> VMPOAgent:
        """The agent of a :class:`VMPOConfig` (the same as passing its fields as keywords)."""
        return cls(obs_dim, act_dim, device, **config.to_dict(), seed=seed)

    def set_lr_factor(self, factor: float) -> None:
        """Scale the policy and value step sizes to ``factor`` times the configured ones (a schedule's value)."""
        policy_group, value_group = self.optimizer.param_groups
        policy_group["lr"] = self.config.policy_lr * factor
        value_group["lr"] = self.config.value_lr * factor

    def _build_optimizer(self, params) -> torch.optim.Optimizer:
        """Optimiser of ``optimizer_type`` over ``params`` (each group carries its own step size); unknown types
        raise ``ValueError``."""
        lr = self.config.policy_lr  # the default of groups without their own
        kind = self.config.optimizer_type
        if kind == "adam":
            return torch.optim.Adam(params, lr=lr)
        if kind == "adamw":
            return torch.optim.AdamW(params, lr=lr)
        if kind == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=self.config.sgd_momentum)
        if kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        raise ValueError(f"unknown optimizer_type {kind!r}; valid: {', '.join(OPTIMIZER_TYPES)}")

    # ------------------------------------------------------------------ acting

    @property
    def temperature(self) -> float:
        return self.duals.log_temperature.exp().item()

    @property
    def alphas(self) -> Tuple[float, float]:
        return self.duals.log_alpha_mu.exp().item(), self.duals.log_alpha_sigma.exp().item()

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> Tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """``(action, value, mean, log_std)`` for one observation or a batch; changes no statistics."""
        x = self._obs_tensor(obs)
        single = x.ndim == 1
        if single:
            x = x[None]
        mean, log_std, value = self.policy.forward_all(x)
        action, _ = self.policy.sample_action(mean, log_std, deterministic, generator=self.generator)
        out = [t.cpu().numpy() for t in (action, value, mean, log_std)]
        if single:
            return out[0][0], float(out[1][0]), out[2][0], out[3][0]
        return out[0], out[1], out[2], out[3]

    def sample(self, obs: np.ndarray, deterministic: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """``(actions, means)`` for a batch; no value, no log-prob (for many calls, take a :meth:`sampler`).

        Draws the same noise as :meth:`act` for the same generator state.
        """
        return self.sampler(deterministic)(obs)

    def sampler(
        self, deterministic: bool = False, calls: int = 1
    ) -> Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]:
        """:meth:`sample` for a stretch of calls between which the parameters do not change (a rollout).

        With ``acting: torch``, the same numbers as :meth:`sample` bit for bit and the same draws from the generator;
        what depends only on the parameters (the standard deviation, the layers' transposed weights) is computed once
        here, not on every call: about a third of a rollout call's cost on one CPU core (BENCHMARKS.md, throughput
        notes of 2026-12-07). With ``acting: numpy`` (the default), the policy's mean in NumPy
        (:meth:`DiagonalGaussianPolicy.mean_action_numpy_fn`) and the noise of ``calls`` calls (a rollout's steps)
        drawn from the generator at once, ``calls x batch x act_dim`` standard normals in one ``torch.randn``, and
        again when they are used up or the batch size changes.
        """
        with torch.inference_mode():
            std = self.policy.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        if self.config.acting == "numpy":
            return _numpy_sampler(
                self.policy.mean_action_numpy_fn(), std.cpu().numpy(), self.generator, deterministic, calls
            )
        mean_action = self.policy.mean_action_fn()
        generator, to_tensor = self.generator, self._obs_tensor
        to_numpy = torch.Tensor.numpy if self.device.type == "cpu" else lambda t: t.cpu().numpy()

        @torch.inference_mode()
        def sample(obs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            mean = mean_action(to_tensor(obs))
            if deterministic:
                action = mean
            else:  # mean + noise * std, as act's sample_action computes it
                action = torch.randn(mean.shape, generator=generator, device=mean.device).mul_(std).add_(mean)
            return to_numpy(action), to_numpy(mean)

        return sample

    @torch.inference_mode()
    def value(self, obs: np.ndarray) -> float | np.ndarray:
        """State value(s); a float for one observation, an array for a batch."""
        x = self._obs_tensor(obs)
        if x.ndim == 1:
            return float(self.policy.get_value(x[None])[0])
        return self.policy.get_value(x).cpu().numpy()

    @torch.inference_mode()
    def log_std(self) -> np.ndarray:
        return self.policy.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).cpu().numpy()

    # ------------------------------------------------------------------ learning

    def _batch_tensors(self, batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        missing = [k for k in BATCH_KEYS if k not in batch]
        if missing:
            raise KeyError(f"batch is missing {missing}; an update needs {', '.join(BATCH_KEYS)}")
        out = {}
        for key in BATCH_KEYS:
            t = torch.as_tensor(np.array(batch[key], dtype=np.float32), device=self.device)
            if not bool(torch.isfinite(t).all()):
                raise NonFiniteError(
                    f"batch[{key!r}] contains NaN or inf: the run diverged; lower the learning rates or "
                    "check the environment's rewards (no parameter was changed)"
                )
            out[key] = t
        n = out["obs"].shape[0]
        out["obs"] = out["obs"].reshape(n, self.obs_dim)
        for key in ("actions", "old_means", "old_log_stds"):
            out[key] = out[key].reshape(n, self.act_dim)
        for key in ("returns", "advantages"):
            out[key] = out[key].reshape(n)
        return out

    def update(self, batch: Dict[str, Any]) -> Dict[str, float]:
        """One V-MPO update on a batch (``m_steps`` gradient steps); returns namespaced metrics."""
        batch_t = self._batch_tensors(batch)
        cfg = self.config
        adv = batch_t["advantages"]
        if cfg.normalize_advantages and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        mask = topk_mask(adv, cfg.topk_fraction)
        selected = adv[mask]
        snapshot = self._snapshot() if cfg.m_steps > 1 else None
        with matmul_precision(cfg.matmul_precision):
            try:
                for step in range(cfg.m_steps):
                    stats = self._m_step(batch_t, adv, mask, selected, want_stats=step == cfg.m_steps - 1)
            except NonFiniteError:
                if snapshot is not None:
                    self._restore(snapshot)  # a later M-step diverged: undo the earlier ones too
                raise
        with torch.no_grad():
            mean, log_std = self.policy(batch_t["obs"])
            kl_mu = gaussian_kl_mean(mean, batch_t["old_means"], batch_t["old_log_stds"]).mean()
            kl_sigma = gaussian_kl_std(log_std, batch_t["old_log_stds"]).mean()
            returns_var = batch_t["returns"].var() if batch_t["returns"].numel() > 1 else torch.tensor(0.0)
        self.policy.obs_norm.update(batch_t["obs"])
        alpha_mu, alpha_sigma = self.alphas
        stats.update(
            {
                metrics.KL_MEAN: float(kl_mu),
                metrics.KL_STD: float(kl_sigma),
                metrics.ETA: self.temperature,
                metrics.ALPHA_MU: alpha_mu,
                metrics.ALPHA_SIGMA: alpha_sigma,
                metrics.TOPK: float(mask.sum()),
                metrics.POLICY_STD: float(log_std.exp().mean()),
                metrics.EXPLAINED_VARIANCE: float(1.0 - stats.pop("_residual_var") / returns_var)
                if returns_var > 0
                else float("nan"),
            }
        )
        return stats

    def _m_step(
        self,
        batch_t: Dict[str, torch.Tensor],
        adv: torch.Tensor,
        mask: torch.Tensor,
        selected: torch.Tensor,
        want_stats: bool = True,
    ) -> Dict[str, float]:
        """One gradient step; the metrics (of this step) only when ``want_stats`` (the update reports the last)."""
        cfg = self.config
        mean, log_std, value = self.policy.forward_all(batch_t["obs"])
        eta = self.duals.log_temperature.exp()
        alpha_mu, alpha_sigma = self.duals.log_alpha_mu.exp(), self.duals.log_alpha_sigma.exp()

        psi = topk_weights(adv, mask, eta.detach())
        log_prob = decoupled_log_prob(mean, log_std, batch_t["old_means"], batch_t["old_log_stds"], batch_t["actions"])
        policy_loss = -(psi * log_prob).sum()
        kl_mu = gaussian_kl_mean(mean, batch_t["old_means"], batch_t["old_log_stds"]).mean()
        kl_sigma = gaussian_kl_std(log_std, batch_t["old_log_stds"]).mean()
        penalty = alpha_mu.detach() * kl_mu + alpha_sigma.detach() * kl_sigma
        residual = value - batch_t["returns"]
        value_loss = 0.5 * residual.pow(2).mean()
        eta_loss = temperature_loss(selected, eta, cfg.epsilon_eta)
        alpha_loss = multiplier_loss(alpha_mu, cfg.epsilon_mu, kl_mu) + multiplier_loss(
            alpha_sigma, cfg.epsilon_sigma, kl_sigma
        )
        total = policy_loss + penalty + value_loss + eta_loss + alpha_loss
        if not math.isfinite(total.item()):
            raise NonFiniteError(
                f"the V-MPO loss became {total.item()} (policy {policy_loss.item():.3g}, value "
                f"{value_loss.item():.3g}, eta {eta.item():.3g}): the run diverged; lower the learning rates"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.dual_optimizer.zero_grad(set_to_none=True)
        total.backward()
        clip = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
        norms = [
            nn.utils.clip_grad_norm_(group, clip)
            for group in (self.policy.policy_parameters(), self.policy.value_parameters())
        ]
        if not all(math.isfinite(n.item()) for n in norms):
            raise NonFiniteError("a gradient became NaN or inf: the run diverged; lower the learning rates")
        self.optimizer.step()
        self.dual_optimizer.step()
        self.duals.clamp_()
        if not want_stats:
            return {}
        with torch.no_grad():
            selected_psi = psi[mask]
            weights_kl = float(torch.xlogy(selected_psi, selected_psi * selected_psi.numel()).sum())
        return {
            metrics.LOSS_POLICY: policy_loss.item(),
            metrics.LOSS_VALUE: value_loss.item(),
            metrics.LOSS_TEMPERATURE: eta_loss.item(),
            metrics.LOSS_ALPHA: alpha_loss.item(),
            metrics.WEIGHTS_KL: weights_kl,
            "_residual_var": float(residual.detach().var()) if residual.numel() > 1 else 0.0,
        }

    def _snapshot(self) -> Dict[str, Any]:
        return copy.deepcopy(
            {
                "policy": self.policy.state_dict(),
                "duals": self.duals.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "dual_optimizer": self.dual_optimizer.state_dict(),
            }
        )

    def _restore(self, snapshot: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(snapshot["policy"])
        self.duals.load_state_dict(snapshot["duals"])
        self.optimizer.load_state_dict(snapshot["optimizer"])
        self.dual_optimizer.load_state_dict(snapshot["dual_optimizer"])

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume exactly: networks, statistics, duals, optimisers, RNG."""
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "config": self.config.to_dict(),
            "policy": self.policy.state_dict(),
            "duals": self.duals.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dual_optimizer": self.dual_optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(
                f"checkpoint is for obs_dim={state['obs_dim']}, act_dim={state['act_dim']}; "
                f"this agent has obs_dim={self.obs_dim}, act_dim={self.act_dim}"
            )
        self.policy.load_state_dict(state["policy"])
        self.duals.load_state_dict(state["duals"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.dual_optimizer.load_state_dict(state["dual_optimizer"])
        self.generator.set_state(state["generator"].cpu() if hasattr(state["generator"], "cpu") else state["generator"])

    def save(self, path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path, device: torch.device | str = "cpu") -> VMPOAgent:
        """Rebuild an agent from :meth:`save` output (config included)."""
        state = torch.load(path, map_location=device, weights_only=True)
        agent = cls.from_config(state["obs_dim"], state["act_dim"], VMPOConfig.from_dict(state["config"]), device)
        agent.load_state_dict(state)
        return agent
