"""python -m vmpo_tune.train: train from an exported run file, on one or several seeds.

With the trial's own seed on CPU it reproduces the trial's final evaluation return
exactly (on the machine and library build that ran the search). --seeds N trains N
seeds (the trial's first, then new ones; --fresh skips every seed the search and its
confirmation used) and reports the mean, standard deviation and interquartile mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from . import provenance, simulator, tblog
from .cli_common import Parser, add_common_flags, configure_logging, positive_int, run_cli
from .errors import UserError
from .runfile import load_run
from .stats import iqm
from .trainer import VMPOTrainer

log = logging.getLogger("vmpo_tune.train")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m vmpo_tune.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", required=True, help="run file written by python -m vmpo_tune.export")
    p.add_argument("--rank", type=positive_int, default=1, help="which exported run to train (default 1, the best)")
    p.add_argument("--seeds", type=positive_int, help="number of seeds (default: the trial's own seeds)")
    p.add_argument("--fresh", action="store_true", help="use seeds the search never trained on")
    p.add_argument("--first-seed", type=int, help="train seeds FIRST_SEED, FIRST_SEED + 1, ... instead")
    p.add_argument("--total-steps", type=positive_int, help="env steps per seed (default: the trial's budget)")
    p.add_argument("--device", help="torch device (default: the run file's)")
    p.add_argument("--out", help="output folder (default runs/train/<study>-trial<N>)")
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars of each seed's run under DIR")
    add_common_flags(p)
    return p


def pick_seeds(trial_seeds: tuple[int, ...], n: int | None, fresh: bool, used: tuple[int, ...] = ()) -> list[int]:
    """The trial's seeds, or ``n`` seeds: the trial's first unless ``fresh``, then seeds nothing used."""
    if n is None and not fresh:
        return list(trial_seeds)
    n = n or len(trial_seeds) or 1
    start = max((*trial_seeds, *used), default=-1) + 1
    pool = [] if fresh else list(trial_seeds)
    return (pool + list(range(start, start + n)))[:n]


def return_stats(returns: list[float]) -> dict[str, float]:
    x = np.asarray(returns, dtype=float)
    return {
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        "iqm": iqm(x),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def train(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # one thread: the same arithmetic as a search worker, so results reproduce
    simulator.check_clean()
    run = load_run(args.config, args.rank)
    total = args.total_steps or run.config.total_steps
    if args.first_seed is not None:
        if args.first_seed < 0:
            raise UserError(f"--first-seed must be >= 0, got {args.first_seed}")
        seeds = list(range(args.first_seed, args.first_seed + (args.seeds or 1)))
    else:
        seeds = pick_seeds(run.seeds, args.seeds, args.fresh, run.used_seeds)
    out = Path(args.out) if args.out else run.default_out()
    train_cfg = run.config.train if args.device is None else dataclasses.replace(run.config.train, device=args.device)
    score = "" if run.score is None else f" (search score {run.score:.1f})"
    log.info("training %s of %s%s on seeds %s for %s steps each", run.name, run.study, score, seeds, f"{total:,}")
    if run.resume_exact is False and set(seeds) & set(run.seeds):
        print(
            f"note: {run.name} was resumed without its environments' state during the search; its score will not "
            "be reproduced exactly"
        )
    if run.mujoco and run.mujoco != simulator.mujoco_version() and set(seeds) & set(run.seeds):
        print(
            f"note: {run.name} ran on MuJoCo {run.mujoco} and this environment has {simulator.mujoco_version()}; "
            "the same model computed with other rounding: its score will not be reproduced exactly"
        )
    other_cpu = provenance.other_cpu(run.cpu, run.cpu_kind)
    if other_cpu and train_cfg.device == "cpu" and set(seeds) & set(run.seeds):
        print(
            f"note: {run.name} {other_cpu}; runs reproduce bit for bit only on one kind of CPU: its score may not be "
            f'reproduced exactly (README, "{provenance.REPRODUCTION_HELP}", says how a newer CPU can compute an '
            "older one's bits)"
        )
    finals, bests = [], []
    if args.tensorboard:
        tblog.check_available(args.tensorboard)
    for seed in seeds:
        trainer = VMPOTrainer.from_configs(run.config.agent, dataclasses.replace(train_cfg, seed=seed))
        board = tblog.ScalarLog(Path(args.tensorboard) / f"seed-{seed}") if args.tensorboard else None
        try:
            result = trainer.train(total, out / f"seed_{seed}", callback=_board_writer(trainer, board))
        finally:
            if board is not None:
                board.close()
        finals.append(result.final_return)
        bests.append(result.best_return)
        print(
            f"seed {seed}: final {result.final_return:.1f}, best {result.best_return:.1f} "
            f"({result.steps_per_second:,.0f} steps/s)"
        )
    stats = return_stats(finals)
    report = {
        "study": run.study,
        "trial": run.trial,
        "search_score": run.score,
        "seeds": seeds,
        "total_steps": total,
        "final_returns": finals,
        "best_returns": bests,
        "final": stats,
    }
    results = _unused(out / "results.yaml")
    results.write_text(yaml.safe_dump(report, sort_keys=False))
    print(
        f"final return over {len(seeds)} seed(s): mean {stats['mean']:.1f}, std {stats['std']:.1f}, "
        f"IQM {stats['iqm']:.1f}{score}; results in {results}"
    )
    return 0


def _board_writer(trainer: VMPOTrainer, board):
    """A train() callback that writes each evaluation's row to TensorBoard (and never stops training)."""
    if board is None:
        return None
    return lambda _steps, _result: board.write(trainer.history[-1])


def _unused(path: Path) -> Path:
    """``path``, or ``stem-2.suffix``, ``stem-3.suffix``, ... if it exists (an earlier run's results stay)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: train(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
