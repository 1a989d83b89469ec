"""The training vector env is Gymnasium's SyncVectorEnv, bit for bit, minus the per-step info merge."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from vmpo_tune.envs import TrainingVectorEnv, make_vector_env


def _pair(env_id: str, n: int, max_episode_steps: int):
    fns = [lambda: gym.make(env_id, max_episode_steps=max_episode_steps) for _ in range(n)]
    mode = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    return gym.vector.SyncVectorEnv(fns, **mode), TrainingVectorEnv(fns, **mode)


@pytest.mark.parametrize("env_id, limit", [("Hopper-v5", 40), ("InvertedPendulum-v5", 6)])
def test_every_step_equals_sync_vector_envs_with_the_final_observations_and_infos(env_id, limit):
    stock, lean = _pair(env_id, 4, max_episode_steps=limit)  # random actions end episodes both ways: fall, time
    rng = np.random.default_rng(0)
    obs_a, _ = stock.reset(seed=7)
    obs_b, _ = lean.reset(seed=7)
    assert np.array_equal(obs_a, obs_b)
    terminated = truncated = 0
    for _ in range(600):
        actions = rng.uniform(-1, 1, stock.action_space.shape).astype(np.float32)
        a, b = stock.step(actions), lean.step(actions)
        for x, y in zip(a[:4], b[:4]):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        ended = a[2] | a[3]
        terminated, truncated = terminated + int(a[2].sum()), truncated + int(a[3].sum())
        if ended.any():
            assert np.array_equal(a[4]["_final_obs"], b[4]["_final_obs"]) and np.array_equal(a[4]["_final_obs"], ended)
            for i in np.flatnonzero(ended):
                assert np.array_equal(a[4]["final_obs"][i], b[4]["final_obs"][i])
            assert a[4]["final_info"].keys() == b[4]["final_info"].keys()
            for key, value in a[4]["final_info"].items():
                assert np.array_equal(value, b[4]["final_info"][key]), key
            assert set(b[4]) == {"final_obs", "_final_obs", "final_info", "_final_info"}
        else:
            assert b[4] == {}  # no per-step keys: that merge is what the training env leaves out
    assert terminated > 5 and truncated > 5  # both kinds of episode end were compared
    stock.close()
    lean.close()


def test_the_training_env_is_the_lean_one_under_the_episode_statistics():
    envs = make_vector_env("Hopper-v5", 2, seed=0)
    try:
        assert isinstance(envs, gym.wrappers.vector.RecordEpisodeStatistics)
        assert type(envs.env) is TrainingVectorEnv
        envs.reset(seed=0)
        returns = []
        for _ in range(300):
            _, _, _, _, infos = envs.step(np.ones((2, 3), dtype=np.float32))  # full torque: episodes end early
            if "episode" in infos:
                returns += list(infos["episode"]["r"][infos["_episode"]])
        assert returns and all(np.isfinite(returns))
    finally:
        envs.close()


def test_a_training_run_is_the_same_bit_for_bit_as_on_sync_vector_env(monkeypatch):
    """The returns a run records (episodes during training, evaluations) and its final weights are those the
    stock SyncVectorEnv gives: results stored before the training env changed stay reproducible."""
    import torch

    from vmpo_tune import envs, metrics
    from vmpo_tune.config import TrainConfig, VMPOConfig
    from vmpo_tune.trainer import VMPOTrainer

    def run():
        train = TrainConfig(env_id="Hopper-v5", num_envs=4, rollout_steps=64, seed=3, eval_interval=2_048)
        trainer = VMPOTrainer.from_configs(VMPOConfig(m_steps=2), train)
        result = trainer.train(6_144, None)
        weights = torch.cat([p.detach().flatten() for p in trainer.agent.policy.parameters()])
        return result, weights

    lean, lean_weights = run()
    monkeypatch.setattr(envs, "TrainingVectorEnv", gym.vector.SyncVectorEnv)
    stock, stock_weights = run()
    assert torch.equal(lean_weights, stock_weights)
    assert len(lean.evaluations) == len(stock.evaluations) == 3
    for a, b in zip(lean.evaluations, stock.evaluations):
        assert a.result == b.result  # the evaluation episodes' returns
        shared = sorted(set(a.train_metrics) & set(b.train_metrics))
        assert metrics.TRAIN_EPISODE_RETURN in shared
        same = {k: a.train_metrics[k] for k in shared if "per_s" not in k and "time" not in k}
        assert same == {k: b.train_metrics[k] for k in same}, "training episodes and losses differ"
    assert lean.env_steps == stock.env_steps == 6_144


def test_a_checkpoint_of_the_stock_vector_env_restores_into_the_training_env_and_back():
    """Checkpoints written before the training env existed (a plain SyncVectorEnv under the statistics wrapper)
    resume exactly in it, and the other way round: both continue with the same steps, bit for bit."""
    from vmpo_tune import envstate
    from vmpo_tune.envs import _make_env

    def stock_env():
        inner = gym.vector.SyncVectorEnv(
            [_make_env("Hopper-v5", 5 + i) for i in range(3)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        return gym.wrappers.vector.RecordEpisodeStatistics(inner)

    rng = np.random.default_rng(1)
    actions = [rng.uniform(-1, 1, (3, 3)).astype(np.float32) for _ in range(120)]
    for first, second in ((stock_env, lambda: make_vector_env("Hopper-v5", 3, seed=5)),
                          (lambda: make_vector_env("Hopper-v5", 3, seed=5), stock_env)):  # fmt: skip
        source = first()
        source.reset(seed=11)
        for a in actions[:50]:  # mid-episode, some episodes over, statistics and generators moved on
            source.step(a)
        snapshot = envstate.capture(source)
        assert not snapshot.inexact
        target = second()
        target.reset(seed=999)
        envstate.restore(target, snapshot.data)
        for a in actions[50:]:
            x, y = source.step(a), target.step(a)
            for u, v in zip(x[:4], y[:4]):
                assert np.array_equal(u, v)
            assert ("episode" in x[4]) == ("episode" in y[4])
            if "episode" in x[4]:
                assert np.array_equal(x[4]["episode"]["r"], y[4]["episode"]["r"])
        source.close()
        target.close()
