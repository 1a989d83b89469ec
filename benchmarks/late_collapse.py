"""Why returns fall after their peak, measured: the study default on fresh seeds, with and without a schedule.

    python benchmarks/late_collapse.py --study hopper --steps 1000000 --seeds 8 --first-seed 2000 \\
        --variant constant --variant linear:0.1 --workers 16 --out late-collapse.json

Each (variant, seed) trains in its own process (one torch thread) with an evaluation every
``--eval-interval`` env steps, and records at each evaluation the return and the training
diagnostics the issue asks about: the mean KL against ``epsilon_mu``, the temperature eta,
the policy's standard deviation, the value function's explained variance and the
learning-rate factor. A variant is ``constant`` or ``SCHEDULE:FINAL`` (``linear:0.1``:
step sizes decay linearly to a tenth over the budget). The summary prints, per variant,
the IQM of the returns at each evaluation, the peak and the final IQM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIAGNOSTICS = ("kl/mean", "vmpo/eta", "policy/std", "value/explained_variance", "optim/lr_factor")


def run(job: tuple[str, str, int, int, int]) -> dict:
    study, variant, seed, steps, interval = job
    import torch

    from vmpo_tune.search.spec import default_params, load_spec, params_to_config
    from vmpo_tune.trainer import VMPOTrainer

    torch.set_num_threads(1)
    spec = load_spec(study)
    cfg = params_to_config(spec, default_params(spec), seed=seed)
    agent, train = cfg.agent, cfg.train
    if variant != "constant":
        schedule, final = variant.split(":")
        agent = dataclasses.replace(agent, lr_schedule=schedule, lr_final_fraction=float(final))
    train = dataclasses.replace(train, eval_interval=interval)
    trainer = VMPOTrainer.from_configs(agent, train)
    trainer.train(steps, None, log_evaluations=False)
    rows = [{k: r.get(k) for k in ("env_steps", "eval/return_mean", *DIAGNOSTICS)} for r in trainer.history]
    return {"variant": variant, "seed": seed, "curve": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="hopper")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--eval-interval", type=int, default=100_000)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--first-seed", type=int, default=2000)
    p.add_argument("--variant", action="append", default=[])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="late-collapse.json")
    args = p.parse_args()
    from vmpo_tune.stats import iqm

    variants = args.variant or ["constant", "linear:0.1"]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(args.study, v, s, args.steps, args.eval_interval) for v in variants for s in seeds]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(run, jobs)
    Path(args.out).write_text(json.dumps({"args": vars(args), "runs": results}, indent=1))
    for v in variants:
        curves = [r["curve"] for r in results if r["variant"] == v]
        marks = [row["env_steps"] for row in curves[0]]
        by_mark = [iqm([c[i]["eval/return_mean"] for c in curves]) for i in range(len(marks))]
        line = " ".join(f"{m // 1000}k:{x:.0f}" for m, x in zip(marks, by_mark))
        finals = [c[-1]["eval/return_mean"] for c in curves]
        print(f"{v}: IQM by step {line} | peak {max(by_mark):.0f} | final IQM {iqm(finals):.0f}, min {min(finals):.0f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
