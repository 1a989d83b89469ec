import math

import numpy as np
import pytest
import torch

from vmpo_tune.losses import (
    decoupled_log_prob,
    gaussian_kl_mean,
    gaussian_kl_std,
    gaussian_log_prob,
    multiplier_loss,
    temperature_loss,
    topk_count,
    topk_mask,
    topk_weights,
)


@pytest.mark.parametrize(
    "batch,fraction,k", [(1, 0.5, 1), (2, 0.5, 1), (3, 0.5, 1), (4, 0.5, 2), (10, 0.3, 3), (7, 0.01, 1), (5, 1.0, 5)]
)
def test_topk_count_is_floor_and_never_zero(batch, fraction, k):
    assert topk_count(batch, fraction) == k


@pytest.mark.parametrize("batch", [1, 2, 3, 5, 64])
def test_exactly_k_samples_get_positive_weight(batch):
    adv = torch.randn(batch, generator=torch.Generator().manual_seed(batch))
    mask = topk_mask(adv, 0.5)
    w = topk_weights(adv, mask, 0.7)
    k = max(1, batch // 2)
    assert int((w > 0).sum()) == k == int(mask.sum())
    # the selected ones are the largest advantages
    assert set(torch.topk(adv, k).indices.tolist()) == set(torch.nonzero(w > 0).flatten().tolist())


def test_ties_at_threshold_are_included():
    adv = torch.tensor([3.0, 1.0, 1.0, 0.0])
    assert topk_mask(adv, 0.5).tolist() == [True, True, True, False]


def test_weights_are_softmax_over_selected_and_sum_to_one():
    adv = torch.tensor([2.0, -1.0, 0.5, 4.0, 1.0, -3.0])
    eta = 1.7
    w = topk_weights(adv, topk_mask(adv, 0.5), eta)
    sel = torch.tensor([2.0, 4.0, 1.0])
    expected = torch.exp(sel / eta) / torch.exp(sel / eta).sum()
    torch.testing.assert_close(w[[0, 3, 4]], expected)
    assert float(w.sum()) == pytest.approx(1.0)
    assert w[[1, 2, 5]].abs().sum() == 0


def test_weights_are_stable_for_huge_advantages_and_carry_no_gradient():
    adv = torch.tensor([1e4, 1e4 - 1.0, -5.0, 0.0], requires_grad=True)
    w = topk_weights(adv, topk_mask(adv.detach(), 0.5), 0.5)
    assert torch.isfinite(w).all() and not w.requires_grad
    assert float(w[0] / w[1]) == pytest.approx(math.exp(2.0))


def test_temperature_loss_value_and_gradient():
    sel = torch.tensor([1.0, 0.0, -0.5])
    eta = torch.tensor(0.8, requires_grad=True)
    eps = 0.05
    loss = temperature_loss(sel, eta, eps)
    expected = 0.8 * eps + 0.8 * math.log(np.mean(np.exp(np.array([1.0, 0.0, -0.5]) / 0.8)))
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    psi = torch.softmax(sel / 0.8, 0)
    kl_to_uniform = float((psi * (psi * 3).log()).sum())
    assert float(eta.grad) == pytest.approx(eps - kl_to_uniform, rel=1e-5)


@pytest.mark.parametrize("spread,eta_rises", [(10.0, True), (1e-3, False)])
def test_eta_moves_in_the_direction_of_its_constraint(spread, eta_rises):
    """Concentrated weights (KL > eps) make eta rise after one descent step; flat weights make it fall."""
    sel = torch.tensor([spread, 0.0, -spread, 0.5 * spread])
    log_eta = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.SGD([log_eta], lr=0.1)
    temperature_loss(sel, log_eta.exp(), 0.01).backward()
    opt.step()
    assert (log_eta.item() > 0) == eta_rises


@pytest.mark.parametrize("kl,alpha_rises", [(0.5, True), (0.001, False)])
def test_alpha_moves_in_the_direction_of_its_constraint(kl, alpha_rises):
    log_alpha = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.SGD([log_alpha], lr=0.1)
    multiplier_loss(log_alpha.exp(), 0.01, torch.tensor(kl)).backward()
    opt.step()
    assert (log_alpha.item() > 0) == alpha_rises


def test_kl_mean_formula_for_a_known_shift():
    old_mean = torch.zeros(4, 2)
    old_log_std = torch.log(torch.tensor([[0.5, 2.0]])).expand(4, 2)
    mean = old_mean + torch.tensor([0.1, -0.4])
    expected = 0.5 * (0.1**2 / 0.25 + 0.4**2 / 4.0)
    torch.testing.assert_close(gaussian_kl_mean(mean, old_mean, old_log_std), torch.full((4,), expected))


def test_kl_std_matches_closed_form_gaussian_kl():
    old = torch.distributions.Normal(torch.zeros(3), torch.tensor([0.5, 1.0, 2.0]))
    new = torch.distributions.Normal(torch.zeros(3), torch.tensor([0.7, 1.0, 1.0]))
    expected = torch.distributions.kl_divergence(old, new).sum()
    kl = gaussian_kl_std(new.scale.log()[None], old.scale.log()[None])
    assert float(kl) == pytest.approx(float(expected), rel=1e-6)
    assert float(gaussian_kl_std(old.scale.log()[None], old.scale.log()[None])) == 0.0


def test_log_probs_match_torch_distributions():
    mean, log_std, a = torch.randn(5, 3), torch.randn(5, 3) * 0.3, torch.randn(5, 3)
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(a).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(mean, log_std, a), ref)
    om, ols = torch.randn(5, 3), torch.randn(5, 3) * 0.3
    expected = gaussian_log_prob(mean, ols, a) + gaussian_log_prob(om, log_std, a)
    torch.testing.assert_close(decoupled_log_prob(mean, log_std, om, ols, a), expected)
