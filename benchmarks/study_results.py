"""Every shipped study tuned and confirmed at its full budget, as a resumable campaign on whatever cores there are.

    python benchmarks/study_results.py run                    # the whole queue, resumable: rerun to continue
    python benchmarks/study_results.py run --studies walker2d # one study
    python benchmarks/study_results.py snapshot               # consistent copies of the live storages in results/
    python benchmarks/study_results.py tables                 # RESULTS.md sections of the confirmed studies
    python benchmarks/study_results.py status                 # how far each study got

Per study of :data:`QUEUE` (in order: Hopper at 1M first, then the studies that ship untested defaults), an
ordinary ``search`` (:data:`TRIALS` trials, the study's own sampler, pruner and default trial first) and then
``confirm --top 3`` of its best distinct trials *and the study's default* on the same 10 test seeds
(1000-1009, which no tuning run uses), each on the study's own SQLite file under ``runs/study-results/``
with the checkpoints, so a killed campaign continues where it stopped when rerun. After each step the storage is
copied consistently (SQLite's backup) to ``results/studies/NAME.db``, which is kept in the repository: on a new
machine ``run`` continues from that copy, and ``tables`` writes RESULTS.md from it
(``benchmarks/results_table.py``).

Cost on the 2-core development machine (two workers, one core each): a 1M-step Hopper run takes about 6-8
minutes, so a study's 30-trial search with pruning is about 1-2 hours and its confirmation (4 configurations x
10 seeds) about 2-3 hours.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._campaign import backup, cli, confirmation_done, continue_from_kept, load_campaign_study  # noqa: E402

QUEUE = ("hopper-1m", "halfcheetah", "walker2d", "walker-walk")
"""The studies in the order the campaign runs them (issue 18: Hopper at 1M first)."""
TRIALS, CONFIRM_TOP, CONFIRM_SEEDS, TEST_SEED_START = 30, 3, 10, 1000
LIVE = ROOT / "runs" / "study-results"
KEPT = ROOT / "results" / "studies"


def live_db(study: str) -> Path:
    return LIVE / f"{study}.db"


def kept_db(study: str) -> Path:
    return KEPT / f"{study}.db"


def search_command(study: str, workers: int) -> list[str]:
    return [
        "vmpo_tune.search", "--study", study, "--trials", str(TRIALS), "--out", str(LIVE / study),
        "--storage", f"sqlite:///{live_db(study)}", "--workers", str(workers),
    ]  # fmt: skip


def confirm_command(study: str, workers: int) -> list[str]:
    return [
        "vmpo_tune.confirm", "--study", study, "--run-dir", str(LIVE / study), "--top", str(CONFIRM_TOP),
        "--seeds", str(CONFIRM_SEEDS), "--test-seed-start", str(TEST_SEED_START),
        "--storage", f"sqlite:///{live_db(study)}", "--workers", str(workers),
    ]  # fmt: skip


def shown(command: list[str]) -> str:
    """A command as RESULTS.md shows it: ``python -m ...`` with this campaign's paths relative to the repository."""
    return "python -m " + " ".join(a.replace(f"{ROOT}/", "") for a in command)


def run_study(study: str, workers: int) -> None:
    (LIVE / study).mkdir(parents=True, exist_ok=True)
    continue_from_kept(live_db(study), kept_db(study))
    if confirmation_done(load_campaign_study(study, live_db(study)), CONFIRM_SEEDS):
        print(f"{study}: confirmed; nothing to run", flush=True)
        return
    cli(*search_command(study, workers))
    backup(live_db(study), kept_db(study))
    cli(*confirm_command(study, workers))
    backup(live_db(study), kept_db(study))


def status(studies: list[str]) -> None:
    for study in studies:
        data = load_campaign_study(study, kept_db(study))
        if data is None:
            print(f"{study}: not started")
            continue
        units = sum(t.state.is_finished() for t in data["units"])
        done = "confirmed" if confirmation_done(data, CONFIRM_SEEDS) else f"{units} confirmation units finished"
        print(f"{study}: {data['finished']} / {TRIALS} search trials finished; {done} ({data['simulator']})")


def tables(studies: list[str], machine: str, workers: int) -> None:
    for study in studies:
        if not confirmation_done(load_campaign_study(study, kept_db(study)), CONFIRM_SEEDS):
            print(f"{study}: not confirmed yet; its section stays as it is")
            continue
        cli(
            "benchmarks.results_table", "--study", study, "--storage", f"sqlite:///{kept_db(study)}",
            "--machine", machine, "--search-command", shown(search_command(study, workers)),
            "--note", f"The whole section, runs included: `python benchmarks/study_results.py run --studies {study}` "
            f"(then `... tables`); confirmation: `{shown(confirm_command(study, workers))}`; the study storage is "
            f"kept in `{kept_db(study).relative_to(ROOT)}`.",
        )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("run", "snapshot", "tables", "status"))
    p.add_argument("--studies", nargs="+", default=list(QUEUE), choices=QUEUE, help="in the queue's order")
    p.add_argument("--workers", type=int, default=2, help="worker processes per step (default 2)")
    p.add_argument("--machine", default=f"the {os.cpu_count()}-core {os.uname().machine} development machine")
    args = p.parse_args()
    studies = [s for s in QUEUE if s in args.studies]
    if args.command == "run":
        for study in studies:
            run_study(study, args.workers)
    elif args.command == "snapshot":
        for study in studies:
            if live_db(study).exists():
                backup(live_db(study), kept_db(study))
                print(f"kept {kept_db(study).relative_to(ROOT)}")
    elif args.command == "status":
        status(studies)
    else:
        tables(studies, args.machine, args.workers)


if __name__ == "__main__":
    main()
