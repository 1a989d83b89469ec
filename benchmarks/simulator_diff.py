"""How far apart two MuJoCo releases put the same Gymnasium episode.

One Python environment holds one MuJoCo, so this runs in two: record in each, then compare.

    python benchmarks/simulator_diff.py record mujoco-3.npz      # in an environment with MuJoCo 3.x
    python benchmarks/simulator_diff.py record mujoco-4.npz      # in one with MuJoCo 4.x
    python benchmarks/simulator_diff.py compare mujoco-3.npz mujoco-4.npz

``record`` steps each env 3,000 times with the same uniform random actions (NumPy seed 0, resets
seeded by the step number) and keeps every observation and reward; ``compare`` prints, per env, the
largest observation difference and the two reward sums. Rounding-level differences grow in chaotic
environments (a long episode diverges further), so both are shown.
"""

from __future__ import annotations

import argparse

import numpy as np

ENVS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "InvertedPendulum-v5")
STEPS = 3000


def record(path: str) -> None:
    import gymnasium as gym
    import mujoco

    out = {"mujoco": np.array(mujoco.__version__)}
    for env_id in ENVS:
        env = gym.make(env_id)
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        observations, rewards = [], []
        for t in range(STEPS):
            obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            observations.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                env.reset(seed=t)
        out[f"{env_id}/obs"], out[f"{env_id}/reward"] = np.array(observations), np.array(rewards)
    np.savez_compressed(path, **out)
    print(f"recorded {', '.join(ENVS)} on MuJoCo {mujoco.__version__} into {path}")


def compare(a: str, b: str) -> None:
    x, y = np.load(a), np.load(b)
    print(f"MuJoCo {x['mujoco']} against {y['mujoco']}, {STEPS} random steps per env")
    print("| env | largest observation difference | steps that differ | reward sum A | reward sum B |")
    print("|---|---:|---:|---:|---:|")
    for env_id in ENVS:
        d = np.abs(x[f"{env_id}/obs"] - y[f"{env_id}/obs"])
        rows = int((d.max(axis=1) > 0).sum())
        ra, rb = x[f"{env_id}/reward"].sum(), y[f"{env_id}/reward"].sum()
        print(f"| {env_id} | {d.max():.2e} | {rows} of {STEPS} | {ra:.6f} | {rb:.6f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("record").add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args()
    record(args.out) if args.command == "record" else compare(args.a, args.b)


if __name__ == "__main__":
    main()
