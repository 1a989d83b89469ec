"""``acting: numpy`` (the default) and ``acting: torch``: the same policy, the noise, and what stored runs act with."""

import numpy as np
import pytest
import torch

from vmpo_tune.agent import VMPOAgent
from vmpo_tune.config import STORED_BEFORE, RunConfig, TrainConfig, VMPOConfig

OBS, ACT = 11, 3


def _update(agent: VMPOAgent, rng: np.random.Generator) -> None:
    """One update on a batch of random observations (well away from the initial statistics) and rollout means."""
    obs = (rng.normal(size=(256, OBS)) * 3 + 1).astype(np.float32)
    _, _, means, log_stds = agent.act(obs, deterministic=True)
    agent.update(
        dict(
            obs=obs,
            actions=(means + rng.normal(size=means.shape)).astype(np.float32),
            returns=rng.normal(size=256),
            advantages=rng.normal(size=256),
            old_means=means,
            old_log_stds=np.broadcast_to(log_stds, means.shape),
        )
    )


def _trained_agent(acting: str, seed: int = 4) -> VMPOAgent:
    """An agent whose weights, log-std and observation statistics have all moved away from their initial values."""
    agent = VMPOAgent(OBS, ACT, "cpu", (64, 64), (64, 64), init_log_std=-0.3, acting=acting, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        _update(agent, rng)
    with torch.no_grad():
        agent.policy.mean_head.weight.mul_(100.0)  # means of order 1 (the initial head's are near 0)
    return agent


@pytest.mark.parametrize("batch", [1, 8, 10])
def test_the_numpy_mean_is_the_torch_mean_within_float_rounding(batch):
    agent = _trained_agent("numpy")
    obs = np.random.default_rng(batch).normal(size=(batch, OBS)) * 4  # float64, as environments return them
    numpy_mean, same = agent.sampler(deterministic=True)(obs)
    assert numpy_mean is same and numpy_mean.dtype == np.float32 and numpy_mean.shape == (batch, ACT)
    with torch.inference_mode():
        torch_mean = agent.policy.mean_action(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    assert np.abs(torch_mean).max() > 0.5  # a mean worth comparing
    np.testing.assert_allclose(numpy_mean, torch_mean, rtol=1e-5, atol=1e-6)
    # and the observation's normalisation, clip included, is the same float32 arithmetic bit for bit
    x = np.subtract(obs, agent.policy.obs_norm._shift.numpy(), dtype=np.float32) * agent.policy.obs_norm._scale.numpy()
    with torch.inference_mode():
        normalised = agent.policy.obs_norm(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    assert np.array_equal(np.clip(x, -10.0, 10.0), normalised)


def test_a_rollouts_noise_is_drawn_at_once_from_the_agents_generator():
    agent = _trained_agent("numpy")
    std = torch.from_numpy(agent.log_std()).exp().numpy()
    replay = torch.Generator().manual_seed(0)
    replay.set_state(agent.generator.get_state())
    rng = np.random.default_rng(7)
    sample = agent.sampler(calls=4)
    block = torch.randn((4, 8, ACT), generator=replay).numpy()
    for k in range(4):
        action, mean = sample(rng.normal(size=(8, OBS)))
        assert np.array_equal(action, block[k] * std + mean)  # mean + noise * std, as the torch path computes it
        assert torch.equal(agent.generator.get_state(), replay.get_state())  # one draw for the 4 calls
    action, mean = sample(rng.normal(size=(8, OBS)))  # a fifth call: the next block
    assert np.array_equal(action, torch.randn((4, 8, ACT), generator=replay).numpy()[0] * std + mean)
    action, mean = sample(rng.normal(size=(2, OBS)))  # another batch size: a block of its shape
    assert np.array_equal(action, torch.randn((4, 2, ACT), generator=replay).numpy()[0] * std + mean)
    assert torch.equal(agent.generator.get_state(), replay.get_state())


def test_the_sampler_follows_the_parameters_of_its_time_not_later_updates():
    agent = _trained_agent("numpy")
    obs = np.random.default_rng(1).normal(size=(8, OBS))
    kept = agent.sampler(deterministic=True)
    before = kept(obs)[0].copy()
    _update(agent, np.random.default_rng(2))
    assert np.array_equal(kept(obs)[0], before)
    assert not np.array_equal(agent.sampler(deterministic=True)(obs)[0], before)


def test_two_agents_of_one_configuration_acting_each_way_give_one_policy_within_float_rounding():
    numpy_agent, torch_agent = _trained_agent("numpy"), _trained_agent("torch")
    obs = np.random.default_rng(5).normal(size=(8, OBS)) * 2
    a, b = numpy_agent.sampler(deterministic=True)(obs)[0], torch_agent.sampler(deterministic=True)(obs)[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_acting_is_validated_and_new_configurations_act_with_numpy():
    assert VMPOConfig().acting == "numpy"
    with pytest.raises(ValueError, match="acting.*numpy.*torch"):
        VMPOConfig(acting="jax")


def test_a_configuration_stored_before_acting_existed_acts_with_torch_and_keeps_its_identity(tmp_path):
    stored = VMPOConfig(m_steps=4).to_dict()
    assert stored.pop("acting") == "numpy"
    assert STORED_BEFORE == {"acting": "torch"}
    assert VMPOConfig.from_dict(stored).acting == "torch"  # a trial's record, a run file, a checkpoint of then
    assert VMPOConfig.from_dict({**stored, "acting": "numpy"}).acting == "numpy"
    run = RunConfig(VMPOConfig(m_steps=4), TrainConfig(), 1000)
    assert RunConfig.from_dict(run.to_dict()) == run  # a record written now keeps its acting
    old = RunConfig.from_dict({**run.to_dict(), "agent": stored})
    assert old.agent.acting == "torch" and old.identity() == run.identity()  # confirmations still match it
    # a checkpoint of then: its agent acts with torch
    agent = VMPOAgent(OBS, ACT, "cpu", (16,), (16,), seed=0)
    state = agent.state_dict()
    del state["config"]["acting"]
    torch.save(state, tmp_path / "old.pt")
    assert VMPOAgent.load(tmp_path / "old.pt").config.acting == "torch"
