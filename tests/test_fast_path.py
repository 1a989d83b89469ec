"""The fast hidden layer (linear + tanh through sigmoid, backward written out) computes what
``nn.Sequential(nn.Linear, nn.Tanh, ...)`` computes: values, gradients, and whole updates."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from vmpo_tune import networks
from vmpo_tune.agent import NonFiniteError, VMPOAgent

from .test_agent import make_batch


def _plain_trunk(trunk, x):
    return trunk(x)  # the straightforward path: nn.Linear then nn.Tanh, autograd throughout


def test_linear_tanh_values_and_gradients_match_the_plain_layers():
    torch.manual_seed(0)
    layer = nn.Linear(11, 64)
    x = (torch.randn(300, 11) * 3).requires_grad_(True)  # pre-activations well into tanh's flat tails
    x_ref = x.detach().clone().requires_grad_(True)
    ref_layer = copy.deepcopy(layer)
    y = networks.linear_tanh(x, layer)
    y_ref = torch.tanh(ref_layer(x_ref))
    assert torch.allclose(y, y_ref, atol=3e-7, rtol=0)
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    (y_ref * weights).sum().backward()
    for got, want in (
        (x.grad, x_ref.grad),
        (layer.weight.grad, ref_layer.weight.grad),
        (layer.bias.grad, ref_layer.bias.grad),
    ):
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_linear_tanh_saturates_exactly_and_keeps_nan():
    layer = nn.Linear(1, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
    x = torch.tensor([[-100.0], [0.0], [100.0], [float("nan")]])
    y = networks.linear_tanh(x, layer).detach().reshape(-1)
    assert y[0] == -1.0 and y[1] == 0.0 and y[2] == 1.0 and torch.isnan(y[3])


def test_no_input_gradient_is_computed_for_an_input_that_needs_none():
    layer = nn.Linear(4, 3)
    x = torch.randn(5, 4)  # observations: no gradient wanted
    networks.linear_tanh(x, layer).sum().backward()
    assert x.grad is None and layer.weight.grad is not None


def test_inference_path_gives_the_same_bits_as_the_training_path():
    """The rollout's means (no autograd) are bit for bit what the update recomputes (with autograd)."""
    torch.manual_seed(1)
    policy = networks.DiagonalGaussianPolicy(7, 2, (32, 32), (32, 32))
    obs = torch.randn(50, 7)
    with torch.inference_mode():
        fast = policy.mean_action(obs)
    mean, _, _ = policy.forward_all(obs)
    assert torch.equal(fast, mean.detach())


def _sample_as_before(agent, obs):
    """The rollout's call as it was written before ``VMPOAgent.sampler`` (commit bd0d91f): everything from the
    parameters on every call, Python numbers wrapped into tensors, ``F.linear`` for the head."""
    p = agent.policy
    with torch.inference_mode():
        x = p.obs_norm(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
        for linear in list(p.policy_trunk)[::2]:
            x = torch.addmm(linear.bias, x, linear.weight.t(), beta=2.0, alpha=2.0).sigmoid_().mul_(2.0).sub_(1.0)
        mean = torch.nn.functional.linear(x, p.mean_head.weight, p.mean_head.bias)
        std = p.log_std.clamp(networks.LOG_STD_MIN, networks.LOG_STD_MAX).exp()
        action = mean + torch.randn(mean.shape, generator=agent.generator) * std
        return action.numpy(), mean.numpy()


def test_the_rollout_sampler_gives_the_bits_of_the_per_call_code_it_replaced_rollout_after_rollout():
    kwargs = dict(policy_layer_sizes=(32, 32), value_layer_sizes=(32, 32), m_steps=2, init_log_std=-0.5, seed=5)
    kwargs["acting"] = "torch"  # the path of every run stored before acting: numpy (tests/test_acting.py)
    agent, before = VMPOAgent(5, 2, "cpu", **kwargs), VMPOAgent(5, 2, "cpu", **kwargs)
    rng = np.random.default_rng(6)
    for rollout in range(3):
        sample = agent.sampler()  # once per rollout, as the trainer takes it
        for _ in range(20):
            obs = rng.normal(size=(8, 5)) * 3
            got, want = sample(obs), _sample_as_before(before, obs)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), rollout
        deterministic = agent.sampler(deterministic=True)(obs)
        assert np.array_equal(deterministic[0], deterministic[1]) and np.array_equal(deterministic[1], want[1])
        batch = make_batch(n=64, seed=rollout, agent=agent)
        kept = agent.policy.mean_action_fn()
        agent.update(batch)  # moves every policy parameter, the log-std and the observation statistics
        before.update(batch)
        with torch.inference_mode():  # its weights are views of the parameters: it follows the update
            x = torch.as_tensor(obs, dtype=torch.float32)
            assert torch.equal(kept(x), agent.policy.mean_action(x))
            assert not np.array_equal(kept(x).numpy(), want[1])
    assert not torch.equal(agent.policy.log_std, torch.full((2,), -0.5))


@pytest.mark.parametrize("m_steps", [1, 4])
def test_one_update_equals_the_straightforward_path(monkeypatch, m_steps):
    agent = VMPOAgent(5, 2, "cpu", policy_layer_sizes=(32, 32), value_layer_sizes=(32, 32), m_steps=m_steps, seed=3)
    reference = copy.deepcopy(agent)
    batch = make_batch(n=256, seed=4, agent=agent)
    stats = agent.update(batch)
    monkeypatch.setattr(networks, "run_trunk", _plain_trunk)
    ref_stats = reference.update(batch)
    assert stats.keys() == ref_stats.keys()
    for key, value in stats.items():
        assert np.isclose(value, ref_stats[key], rtol=1e-4, atol=1e-6, equal_nan=True), key
    for (name, p), (_, q) in zip(agent.policy.named_parameters(), reference.policy.named_parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), name
    for (name, p), (_, q) in zip(agent.duals.named_parameters(), reference.duals.named_parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7), name


def test_updates_are_deterministic_bit_for_bit():
    def run():
        agent = VMPOAgent(5, 2, "cpu", policy_layer_sizes=(32, 32), value_layer_sizes=(32, 32), m_steps=4, seed=7)
        for i in range(3):
            agent.update(make_batch(n=128, seed=i, agent=agent))
        return [p.detach().clone() for p in agent.policy.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(run(), run()))


def _medium_pair(**kw):
    """A float32 agent and a ``matmul_precision: medium`` one with the same initial parameters."""
    sizes = dict(policy_layer_sizes=(64, 64), value_layer_sizes=(64, 64), m_steps=4, seed=5, **kw)
    return VMPOAgent(5, 2, "cpu", **sizes), VMPOAgent(5, 2, "cpu", matmul_precision="medium", **sizes)


def test_matmul_precision_holds_inside_the_m_steps_and_is_restored_after_them(monkeypatch):
    _, agent = _medium_pair()
    before = torch.get_float32_matmul_precision()
    seen, m_step, diverge = [], agent._m_step, []

    def recording(*args, **kwargs):
        seen.append(torch.get_float32_matmul_precision())
        if diverge and len(seen) == 2:
            raise NonFiniteError("the loss became nan")
        return m_step(*args, **kwargs)

    monkeypatch.setattr(agent, "_m_step", recording)
    agent.update(make_batch(n=256, seed=1, agent=agent))
    assert seen == ["medium"] * 4
    assert torch.get_float32_matmul_precision() == before
    seen.clear()
    diverge.append(True)
    with pytest.raises(NonFiniteError):  # a diverged M-step: the precision is still put back
        agent.update(make_batch(n=256, seed=2, agent=agent))
    assert seen == ["medium"] * 2
    assert torch.get_float32_matmul_precision() == before


def test_a_medium_precision_update_is_the_float32_update_within_bfloat16_rounding_and_deterministic():
    exact, medium = _medium_pair()
    again = _medium_pair()[1]
    for i in range(3):
        batch = make_batch(n=512, seed=10 + i, agent=exact)
        for agent in (exact, medium, again):
            agent.update(batch)
    differs = False
    for (name, p), (_, q), (_, r) in zip(
        exact.policy.named_parameters(), medium.policy.named_parameters(), again.policy.named_parameters()
    ):
        assert torch.equal(q, r), name  # same seed, same machine: the same bits
        # bfloat16 keeps 8 significant bits: three updates of 4 M-steps stay within a few per cent of a step
        assert torch.allclose(p, q, rtol=5e-2, atol=2e-3), name
        differs = differs or not torch.equal(p, q)
    # where oneDNN multiplies bfloat16 fast (AMX, AVX-512 BF16) the products really are rounded; elsewhere
    # PyTorch keeps float32 and the runs are the same
    assert differs == torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_matmul_precision_is_validated():
    with pytest.raises(ValueError, match=r"unknown matmul_precision 'low' \(valid: highest, high, medium\)"):
        VMPOAgent(5, 2, "cpu", matmul_precision="low")
