"""The README's first command, timed: the demo search run several times, each in a fresh folder.

    python benchmarks/demo_runs.py --runs 3

Each run is exactly ``python -m vmpo_tune.search --study demo --trials 12 --workers 2`` in a new
empty folder (so a new study on the embedded SQLite default); the script reports each run's wall
time, its best trial's score and the default configuration's score, and the ranges the README
quotes. Run it on an otherwise idle machine: the README's figures are for a newcomer's machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["-m", "vmpo_tune.search", "--study", "demo", "--trials", "12", "--workers", "2"]


def one_run(folder: Path) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VMPO_TUNE_STUDIES": str(ROOT / "studies")}
    env.pop("VMPO_TUNE_STORAGE", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, *COMMAND, "-q"], cwd=folder, env=env, check=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{folder / 'runs' / 'demo' / 'study.db'}")
    default = next(t for t in study.trials if t.number == 0)  # the documented default runs first
    return wall, study.best_value, float(default.value if default.value is not None else float("nan"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    rows = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(one_run(Path(tmp)))
        print(f"run {i}: {rows[-1][0]:.0f} s, best {rows[-1][1]:.0f}, default {rows[-1][2]:.0f}", flush=True)
    walls, bests, defaults = zip(*rows)
    print(
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores: search {min(walls):.0f}-{max(walls):.0f} s; best trial "
        f"{min(bests):.0f}-{max(bests):.0f}; default {min(defaults):.0f}-{max(defaults):.0f} ({args.runs} runs)"
    )


if __name__ == "__main__":
    main()
