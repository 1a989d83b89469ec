import inspect

import numpy as np
import pytest
import torch

from vmpo_tune.agent import NonFiniteError, VMPOAgent
from vmpo_tune.config import VMPOConfig

# The documented VMPOAgent signature (ARCHITECTURE.md, "V-MPO as implemented"), checked name by name.
DOCUMENTED = [
    ("obs_dim", inspect.Parameter.empty),
    ("act_dim", inspect.Parameter.empty),
    ("device", inspect.Parameter.empty),
    ("policy_layer_sizes", (256, 256)),
    ("value_layer_sizes", (256, 256)),
    ("normalize_advantages", True),
    ("gamma", 0.99),
    ("advantage_estimator", "returns"),
    ("gae_lambda", 0.95),
    ("policy_lr", 0.0005),
    ("value_lr", 0.001),
    ("topk_fraction", 0.5),
    ("temperature_init", 1.0),
    ("temperature_lr", 0.0001),
    ("epsilon_eta", 0.1),
    ("epsilon_mu", 0.01),
    ("epsilon_sigma", 0.01),
    ("alpha_lr", 0.0001),
    ("max_grad_norm", 10.0),
    ("optimizer_type", "adam"),
    ("sgd_momentum", 0.9),
    ("shared_encoder", False),
    ("m_steps", 1),
]

OBS_DIM, ACT_DIM = 5, 2


def make_batch(n=64, seed=0, agent=None, good_action=None):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    if agent is None:
        means, log_stds = np.zeros((n, ACT_DIM), np.float32), np.zeros((n, ACT_DIM), np.float32)
    else:
        _, _, means, log_stds = agent.act(obs, deterministic=True)
        log_stds = np.broadcast_to(log_stds, means.shape)
    actions = (means + rng.normal(size=(n, ACT_DIM))).astype(np.float32)
    if good_action is None:
        adv = rng.normal(size=n)
    else:
        adv = -((actions - good_action) ** 2).sum(-1)
    returns = rng.normal(size=n)
    return dict(obs=obs, actions=actions, returns=returns, advantages=adv, old_means=means, old_log_stds=log_stds)


def params_of(agent):
    return [p.detach().clone() for p in [*agent.policy.parameters(), *agent.duals.parameters()]]


def test_signature_matches_documented_api():
    params = list(inspect.signature(VMPOAgent).parameters.values())
    assert [(p.name, p.default) for p in params[: len(DOCUMENTED)]] == DOCUMENTED
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[len(DOCUMENTED) :])


def test_positional_and_keyword_construction_agree():
    a = VMPOAgent(OBS_DIM, ACT_DIM, torch.device("cpu"), (16,), (16,), False, 0.9, seed=3)
    b = VMPOAgent(
        obs_dim=OBS_DIM,
        act_dim=ACT_DIM,
        device="cpu",
        policy_layer_sizes=[16],
        value_layer_sizes=[16],
        normalize_advantages=False,
        gamma=0.9,
        seed=3,
    )
    assert (
        a.config
        == b.config
        == VMPOConfig(policy_layer_sizes=(16,), value_layer_sizes=(16,), normalize_advantages=False, gamma=0.9)
    )
    for p, q in zip(a.policy.parameters(), b.policy.parameters()):
        torch.testing.assert_close(p, q)


def test_unknown_keyword_and_unknown_optimizer_are_rejected():
    with pytest.raises(TypeError, match="polcy_lr"):
        VMPOAgent(OBS_DIM, ACT_DIM, "cpu", polcy_lr=1e-3)
    with pytest.raises(ValueError, match="adam, adamw, sgd, rmsprop"):
        VMPOAgent(OBS_DIM, ACT_DIM, "cpu", optimizer_type="adagrad")
    with pytest.raises(ValueError, match="returns, dae, gae"):
        VMPOAgent(OBS_DIM, ACT_DIM, "cpu", advantage_estimator="td")


def test_act_and_value_change_no_state_and_deterministic_act_returns_the_mean(tiny_agent_kwargs):
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", **tiny_agent_kwargs)
    agent.update(make_batch(agent=agent))
    before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    obs = np.random.default_rng(1).normal(size=(7, OBS_DIM))
    a1, v1, m1, _ = agent.act(obs, deterministic=True)
    agent.act(obs)
    agent.value(obs)
    agent.sample(obs)
    a2, v2, m2, _ = agent.act(obs, deterministic=True)
    for k, v in agent.policy.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(a1, m1)
    np.testing.assert_array_equal(v1, agent.value(obs))
    single_action, single_value, _, _ = agent.act(obs[0], deterministic=True)
    assert isinstance(single_value, float) and single_action.shape == (ACT_DIM,)
    np.testing.assert_allclose(single_action, a1[0], rtol=1e-6)


def test_sample_draws_the_same_noise_as_act(tiny_agent_kwargs):
    a = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", **tiny_agent_kwargs)
    b = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", **tiny_agent_kwargs)
    obs = np.random.default_rng(2).normal(size=(4, OBS_DIM))
    np.testing.assert_allclose(a.act(obs)[0], b.sample(obs)[0], rtol=1e-6)


def test_observation_statistics_grow_by_exactly_the_batch_size_once_per_update(tiny_agent_kwargs):
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", m_steps=3, **tiny_agent_kwargs)
    batch = make_batch(n=48)
    agent.update(batch)
    norm = agent.policy.obs_norm
    assert float(norm.count) == 48
    np.testing.assert_allclose(norm.mean.numpy(), batch["obs"].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), batch["obs"].var(0), rtol=1e-5)
    second = make_batch(n=16, seed=1)
    agent.update(second)
    both = np.concatenate([batch["obs"], second["obs"]])
    assert float(norm.count) == 64
    np.testing.assert_allclose(norm.var.numpy(), both.var(0), rtol=1e-5)


def test_kl_mean_metric_equals_formula_for_known_shift(tiny_agent_kwargs):
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", policy_lr=0.0, value_lr=0.0, **tiny_agent_kwargs)
    batch = make_batch(agent=agent)
    shift, std = np.array([0.3, -0.2], np.float32), np.exp(batch["old_log_stds"][0])
    batch["old_means"] = batch["old_means"] - shift
    metrics = agent.update(batch)
    expected = 0.5 * float(((shift / std) ** 2).sum())
    assert metrics["kl/mean"] == pytest.approx(expected, rel=1e-5)
    assert metrics["kl/std"] == pytest.approx(0.0, abs=1e-12)


def test_updates_move_the_mean_toward_good_actions(tiny_agent_kwargs):
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", m_steps=5, policy_lr=3e-3, epsilon_mu=1.0, **tiny_agent_kwargs)
    obs = make_batch()["obs"]
    start = agent.act(obs, deterministic=True)[2].mean()
    for i in range(10):
        agent.update(make_batch(seed=i, agent=agent, good_action=1.0))
    end = agent.act(obs, deterministic=True)[2].mean()
    assert start == pytest.approx(0.0, abs=0.05) and end > start + 0.3


def _realised_kl(eps_mu, m_steps=40):
    agent = VMPOAgent(
        OBS_DIM,
        ACT_DIM,
        "cpu",
        policy_layer_sizes=(32, 32),
        value_layer_sizes=(32, 32),
        seed=0,
        m_steps=m_steps,
        policy_lr=3e-3,
        epsilon_mu=eps_mu,
        alpha_lr=0.3,
        epsilon_sigma=1e-3,
    )
    return agent.update(make_batch(n=256, agent=agent, good_action=1.0))["kl/mean"]


def test_small_epsilon_mu_bounds_the_realised_kl():
    eps = 1e-3
    constrained, free = _realised_kl(eps), _realised_kl(1e3)
    assert constrained < 3 * eps
    assert constrained < free / 5


def test_update_is_invariant_to_affine_advantage_transform(tiny_agent_kwargs):
    a = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", m_steps=3, **tiny_agent_kwargs)
    b = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", m_steps=3, **tiny_agent_kwargs)
    batch = make_batch(agent=a)
    shifted = dict(batch, advantages=7.5 * batch["advantages"] - 3.0)
    ma, mb = a.update(batch), b.update(shifted)
    for p, q in zip(params_of(a), params_of(b)):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert ma["vmpo/eta"] == pytest.approx(mb["vmpo/eta"], rel=1e-5)


def test_without_normalisation_scaling_matters(tiny_agent_kwargs):
    a = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", normalize_advantages=False, **tiny_agent_kwargs)
    b = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", normalize_advantages=False, **tiny_agent_kwargs)
    batch = make_batch(agent=a)
    a.update(batch)
    b.update(dict(batch, advantages=10.0 * batch["advantages"]))
    assert not all(torch.allclose(p, q) for p, q in zip(params_of(a), params_of(b)))


@pytest.mark.parametrize("key", ["obs", "advantages", "returns", "actions", "old_means", "old_log_stds"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_batch_raises_and_leaves_parameters_untouched(key, bad, tiny_agent_kwargs):
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", **tiny_agent_kwargs)
    batch = make_batch(agent=agent)
    batch[key] = np.array(batch[key], dtype=np.float64)
    batch[key].flat[3] = bad
    before, opt_state = params_of(agent), agent.optimizer.state_dict()
    with pytest.raises(NonFiniteError, match=key):
        agent.update(batch)
    for p, q in zip(before, params_of(agent)):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert float(agent.policy.obs_norm.count) == 0 and opt_state == agent.optimizer.state_dict()


def test_divergence_in_a_later_m_step_undoes_the_earlier_ones(tiny_agent_kwargs):
    """A value step of 1e30 makes the second M-step's loss infinite: nothing of the update may stay."""
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", m_steps=3, value_lr=1e30, **tiny_agent_kwargs)
    batch = make_batch(agent=agent)
    before = params_of(agent)
    with pytest.raises(NonFiniteError, match="diverged"):
        agent.update(batch)
    for p, q in zip(before, params_of(agent)):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert agent.optimizer.state_dict()["state"] == {} and float(agent.policy.obs_norm.count) == 0


@pytest.mark.parametrize("spread,eta_rises", [(50.0, True), (1e-3, False)])
def test_agent_update_moves_eta_toward_its_constraint(spread, eta_rises, tiny_agent_kwargs):
    """Through the agent: concentrated weights (KL(psi || uniform) > eps_eta) raise eta, flat ones lower it."""
    agent = VMPOAgent(
        OBS_DIM, ACT_DIM, "cpu", normalize_advantages=False, epsilon_eta=0.01, temperature_lr=0.1, **tiny_agent_kwargs
    )
    batch = make_batch(agent=agent)
    batch["advantages"] = spread * np.linspace(-1.0, 1.0, len(batch["advantages"]))
    metrics = agent.update(batch)
    assert (metrics["vmpo/eta"] > 1.0) == eta_rises
    assert (metrics["vmpo/weights_kl"] > 0.01) == eta_rises


def test_duals_stay_positive_and_finite_under_extreme_steps(tiny_agent_kwargs):
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", temperature_lr=50.0, alpha_lr=50.0, m_steps=5, **tiny_agent_kwargs)
    for i in range(3):
        m = agent.update(make_batch(seed=i, agent=agent))
    for key in ("vmpo/eta", "vmpo/alpha_mu", "vmpo/alpha_sigma"):
        assert 1e-8 * 0.999 <= m[key] <= 1e8 * 1.001


def test_checkpoint_restores_agent_exactly_and_resumes_identically(tmp_path, tiny_agent_kwargs):
    a = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", m_steps=2, **tiny_agent_kwargs)
    for i in range(3):
        a.update(make_batch(seed=i, agent=a))
    a.save(tmp_path / "agent.pt")
    b = VMPOAgent.load(tmp_path / "agent.pt")
    assert b.config == a.config
    obs = make_batch(seed=9)["obs"]
    np.testing.assert_array_equal(a.act(obs, deterministic=True)[0], b.act(obs, deterministic=True)[0])
    np.testing.assert_array_equal(a.value(obs), b.value(obs))
    assert (a.temperature, a.alphas) == (b.temperature, b.alphas)
    np.testing.assert_array_equal(a.act(obs)[0], b.act(obs)[0])  # same noise stream
    batch = make_batch(seed=5, agent=a)
    ma, mb = a.update(batch), b.update(batch)  # optimiser state restored -> identical step
    assert ma == mb
    for p, q in zip(params_of(a), params_of(b)):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("shared", [False, True])
def test_value_head_gets_no_gradient_from_the_policy_loss(shared, tiny_agent_kwargs):
    """With targets equal to the current values the value loss has zero gradient, so any
    change of the value head would have to come from the policy loss."""
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", shared_encoder=shared, m_steps=1, **tiny_agent_kwargs)
    batch = make_batch(agent=agent)
    batch["returns"] = agent.value(batch["obs"])
    head = agent.policy.value_head.weight.detach().clone()
    trunk = agent.policy.policy_trunk[0].weight.detach().clone()
    agent.update(batch)
    torch.testing.assert_close(agent.policy.value_head.weight, head, rtol=0, atol=0)
    assert not torch.equal(agent.policy.policy_trunk[0].weight, trunk)  # the policy did learn


def test_constructor_is_explicit_and_its_defaults_are_the_configs():
    """No *args / **kwargs: editors and help() see every parameter; each default is VMPOConfig's."""
    params = inspect.signature(VMPOAgent.__init__).parameters
    assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
    defaults = VMPOConfig()
    for name in VMPOConfig.__dataclass_fields__:
        assert params[name].default == getattr(defaults, name), name
    assert params["seed"].default is None and params["seed"].kind is inspect.Parameter.KEYWORD_ONLY


def test_global_torch_seed_makes_the_agent_reproducible(tiny_agent_kwargs):
    kwargs = {k: v for k, v in tiny_agent_kwargs.items() if k != "seed"}
    torch.manual_seed(123)
    a = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", **kwargs)
    torch.manual_seed(123)
    b = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", **kwargs)
    c = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", **kwargs)  # the global stream moved on: another initialisation
    for p, q in zip(a.policy.parameters(), b.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert not all(torch.equal(p, q) for p, q in zip(a.policy.parameters(), c.policy.parameters()))
    obs = make_batch(seed=2)["obs"]
    np.testing.assert_array_equal(a.act(obs)[0], b.act(obs)[0])  # the action noise follows too
    explicit = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", seed=5, **kwargs)
    torch.manual_seed(999)
    again = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", seed=5, **kwargs)  # seed= still wins over the global state
    for p, q in zip(explicit.policy.parameters(), again.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_lr_factor_scales_both_step_sizes(tiny_agent_kwargs):
    agent = VMPOAgent(OBS_DIM, ACT_DIM, "cpu", policy_lr=1e-3, value_lr=2e-3, **tiny_agent_kwargs)
    agent.set_lr_factor(0.25)
    assert [g["lr"] for g in agent.optimizer.param_groups] == [pytest.approx(2.5e-4), pytest.approx(5e-4)]
    assert agent.config.policy_lr == 1e-3  # the configuration itself never changes


def test_booleans_are_strict():
    with pytest.raises(ValueError, match="normalize_advantages must be true or false"):
        VMPOConfig(normalize_advantages="false")
