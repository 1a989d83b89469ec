"""Pure tensor functions of V-MPO (Song et al. 2020, Eqs. 3-6, Appendix C).

Nothing here holds state; each function is checked by hand in ``tests/test_losses.py``.
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


def topk_count(batch_size: int, fraction: float) -> int:
    """Number of samples kept by the E-step: ``max(1, floor(fraction * B))``, never 0."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return max(1, min(batch_size, math.floor(fraction * batch_size + 1e-9)))


def topk_mask(advantages: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask of the top ``topk_count`` advantages; ties at the threshold are included."""
    flat = advantages.reshape(-1)
    k = topk_count(flat.numel(), fraction)
    threshold = torch.topk(flat, k, sorted=False).values.min()
    return (flat >= threshold).reshape(advantages.shape)


def topk_weights(advantages: torch.Tensor, mask: torch.Tensor, eta: torch.Tensor | float) -> torch.Tensor:
    """``psi = softmax(A / eta)`` over the selected samples, 0 elsewhere; no gradient flows."""
    with torch.no_grad():
        scaled = advantages / eta
        scaled = scaled.masked_fill(~mask, -math.inf)
        return torch.softmax(scaled.reshape(-1), dim=0).reshape(advantages.shape)


def temperature_loss(selected_advantages: torch.Tensor, eta: torch.Tensor, epsilon_eta: float) -> torch.Tensor:
    """``eta * eps_eta + eta * log(mean(exp(A / eta)))`` over the selected samples (stable form)."""
    k = selected_advantages.numel()
    log_mean_exp = torch.logsumexp(selected_advantages.detach() / eta, dim=0) - math.log(k)
    return eta * epsilon_eta + eta * log_mean_exp


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Log density of a diagonal Gaussian, summed over the action dimension."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(dim=-1)


def decoupled_log_prob(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    old_mean: torch.Tensor,
    old_log_std: torch.Tensor,
    actions: torch.Tensor,
) -> torch.Tensor:
    """Decoupled M-step likelihood: the mean with the old std plus the std with the old mean.

    Each half equals the joint Gaussian log-likelihood when the other half sits at its
    rollout value, so the two gradients are those of the joint likelihood split into a
    mean part and a std part (as in MPO); it keeps the std from collapsing while the mean
    moves.
    """
    return gaussian_log_prob(mean, old_log_std, actions) + gaussian_log_prob(old_mean, log_std, actions)


def gaussian_kl_mean(mean: torch.Tensor, old_mean: torch.Tensor, old_log_std: torch.Tensor) -> torch.Tensor:
    """``D_mu`` per state: ``1/2 sum_j (mu_j - mu_old_j)^2 / sigma_old_j^2``."""
    return 0.5 * ((mean - old_mean) * torch.exp(-old_log_std)).pow(2).sum(dim=-1)


def gaussian_kl_std(log_std: torch.Tensor, old_log_std: torch.Tensor) -> torch.Tensor:
    """``D_sigma`` per state: ``1/2 sum_j (sigma_old^2 / sigma^2 - 1 + 2 log(sigma / sigma_old))``."""
    diff = log_std - old_log_std
    return 0.5 * (torch.exp(-2.0 * diff) - 1.0 + 2.0 * diff).sum(dim=-1)


def multiplier_loss(alpha: torch.Tensor, epsilon: float, kl: torch.Tensor) -> torch.Tensor:
    """``alpha * (eps - sg[KL])``: descending it raises alpha when KL > eps and lowers it otherwise."""
    return alpha * (epsilon - kl.detach())
