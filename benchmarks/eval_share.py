"""Evaluation late in training: its share of a run's time with a policy that survives whole episodes.

Early in training, Hopper's episodes end after a few dozen steps and an evaluation costs
nothing; a trained policy survives the full 1,000 steps, so each evaluation of the study's
schedule steps ``episodes x 1,000`` environment steps. This script times such evaluations
(the study's episode count, the trainer's own batched :class:`~vmpo_tune.evaluation.Evaluator`)
with a trained checkpoint, and the study's default configuration training for a short while
in the same process, and reports the share of a run's time the evaluations take at the
study's schedule: ``eval / (interval / training rate + eval)``.

    python benchmarks/eval_share.py --study hopper --checkpoint runs/.../seed1001_best.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from vmpo_tune.agent import VMPOAgent  # noqa: E402
from vmpo_tune.evaluation import Evaluator  # noqa: E402
from vmpo_tune.search.spec import default_params, load_spec, params_to_config  # noqa: E402
from vmpo_tune.trainer import VMPOTrainer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="hopper")
    p.add_argument("--checkpoint", required=True, help="a trained agent (a trial's seed<S>_best.pt artifact)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=40_960, help="env steps timed for the training rate")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    spec = load_spec(args.study)
    cfg = params_to_config(spec, default_params(spec))
    agent_config, train_config = cfg.agent, cfg.train
    trained = VMPOAgent.load(args.checkpoint)
    evaluator = Evaluator(spec.env_id, spec.eval_episodes, train_config.resolved_eval_seed)
    evals, rates, lengths, returns = [], [], [], []
    try:
        for r in range(args.repeats):
            start = time.perf_counter()
            result = evaluator(trained)
            evals.append(time.perf_counter() - start)
            lengths.append(sum(result.lengths) / len(result.lengths))
            returns.append(result.mean)
            # the study's configuration, evaluated once at the end only (an untrained policy: a few ms)
            quiet = dataclasses.replace(train_config, eval_interval=args.train_steps, seed=r)
            rates.append(VMPOTrainer.from_configs(agent_config, quiet).train(args.train_steps, None).steps_per_second)
            print(
                f"repeat {r}: evaluation {evals[-1]:.2f} s (mean length {lengths[-1]:.0f}), training {rates[-1]:,.0f}/s"
            )
    finally:
        evaluator.close()
    ev, rate = statistics.median(evals), statistics.median(rates)
    train_s = spec.eval_interval / rate
    share = ev / (train_s + ev)
    text = (
        f"`python benchmarks/eval_share.py --study {args.study} --checkpoint CKPT` on {time.strftime('%Y-%m-%d')}, "
        f"one core: a trained `{args.study}` policy (return {statistics.median(returns):,.0f}, episodes of "
        f"{statistics.median(lengths):,.0f} steps) evaluated on {spec.eval_episodes} episodes takes {ev:.2f} s "
        f"(median of {args.repeats}); the study's default configuration trains at {rate:,.0f} env steps/s, so "
        f"{spec.eval_interval:,} steps between evaluations take {train_s:.1f} s: evaluations are **{share:.1%}** of "
        "a run's time late in training, at the study's schedule."
    )
    print(text)
    if not args.no_write:
        write_section(Path(args.out), "eval-share", f"Evaluation late in training (`{args.study}`)", text)


if __name__ == "__main__":
    main()
