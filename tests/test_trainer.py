import inspect

import gymnasium as gym
import numpy as np
import pytest
import torch

from vmpo_tune.envs import (
    _extract_episode_returns,
    _extract_final_observations,
    _iter_final_info_entries,
    _resolve_env_id,
)
from vmpo_tune.evaluation import Evaluator, run_episodes
from vmpo_tune.trainer import VMPOTrainer, _eval_marks

DOCUMENTED = [
    "env_id",
    "seed",
    "device",
    "policy_layer_sizes",
    "value_layer_sizes",
    "rollout_steps",
    "normalize_advantages",
    "gamma",
    "advantage_estimator",
    "gae_lambda",
    "policy_lr",
    "value_lr",
    "topk_fraction",
    "temperature_init",
    "temperature_lr",
    "epsilon_eta",
    "epsilon_mu",
    "epsilon_sigma",
    "alpha_lr",
    "max_grad_norm",
    "optimizer_type",
    "sgd_momentum",
    "num_envs",
    "shared_encoder",
    "m_steps",
]
TINY = dict(policy_layer_sizes=(16,), value_layer_sizes=(16,))


def chain_trainer(env_id, num_envs=2, steps=8, **kw):
    return VMPOTrainer(
        env_id,
        0,
        "cpu",
        rollout_steps=steps,
        num_envs=num_envs,
        gamma=0.5,
        advantage_estimator="dae",
        eval_episodes=2,
        **TINY,
        **kw,
    )


def collect(trainer):
    """One rollout through the trainer's own collection and target code."""
    from vmpo_tune.envs import action_scaler, make_vector_env
    from vmpo_tune.rollout import RolloutBuffer

    cfg = trainer.config
    envs = make_vector_env(trainer.env_id, cfg.num_envs, cfg.seed)
    try:
        obs, _ = envs.reset(seed=0)
        buf = RolloutBuffer(cfg.rollout_steps, cfg.num_envs, trainer.obs_dim, trainer.act_dim)
        window = {"train/episode_return": []}
        last = trainer._collect(envs, obs, buf, action_scaler(envs.single_action_space), window)
        return buf, last, trainer._batch(buf, last), window
    finally:
        envs.close()


def test_signature_matches_documented_api():
    params = list(inspect.signature(VMPOTrainer).parameters.values())
    assert [p.name for p in params[: len(DOCUMENTED)]] == DOCUMENTED
    assert all(p.default is inspect.Parameter.empty for p in params[:6])
    assert params[DOCUMENTED.index("num_envs")].default == 1
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[len(DOCUMENTED) :])


def test_no_autoreset_noop_step_is_stored():
    buf, _, _, window = collect(chain_trainer("VmpoTest/ChainTruncate-v0", steps=13))
    counts, rewards, dones = buf.obs[..., 0], buf.rewards, buf.dones
    assert (rewards > 0).all(), "a reward-0 transition is an autoreset no-op step"
    for t in range(12):
        expected = np.where(dones[t] > 0, 0.0, counts[t] + 1)
        np.testing.assert_array_equal(counts[t + 1], expected)
    np.testing.assert_array_equal(rewards, counts + 1)
    assert window["train/episode_return"] == [15.0] * 4  # two episodes per env: 1+2+3+4+5


def test_truncation_bootstraps_from_the_final_observation():
    trainer = chain_trainer("VmpoTest/ChainTruncate-v0", num_envs=1, steps=6)
    buf, last, batch, _ = collect(trainer)
    value = trainer.agent.value
    final = np.array([5.0, 1.0])  # the true final observation of the truncated episode
    np.testing.assert_array_equal(buf.bootstrap_obs(), final[None])
    # t=4 is the truncating step: target = r + gamma * V(final_obs), not V(reset obs)
    assert batch.returns[4] == pytest.approx(5.0 + 0.5 * value(final), rel=1e-5)
    assert batch.returns[3] == pytest.approx(4.0 + 0.5 * value(buf.obs[4, 0]), rel=1e-5)
    assert batch.returns[5] == pytest.approx(1.0 + 0.5 * value(last[0]), rel=1e-5)


def test_termination_bootstraps_from_nothing():
    trainer = chain_trainer("VmpoTest/ChainTerminate-v0", num_envs=1, steps=6)
    buf, _, batch, _ = collect(trainer)
    assert buf.dones[3, 0] == 1 and len(buf.bootstrap_obs()) == 0
    assert batch.returns[3] == pytest.approx(4.0)


def test_discrete_action_space_is_a_clear_value_error():
    with pytest.raises(ValueError, match="Discrete action space.*continuous"):
        VMPOTrainer("VmpoTest/Discrete-v0", 0, "cpu", (8,), (8,), 4)


def test_unknown_env_names_close_matches():
    with pytest.raises(ValueError, match="unknown env id 'Hoper-v5'.*Hopper-v5"):
        VMPOTrainer("Hoper-v5", 0, "cpu", (8,), (8,), 4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_request_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        VMPOTrainer("InvertedPendulum-v5", 0, "cuda", (8,), (8,), 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda_when_available():
    trainer = VMPOTrainer("InvertedPendulum-v5", 0, "cuda", (16,), (16,), 64, eval_episodes=2)
    result = trainer.train(128, None)
    assert trainer.agent.policy.log_std.device.type == "cuda" and np.isfinite(result.final_return)


def test_resolve_env_id():
    assert _resolve_env_id("dm_control/cartpole/swingup") == "dm_control/cartpole-swingup-v0"
    assert _resolve_env_id("Hopper-v5") == "Hopper-v5"


def test_info_helpers_on_gymnasium_layouts():
    infos = {
        "final_obs": np.array([None, np.array([1.0, 2.0])], dtype=object),
        "_final_obs": np.array([False, True]),
        "final_info": {"x": np.array([0, 7]), "_x": np.array([False, True])},
        "_final_info": np.array([False, True]),
        "episode": {"r": np.array([0.0, 4.5]), "l": np.array([0, 3])},
        "_episode": np.array([False, True]),
    }
    finals = _extract_final_observations(infos, 2)
    assert finals[0] is None and finals[1].tolist() == [1.0, 2.0]
    assert _iter_final_info_entries(infos) == [(1, {"x": 7})]
    assert _extract_episode_returns(infos) == [(1, 4.5)]
    legacy = {"final_info": [None, {"episode": {"r": np.array([2.0])}}]}
    assert _extract_episode_returns(legacy) == [(1, 2.0)]
    assert _extract_final_observations({}, 3) == [None, None, None]


def test_eval_marks():
    assert _eval_marks(100, 30) == [30, 60, 90, 100]
    assert _eval_marks(90, 30) == [30, 60, 90]
    assert _eval_marks(10, 50) == [10]


def test_evaluation_with_the_same_seed_is_identical_and_reports_raw_returns():
    trainer = VMPOTrainer("InvertedPendulum-v5", 0, "cpu", (16,), (16,), 64, reward_scale=0.01, eval_episodes=3)
    trainer.train(256, None)
    ev = Evaluator("InvertedPendulum-v5", 3, seed=123)
    try:
        first, second = ev(trainer.agent), ev(trainer.agent)
    finally:
        ev.close()
    assert first == second and len(first.returns) == 3
    # InvertedPendulum-v5 pays 1 per step but 0 on the falling step: raw returns, reward_scale not applied
    assert all(r in (n, n - 1) for r, n in zip(first.returns, first.lengths))
    envs = [gym.make("InvertedPendulum-v5") for _ in range(3)]  # fresh environments, the same seeds: the same run
    try:
        assert run_episodes(trainer.agent, envs, [123, 124, 125]) == first
    finally:
        for env in envs:
            env.close()


def test_callback_sees_every_evaluation_and_can_stop_training(tmp_path):
    trainer = VMPOTrainer("InvertedPendulum-v5", 0, "cpu", (16,), (16,), 64, eval_interval=128, eval_episodes=2)
    seen = []

    def callback(steps, result):
        seen.append(steps)
        return steps >= 256

    result = trainer.train(1024, tmp_path, callback=callback)
    assert seen == [128, 256] and result.stopped_early and trainer.env_steps == 256
    assert [p.env_steps for p in result.evaluations] == [128, 256]
    assert (tmp_path / "resume.pt").exists() and (tmp_path / "best.pt").exists()
    assert [p.name for p, _ in trainer.artifacts(tmp_path)] == ["best.pt", "evaluations.csv"]
    rows = (tmp_path / "evaluations.csv").read_text().splitlines()
    assert rows[0].startswith("env_steps,actual_steps,eval/return_mean") and len(rows) == 3


def test_train_result_reports_final_and_best():
    trainer = VMPOTrainer("InvertedPendulum-v5", 1, "cpu", (16,), (16,), 64, eval_interval=64, eval_episodes=2)
    result = trainer.train(320, None)
    means = [p.result.mean for p in result.evaluations]
    assert len(means) == 5 and result.final_return == means[-1] and result.best_return == max(means)
    assert result.env_steps == 320 and result.steps_per_second > 0


def test_same_seed_trains_identically_and_resume_continues_from_the_checkpoint(tmp_path):
    def run(out, total, resume=False):
        t = VMPOTrainer("InvertedPendulum-v5", 3, "cpu", (16,), (16,), 64, eval_interval=128, eval_episodes=2)
        return t, t.train(total, out, resume=resume)

    _, a = run(tmp_path / "a", 256)
    _, b = run(tmp_path / "b", 256)
    assert [p.result for p in a.evaluations] == [p.result for p in b.evaluations]
    t, c = run(tmp_path / "a", 512, resume=True)
    assert [p.env_steps for p in c.evaluations] == [384, 512]  # nothing before 256 is repeated
    assert t.env_steps == 512
    rows = (tmp_path / "a" / "evaluations.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["128", "256", "384", "512"]


def test_nan_rewards_fail_loudly():
    class NaNReward(gym.Wrapper):
        def step(self, action):
            obs, _, term, trunc, info = self.env.step(action)
            return obs, float("nan"), term, trunc, info

    gym.register("VmpoTest/NaN-v0", entry_point=lambda: NaNReward(gym.make("InvertedPendulum-v5")))
    trainer = VMPOTrainer("VmpoTest/NaN-v0", 0, "cpu", (8,), (8,), 16, eval_episodes=1)
    before = [p.detach().clone() for p in trainer.agent.policy.parameters()]
    with pytest.raises(ValueError, match="NaN or inf"):
        trainer.train(64, None)
    assert all(torch.equal(p, q) for p, q in zip(before, trainer.agent.policy.parameters()))


def test_constructor_is_explicit_with_the_configs_defaults():
    from vmpo_tune.config import TrainConfig, VMPOConfig

    params = inspect.signature(VMPOTrainer.__init__).parameters
    assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
    agent, train = VMPOConfig(), TrainConfig()
    for name, p in params.items():
        if name in ("self", "env_id", "seed", "device", "policy_layer_sizes", "value_layer_sizes", "rollout_steps"):
            continue
        expected = getattr(agent, name) if hasattr(agent, name) else getattr(train, name)
        assert p.default == expected, name


def _hopper(**kw):
    return VMPOTrainer(
        "Hopper-v5", 3, "cpu", (16,), (16,), 64, num_envs=2, eval_interval=256, eval_episodes=2, m_steps=2, **kw
    )


@pytest.mark.parametrize("stop_at, acting", [(256, "numpy"), (512, "numpy"), (768, "numpy"), (512, "torch")])
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, stop_at, acting):
    """Stop at an evaluation, rebuild the trainer from its state file, continue: same curve, same weights.

    The environments are mid-episode at the stop (Hopper episodes outlast 128 steps per env), so this
    holds only because their simulator state, random generators and counters travel in the state.
    """
    straight = _hopper(lr_schedule="linear", acting=acting)
    straight.train(1024, None, log_evaluations=False)
    first = _hopper(lr_schedule="linear", acting=acting)
    first.train(1024, tmp_path, callback=lambda steps, _: steps >= stop_at, log_evaluations=False)
    assert first.env_steps == stop_at
    resumed = _hopper(lr_schedule="linear", acting=acting)
    resumed.train(1024, tmp_path, resume=True, log_evaluations=False)
    assert resumed.resumed_exactly is True and resumed.env_steps == 1024

    def curve(t):
        return [
            (r["env_steps"], r["eval/return_mean"], r.get("train/episode_return"), r["loss/policy"]) for r in t.history
        ]

    assert curve(resumed) == curve(straight)
    for p, q in zip(straight.agent.policy.parameters(), resumed.agent.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert resumed.best_return == straight.best_return and resumed.best_step == straight.best_step


def test_state_bytes_round_trip_and_training_in_parts_equals_one_go():
    whole = _hopper()
    whole.train(768, None, log_evaluations=False)
    parts = _hopper()
    parts.train(256, None, log_evaluations=False)
    parts.train(512, None, log_evaluations=False)  # a trainer continues from its own state
    moved = _hopper()
    moved.load_state_bytes(parts.state_bytes())
    moved.train(768, None, log_evaluations=False)
    assert [r["eval/return_mean"] for r in moved.history] == [r["eval/return_mean"] for r in whole.history]


def test_lr_schedule_reaches_the_optimiser():
    trainer = _hopper(lr_schedule="linear", lr_final_fraction=0.5, policy_lr=1e-3)
    trainer.train(512, None, log_evaluations=False)
    # four updates of 128 steps: the last one ran at progress 384 / 512, factor 1 - 0.5 * 0.75
    assert trainer.agent.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.625)
    assert [r["optim/lr_factor"] for r in trainer.history] == [pytest.approx(0.9375), pytest.approx(0.6875)]


def test_an_env_whose_state_cannot_be_saved_says_so(tmp_path):
    class Opaque:
        pass

    class Holder(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.thing = Opaque()

    gym.register("VmpoTest/Opaque-v0", entry_point=lambda: Holder(gym.make("InvertedPendulum-v5")))
    trainer = VMPOTrainer("VmpoTest/Opaque-v0", 0, "cpu", (8,), (8,), 32, eval_interval=64, eval_episodes=1)
    trainer.train(128, tmp_path, callback=lambda steps, _: steps >= 64, log_evaluations=False)
    assert not trainer.can_resume_exactly
    again = VMPOTrainer("VmpoTest/Opaque-v0", 0, "cpu", (8,), (8,), 32, eval_interval=64, eval_episodes=1)
    again.train(128, tmp_path, resume=True, log_evaluations=False)
    assert again.resumed_exactly is False and again.env_steps == 128
