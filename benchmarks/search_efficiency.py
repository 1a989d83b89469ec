"""Which search strategy gives the best *confirmed* configuration per CPU hour?

    python benchmarks/search_efficiency.py --study hopper --budget-trials 120 --repeats 2 \\
        --workers 16 --confirm-top 5 --confirm-seeds 10

Strategies, each with the same nominal env-step budget (trials x seeds per trial x steps):

* ``tpe-1seed``: TPE, one seed per trial, median pruning, then confirm the top K;
* ``tpe-3seeds``: TPE, three seeds per trial (a third of the trials), seed-aware median
  pruning (``seedmedian``: prunes only when the mean plus a standard error of the seeds is
  below the median), then confirm the top K;
* ``random-1seed``: random sampling, one seed per trial, median pruning (the floor).

Each strategy runs ``--repeats`` times with different study seeds (so different tuning and
test seeds), through the ordinary CLI (search, then confirm), each in its own folder. The
table reports, per run, the confirmed IQM of the winner on the test seeds, the winner's
search score, the env steps and CPU hours spent by the search and by the confirmation, and
the confirmed IQM per search CPU hour; then the mean per strategy. ``--total-steps``,
``--eval-interval`` and ``--eval-episodes`` shrink the runs for a quick look on a small
machine (the section then says so).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from vmpo_tune import records  # noqa: E402

STRATEGIES = {
    "tpe-1seed": {"sampler": "tpe", "seeds": 1, "pruner": "median"},
    "tpe-3seeds": {"sampler": "tpe", "seeds": 3, "pruner": "seedmedian"},
    "random-1seed": {"sampler": "random", "seeds": 1, "pruner": "median"},
}


def cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", *args, "-q"], check=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)


def run_one(args: argparse.Namespace, name: str, repeat: int, folder: Path) -> dict:
    strategy = STRATEGIES[name]
    trials = max(1, args.budget_trials // strategy["seeds"])
    out = folder / f"{name}-{repeat}"
    overrides = []
    for flag in ("total_steps", "eval_interval", "eval_episodes"):
        if getattr(args, flag):
            overrides += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    cli(
        "vmpo_tune.search",
        "--study",
        args.study,
        "--out",
        str(out),
        "--trials",
        str(trials),
        "--workers",
        str(args.workers),
        "--sampler",
        strategy["sampler"],
        "--pruner",
        strategy["pruner"],
        "--seeds-per-trial",
        str(strategy["seeds"]),
        "--seed",
        str(1000 * repeat),
        *overrides,
    )
    cli(
        "vmpo_tune.confirm",
        "--study",
        Path(args.study).stem,
        "--run-dir",
        str(out),
        "--top",
        str(args.confirm_top),
        "--seeds",
        str(args.confirm_seeds),
        "--workers",
        str(args.workers),
    )
    study, _, storage = records.open_existing_study(Path(args.study).stem, None, out)
    winner = records.read_confirmation(study)[0]
    units = records.load_companion(storage, study.study_name).get_trials(deepcopy=False)
    trials_run = study.get_trials(deepcopy=False)
    search_hours = records.cpu_hours(trials_run)
    return {
        "strategy": name,
        "repeat": repeat,
        "trials": len(trials_run),
        "winner": winner["label"],
        "search_score": winner["search_score"],
        "iqm": winner["iqm"],
        "iqm_ci": winner["iqm_ci"],
        "search_steps": records.env_steps(trials_run),
        "search_hours": search_hours,
        "confirm_hours": records.cpu_hours(units),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="hopper")
    p.add_argument("--budget-trials", type=int, default=120, help="trials of the 1-seed strategies")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--confirm-top", type=int, default=5)
    p.add_argument("--confirm-seeds", type=int, default=10)
    p.add_argument("--total-steps", type=int)
    p.add_argument("--eval-interval", type=int)
    p.add_argument("--eval-episodes", type=int)
    p.add_argument("--machine", default=f"{os.cpu_count()}-core {os.uname().machine}")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name in STRATEGIES:
                row = run_one(args, name, repeat, Path(tmp))
                print(row, flush=True)
                rows.append(row)
    lines = [
        "| strategy | repeat | trials | winner | search score | confirmed IQM [95% CI] | search env steps | "
        "search CPU h | confirm CPU h | IQM per search CPU h |",
        "|---|---:|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_hour = r["iqm"] / r["search_hours"] if r["search_hours"] else float("nan")
        lines.append(
            f"| {r['strategy']} | {r['repeat']} | {r['trials']} | {r['winner']} | {r['search_score']:.1f} | "
            f"{r['iqm']:.1f} [{r['iqm_ci'][0]:.1f}, {r['iqm_ci'][1]:.1f}] | {r['search_steps']:,} | "
            f"{r['search_hours']:.2f} | {r['confirm_hours']:.2f} | {per_hour:.0f} |"
        )
    lines += ["", "| strategy | mean confirmed IQM of the winner | mean search CPU h |", "|---|---:|---:|"]
    for name in STRATEGIES:
        mine = [r for r in rows if r["strategy"] == name]
        lines.append(
            f"| {name} | {sum(r['iqm'] for r in mine) / len(mine):.1f} | "
            f"{sum(r['search_hours'] for r in mine) / len(mine):.2f} |"
        )
    reduced = any(getattr(args, f) for f in ("total_steps", "eval_interval", "eval_episodes"))
    command = "python benchmarks/search_efficiency.py " + shlex.join(sys.argv[1:])
    intro = (
        f"`{command}` on {args.machine}. Same nominal env-step budget per strategy: {args.budget_trials} one-seed "
        f"trials or {args.budget_trials // 3} three-seed trials; confirmation of the top {args.confirm_top} and the "
        f"default on {args.confirm_seeds} test seeds."
        + (
            " **Reduced run** (shorter trials than the study's): a smoke test of the method, not an answer."
            if reduced
            else ""
        )
    )
    write_section(
        Path(args.out),
        f"search-efficiency-{Path(args.study).stem}",
        f"Search efficiency ({args.study})",
        intro + "\n\n" + "\n".join(lines),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
