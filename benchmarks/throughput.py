"""Throughput: the trainer's env steps per second against the raw simulator, same run.

For each number of environments, alternates a raw-simulator run (random actions in a
``SyncVectorEnv`` with the same autoreset mode, no policy) and a training run of the
default configuration *with its default evaluation schedule*, ``--repeats`` times, and
reports medians and the ratio trainer / raw. Results go to BENCHMARKS.md.

    python benchmarks/throughput.py                      # Hopper-v5, 1 and 8 envs
    python benchmarks/throughput.py --steps 20000 --repeats 1 --no-write   # quick look
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import gymnasium as gym
import torch

from vmpo_tune.config import TrainConfig, VMPOConfig
from vmpo_tune.trainer import VMPOTrainer

try:  # run as a script from the repo root or as a module
    from benchmarks._report import write_section
except ImportError:  # pragma: no cover
    from _report import write_section


def raw_rate(env_id: str, num_envs: int, steps: int, seed: int) -> float:
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    try:
        envs.reset(seed=seed)
        envs.action_space.seed(seed)
        start = time.perf_counter()
        for _ in range(steps // num_envs):
            envs.step(envs.action_space.sample())
        return (steps // num_envs) * num_envs / (time.perf_counter() - start)
    finally:
        envs.close()


def trainer_rate(env_id: str, num_envs: int, steps: int, seed: int) -> tuple[float, float]:
    """Env steps per second of a full ``train()`` (collection, updates, evaluations); eval share."""
    train = TrainConfig(env_id=env_id, seed=seed, num_envs=num_envs)
    trainer = VMPOTrainer.from_configs(VMPOConfig(), train)
    start = time.perf_counter()
    result = trainer.train(steps, None)
    wall = time.perf_counter() - start
    return result.env_steps / wall, sum(p.eval_time for p in result.evaluations) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run (default 100k: 2 evaluations)")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    defaults = TrainConfig()
    rows = []
    for n in args.envs:
        raws, trains, evals = [], [], []
        for r in range(args.repeats):
            raws.append(raw_rate(args.env, n, args.steps, seed=r))
            rate, share = trainer_rate(args.env, n, args.steps, seed=r)
            trains.append(rate)
            evals.append(share)
            print(f"{n} envs, repeat {r}: raw {raws[-1]:,.0f}/s, trainer {rate:,.0f}/s ({share:.0%} evaluating)")
        ratios = [t / w for t, w in zip(trains, raws)]
        rows.append(
            (
                n,
                statistics.median(raws),
                statistics.median(trains),
                statistics.median(ratios),
                min(ratios),
                statistics.median(evals),
            )
        )
    lines = [
        f"`python benchmarks/throughput.py --env {args.env} --steps {args.steps} --repeats {args.repeats}` "
        f"on {platform.machine()} ({torch.get_num_threads()} torch thread), {time.strftime('%Y-%m-%d')}.",
        f"Default configuration (2x256 networks, rollout_steps {defaults.rollout_steps} per env, m_steps 1), "
        f"evaluation every {defaults.eval_interval:,} steps and at the end, {defaults.eval_episodes} episodes.",
        "Raw = random actions in the same `SyncVectorEnv` (same-step autoreset), no policy. Medians of the repeats;",
        "the ratio is the median of per-repeat ratios (each pair ran back to back), min in brackets.",
        "",
        "| envs | raw steps/s | trainer steps/s (incl. evaluation) | trainer / raw | time evaluating |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, raw, train, ratio, worst, ev in rows:
        lines.append(f"| {n} | {raw:,.0f} | {train:,.0f} | **{ratio:.2f}** (min {worst:.2f}) | {ev:.0%} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(Path(args.out), "throughput", f"Throughput ({args.env})", text)


if __name__ == "__main__":
    main()
