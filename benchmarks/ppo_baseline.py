"""SB3 PPO with rl-baselines3-zoo's tuned Hopper settings, on given seeds: the reference row of RESULTS.md.

    pip install stable-baselines3
    python benchmarks/ppo_baseline.py --env Hopper-v5 --steps 300000 --first-seed 1000 --seeds 10 \\
        --workers 10 --out ppo-hopper.json

The hyperparameters are the zoo's ``Hopper-v3`` entry of ``hyperparams/ppo.yml`` (tuned by
its authors), used as they are on Hopper-v5: VecNormalize on observations and rewards, one
env, 512 steps per update, batch 32, 5 epochs, gamma 0.999, GAE 0.99, learning rate
9.80828e-05, entropy 0.00229519, clip 0.2, grad norm 0.7, value coefficient 0.835671,
ReLU 2x256 separate networks, log std starting at -2, no orthogonal init. Evaluation
matches vmpo-tune's: the final policy, deterministic, ``--eval-episodes`` episodes on envs
seeded ``seed + 10,000 + i``, observations normalised with the frozen training statistics,
raw returns. Each seed runs in its own process with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

ZOO_HOPPER = dict(
    n_steps=512,
    batch_size=32,
    gamma=0.999,
    learning_rate=9.80828e-05,
    ent_coef=0.00229519,
    clip_range=0.2,
    n_epochs=5,
    gae_lambda=0.99,
    max_grad_norm=0.7,
    vf_coef=0.835671,
)


def run_seed(args: tuple[str, int, int, int]) -> dict:
    env_id, seed, steps, episodes = args
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    start = time.perf_counter()
    venv = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed), gamma=ZOO_HOPPER["gamma"])
    policy_kwargs = dict(
        log_std_init=-2, ortho_init=False, activation_fn=torch.nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256])
    )
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", policy_kwargs=policy_kwargs, verbose=0, **ZOO_HOPPER)
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    venv.training, venv.norm_reward = False, False
    returns = []
    for i in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed + 10_000 + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(venv.normalize_obs(obs[None]), deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += float(reward)
            done = terminated or truncated
        env.close()
        returns.append(total)
    return {"seed": seed, "final_return": float(np.mean(returns)), "episodes": returns, "wall_time_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", default="ppo-results.json")
    args = p.parse_args()
    jobs = [(args.env, s, args.steps, args.eval_episodes) for s in range(args.first_seed, args.first_seed + args.seeds)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = []
        for result in pool.imap(run_seed, jobs):
            print(
                f"seed {result['seed']}: final {result['final_return']:.1f} ({result['wall_time_s']:.0f} s)", flush=True
            )
            results.append(result)
    doc = {
        "algorithm": "SB3 PPO, rl-zoo3 tuned Hopper-v3 settings",
        "env": args.env,
        "steps": args.steps,
        "hyperparameters": ZOO_HOPPER,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
