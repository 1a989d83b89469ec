"""Networks: orthogonal layer init, observation normaliser, diagonal Gaussian policy + value."""

from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
import torch
from torch import nn

from .losses import gaussian_log_prob

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


_TWO, _ONE = torch.tensor(2.0), torch.tensor(1.0)
"""The constants of ``2 sigmoid(2z) - 1`` as tensors: a Python number is wrapped into a new tensor on every call (four
more operator calls for each, a few microseconds of the rollout's policy call); the same float32 arithmetic."""


def _linear_tanh_values(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``tanh(x W^T + b)`` given ``W^T``, as ``2 sigmoid(2 (x W^T + b)) - 1``."""
    return torch.addmm(bias, x, weight_t, beta=2.0, alpha=2.0).sigmoid_().mul_(_TWO).sub_(_ONE)


class _LinearTanh(torch.autograd.Function):
    """``tanh(x W^T + b)`` in one step, with tanh computed as ``2 sigmoid(2z) - 1``.

    The same function as ``torch.tanh(F.linear(x, W, b))`` within float rounding (the
    tests check values and gradients), cheaper on CPU, where a hidden layer's cost is:

    * PyTorch's float32 ``tanh`` kernel costs about ten times a ``sigmoid`` (1.1 ms against
      0.11 ms for a 2,048 x 256 batch on one core), so ``tanh`` goes through ``sigmoid``;
    * the factor 2 rides on the matrix product (``addmm`` with ``alpha = beta = 2``: exact,
      a power of two), so the pre-activation is never scaled in a separate pass;
    * the backward is written out (``g (1 - y^2)``, then two matrix products and a sum),
      the input's gradient is skipped when the input needs none (the first layer), and the
      weight gradient is formed with the wide matrix on the right (see :meth:`backward`).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        y = _linear_tanh_values(x, weight.t(), bias)
        ctx.save_for_backward(x, weight, y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, y = ctx.saved_tensors
        grad_z = torch.ops.aten.tanh_backward(grad, y)
        grad_x = grad_z @ weight if ctx.needs_input_grad[0] else None
        # (x^T g)^T, not g^T x: the same sums, but MKL runs the narrow first layer (x: 2,048 x 11) 6x faster
        # with the wide matrix on the right (0.2 ms against 1.2 ms on one core; equal for square layers)
        grad_w = (x.t() @ grad_z).t() if ctx.needs_input_grad[1] else None
        grad_b = grad_z.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear_tanh(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``tanh(layer(x))`` through :class:`_LinearTanh` (every hidden layer of the networks).

    Without autograd (the values of a batch) the same arithmetic runs without the Function's
    call overhead (about 20 us a call). The rollout's policy call has its own path with the same
    arithmetic (:meth:`DiagonalGaussianPolicy.mean_action_fn`), so its means are bit for bit those
    the update recomputes.
    """
    if torch.is_grad_enabled():
        return _LinearTanh.apply(x, layer.weight, layer.bias)
    return _linear_tanh_values(x, layer.weight.t(), layer.bias)


def run_trunk(trunk: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """A ``[Linear, Tanh] * n`` trunk applied to ``x``, each pair as one :func:`linear_tanh`."""
    layers = list(trunk)
    for linear in layers[::2]:
        x = linear_tanh(x, linear)
    return x


def layer_init(layer: nn.Linear, std: float = np.sqrt(2.0), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain ``std`` and constant bias (CleanRL's initialisation)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


class RunningNorm(nn.Module):
    """Running mean / variance of observations, kept in buffers so checkpoints carry them.

    Statistics change only through :meth:`update` (the agent calls it once per batch);
    :meth:`forward` only reads them.
    """

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip, self.eps = float(clip), float(eps)
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("_shift", torch.zeros(dim), persistent=False)
        self.register_buffer("_scale", torch.ones(dim), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._refresh())

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the statistics of a batch ``x`` of shape ``(B, dim)`` (Chan et al.)."""
        x = x.reshape(-1, self.mean.numel()).to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(dim=0)
        batch_var = x.var(dim=0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total)
        self.count.copy_(total)
        self._refresh()

    def _refresh(self) -> None:
        with torch.no_grad():
            self._shift.copy_(self.mean.to(self._shift.dtype))
            self._scale.copy_(torch.rsqrt(self.var + self.eps).to(self._scale.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self._shift) * self._scale).clamp_(-self.clip, self.clip)


class DiagonalGaussianPolicy(nn.Module):
    """Gaussian policy with a state-independent log-std, plus a value function.

    Observations are normalised inside the module (``obs_norm``), so the module alone maps
    raw observations to actions. With ``shared_encoder`` the value head sits on the policy
    trunk and ``value_layer_sizes`` is not used.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        policy_layer_sizes: Tuple[int, ...] = (256, 256),
        value_layer_sizes: Tuple[int, ...] = (256, 256),
        shared_encoder: bool = False,
        *,
        init_log_std: float = 0.0,
        obs_clip: float = 10.0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.shared_encoder = obs_dim, act_dim, shared_encoder
        self.obs_norm = RunningNorm(obs_dim, clip=obs_clip)
        self.policy_trunk = self._build_mlp(obs_dim, tuple(policy_layer_sizes))
        self.mean_head = layer_init(nn.Linear(policy_layer_sizes[-1], act_dim), std=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        if shared_encoder:
            self.value_trunk = None
            value_in = policy_layer_sizes[-1]
        else:
            self.value_trunk = self._build_mlp(obs_dim, tuple(value_layer_sizes))
            value_in = value_layer_sizes[-1]
        self.value_head = layer_init(nn.Linear(value_in, 1), std=1.0)

    @staticmethod
    def _build_mlp(input_dim: int, hidden_layer_sizes: Tuple[int, ...]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for width in hidden_layer_sizes:
            layers += [layer_init(nn.Linear(input_dim, width)), nn.Tanh()]
            input_dim = width
        return nn.Sequential(*layers)

    def policy_logstd_parameters(self) -> list[nn.Parameter]:
        return [self.log_std]

    def policy_parameters(self) -> list[nn.Parameter]:
        """Everything the policy loss trains (trunk, mean head, log-std)."""
        return [*self.policy_trunk.parameters(), *self.mean_head.parameters(), self.log_std]

    def value_parameters(self) -> list[nn.Parameter]:
        """Everything only the value loss trains."""
        trunk = [] if self.value_trunk is None else list(self.value_trunk.parameters())
        return [*trunk, *self.value_head.parameters()]

    def _mean_and_log_std(self, encoded_obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean_head(encoded_obs)
        log_std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).expand_as(mean)
        return mean, log_std

    def get_policy_dist_params(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Internal helper to get raw distribution parameters."""
        return self._mean_and_log_std(run_trunk(self.policy_trunk, self.obs_norm(obs)))

    def forward(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.get_policy_dist_params(obs)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Policy mean of a batch of observations; inference only (see :meth:`mean_action_fn`)."""
        return self.mean_action_fn()(obs)

    def mean_action_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`mean_action` for many calls (the rollout's hot path: one call per env step).

        The same arithmetic as :meth:`forward`, bit for bit, through the functional ops without module calls, and
        each layer's transposed weight taken once here rather than on every call. Those are views of the
        parameters, so the function follows their in-place updates (the optimizers', ``load_state_dict``'s).
        """
        layers = [(linear.weight.detach().t(), linear.bias.detach()) for linear in list(self.policy_trunk)[::2]]
        head_t, head_bias = self.mean_head.weight.detach().t(), self.mean_head.bias.detach()
        normalize = self.obs_norm.forward

        def mean_action(obs: torch.Tensor) -> torch.Tensor:
            x = normalize(obs)
            for weight_t, bias in layers:
                x = _linear_tanh_values(x, weight_t, bias)
            return torch.addmm(head_bias, x, head_t)

        return mean_action

    def mean_action_numpy_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        """:meth:`mean_action` in NumPy float32, on copies of the parameters taken now (``acting: numpy``).

        The same function as :meth:`mean_action_fn` within float rounding: the observation's normalisation is the
        same float32 arithmetic, the products run in NumPy's BLAS and ``tanh`` is NumPy's. A NumPy call costs a
        fraction of a PyTorch operator's on one CPU core, mostly between simulator steps, which leave PyTorch's
        dispatch code cold in the caches (BENCHMARKS.md). For a stretch of calls between which the parameters do not
        change: later updates do not reach the copies.
        """

        def arrays(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
            return tuple(np.array(t.detach().cpu().numpy(), order="C") for t in tensors)  # copies

        layers = [arrays(linear.weight.t(), linear.bias) for linear in list(self.policy_trunk)[::2]]
        head_t, head_bias = arrays(self.mean_head.weight.t(), self.mean_head.bias)
        shift, scale = arrays(self.obs_norm._shift, self.obs_norm._scale)
        clip = np.float32(self.obs_norm.clip)

        def mean_action(obs: np.ndarray) -> np.ndarray:
            x = np.subtract(obs, shift, dtype=np.float32)  # obs rounded to float32 first, as the tensor path does
            x *= scale
            np.clip(x, -clip, clip, out=x)
            for weight_t, bias in layers:
                x = x @ weight_t
                x += bias
                np.tanh(x, out=x)
            mean = x @ head_t
            mean += head_bias
            return mean

        return mean_action

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.obs_norm(obs)
        trunk = self.policy_trunk if self.value_trunk is None else self.value_trunk
        return self.value_head(run_trunk(trunk, x)).squeeze(-1)

    def forward_all(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, log-std and value in one pass (the trunk runs once when shared)."""
        x = self.obs_norm(obs)
        encoded = run_trunk(self.policy_trunk, x)
        mean, log_std = self._mean_and_log_std(encoded)
        value_features = encoded if self.value_trunk is None else run_trunk(self.value_trunk, x)
        return mean, log_std, self.value_head(value_features).squeeze(-1)

    def log_prob(self, mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(mean, log_std, actions)

    def sample_action(
        self,
        mean: torch.Tensor,
        log_std: torch.Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """An action and its log-probability; the mean itself when ``deterministic``."""
        if deterministic:
            action = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            action = mean + noise * torch.exp(log_std)
        return action, self.log_prob(mean, log_std, action)
