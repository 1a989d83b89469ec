"""Worker processes against Optuna's thread-based ``n_jobs``, same objective, same machine.

Runs the same number of short trials of a study three ways and reports env steps per
second of the whole search (wall clock, start-up included):

* ``--workers 1``: one process (the baseline);
* ``--workers K``: K worker processes, vmpo-tune's way;
* ``study.optimize(n_jobs=K)``: Optuna's threads in one process (what rl-zoo's ``--n-jobs`` does).

    python benchmarks/parallel.py                    # InvertedPendulum, 8 trials of 20k steps, K = cores
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

from vmpo_tune.search.objective import Objective
from vmpo_tune.search.runner import TrialRunner
from vmpo_tune.search.spec import load_spec

try:
    from benchmarks._report import write_section
except ImportError:  # pragma: no cover
    from _report import write_section

ROOT = Path(__file__).resolve().parents[1]


def run_cli(study: str, trials: int, workers: int, steps: int, folder: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "vmpo_tune.search",
            "--study",
            study,
            "--trials",
            str(trials),
            "--workers",
            str(workers),
            "--total-steps",
            str(steps),
            "--pruner",
            "none",
            "--out",
            str(folder),
            "-q",
        ],
        check=True,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def run_threads(study: str, trials: int, jobs: int, steps: int, folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    torch.set_num_threads(1)
    spec = dataclasses.replace(load_spec(study), total_steps=steps)
    objective = Objective(spec, TrialRunner(folder))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(
        direction="maximize", storage=f"sqlite:///{folder / 'threads.db'}", pruner=optuna.pruners.NopPruner()
    )
    s.optimize(objective, n_trials=trials, n_jobs=jobs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="invertedpendulum")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    total = args.trials * args.steps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        runs = [
            ("1 process (baseline)", lambda: run_cli(args.study, args.trials, 1, args.steps, base / "one")),
            (
                f"{args.workers} worker processes (`--workers {args.workers}`)",
                lambda: run_cli(args.study, args.trials, args.workers, args.steps, base / "procs"),
            ),
            (
                f"{args.workers} threads (`study.optimize(n_jobs={args.workers})`)",
                lambda: run_threads(args.study, args.trials, args.workers, args.steps, base / "threads"),
            ),
        ]
        for name, fn in runs:
            wall = fn()
            rows.append((name, wall))
            print(f"{name}: {wall:.1f} s, {total / wall:,.0f} env steps/s")
    baseline = rows[0][1]
    lines = [
        f"`python benchmarks/parallel.py --study {args.study} --trials {args.trials} --steps {args.steps} "
        f"--workers {args.workers}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: the same "
        f"{args.trials} trials (no pruning), wall clock of the whole search including process start-up.",
        "",
        "| how | wall time | env steps/s | speed-up vs 1 process |",
        "|---|---:|---:|---:|",
    ]
    for name, wall in rows:
        lines.append(f"| {name} | {wall:.1f} s | {total / wall:,.0f} | **{baseline / wall:.2f}x** |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(
            ROOT / args.out, f"parallel-{args.workers}", f"Parallel search ({args.study}, {args.workers} workers)", text
        )


if __name__ == "__main__":
    main()
