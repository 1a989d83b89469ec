"""Uniform random actions on a study's test seeds, evaluated as a trained run's final evaluation is.

    python benchmarks/random_baseline.py --study walker-walk --out results/baselines/walker-walk.random.json

For each test seed S, the study's evaluation episodes run on the same environments and episode seeds as the
final evaluation of a run trained with seed S (``Evaluator``, episode seeds S + 10,000 + i), with actions drawn
uniformly from the action space (NumPy's generator seeded with S) instead of the policy's mean. The JSON has
the format of ``benchmarks/ppo_baseline.py``'s, and ``benchmarks/results_table.py --baseline`` adds it as a row:
the floor that "learns well above a random policy" is read against (issue 18).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.study_results import CONFIRM_SEEDS, TEST_SEED_START  # noqa: E402
from vmpo_tune.config import TrainConfig  # noqa: E402
from vmpo_tune.evaluation import Evaluator  # noqa: E402
from vmpo_tune.search.spec import load_spec  # noqa: E402

ALGORITHM = "uniform random actions (no learning)"


class RandomActions:
    """What :func:`vmpo_tune.evaluation.run_episodes` asks of an agent, with actions uniform in [-1, 1] (the
    policy's range, which the evaluation scales to the env's bounds)."""

    def __init__(self, seed: int, act_dim: int) -> None:
        self.rng, self.act_dim = np.random.default_rng(seed), act_dim

    def sampler(self, deterministic: bool = True) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        return self._sample

    def _sample(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions = self.rng.uniform(-1.0, 1.0, size=(len(obs), self.act_dim)).astype(np.float32)
        return actions, actions


def returns(env_id: str, episodes: int, seeds: list[int]) -> list[dict]:
    """``[{seed, final_return, episode_returns}]``: the mean return of ``episodes`` random episodes per seed."""
    out = []
    for seed in seeds:
        evaluator = Evaluator(env_id, episodes, TrainConfig(seed=seed).resolved_eval_seed)
        try:
            act_dim = int(np.prod(evaluator.envs[0].action_space.shape))
            result = evaluator(RandomActions(seed, act_dim))
        finally:
            evaluator.close()
        out.append({"seed": seed, "final_return": result.mean, "episode_returns": list(result.returns)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True)
    p.add_argument(
        "--first-seed", type=int, default=TEST_SEED_START, help="the first test seed (default: the campaign's)"
    )
    p.add_argument("--seeds", type=int, default=CONFIRM_SEEDS, help="how many test seeds (default: the campaign's)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    spec = load_spec(args.study)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    command = (
        f"python benchmarks/random_baseline.py --study {args.study} --first-seed {args.first_seed} "
        f"--seeds {args.seeds} --out {args.out}"
    )
    data = {
        "algorithm": ALGORITHM,
        "env": spec.env_id,
        "steps": 0,
        "source": f"{command}, run {time.strftime('%Y-%m-%d')} on a {os.cpu_count()}-core {os.uname().machine} "
        f"machine; {spec.eval_episodes} episodes per seed",
        "command": command,
        "results": returns(spec.env_id, spec.eval_episodes, seeds),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    shown = " ".join(f"{r['final_return']:.0f}" for r in data["results"])
    print(f"{args.study} ({spec.env_id}), seeds {seeds[0]}-{seeds[-1]}: {shown}; wrote {args.out}")


if __name__ == "__main__":
    main()
