"""``python -m vmpo_tune.search``: run (or resume) a hyperparameter search."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys
import threading
import zlib
from pathlib import Path

from ..cli_common import add_common_flags, configure_logging, positive_int, run_cli
from ..errors import UserError
from .factories import make_pruner, make_sampler
from .objective import study_seeds
from .progress import ProgressDisplay
from .spec import PRUNERS, SAMPLERS, StudySpec, load_study
from .storage import (
    ENV_STORAGE,
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    BudgetLock,
    open_storage,
    redact_url,
    resolve_url,
)
from .study import counts, create_or_load
from .worker import ProgressSlot, WorkerPool, WorkerSettings, quiet_library_noise, run_worker

log = logging.getLogger("vmpo_tune.search")

EPILOG = f"""
examples:
  python -m vmpo_tune.search --study invertedpendulum --trials 20 --workers 2
  python -m vmpo_tune.search --study hopper --trials 200 --workers 8 \\
      --storage postgresql://tuner@db.example/vmpo      # many machines: run this on each

--trials is the study's target of finished trials (complete, pruned or failed), shared
by every worker on the same storage: rerunning a study that holds 120 runs 80 more.
A failed trial that was retried is replaced by its retry and not counted twice.

Storage: --storage, else ${ENV_STORAGE}, else the SQLite file <out>/study.db. Reruns resume.
Ctrl-C / SIGTERM stop cleanly: running trials end as FAIL and are queued again, so the
next run resumes them from their last checkpoint.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vmpo_tune.search", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--study", required=True, help="study name (studies/NAME.yaml) or path to a study YAML file")
    p.add_argument("--trials", type=positive_int, default=100,
                   help="target number of finished trials in the study, across all workers (default 100)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--storage", help=f"Optuna RDB URL (default: ${ENV_STORAGE} or sqlite:///<out>/study.db)")
    p.add_argument("--study-name", help="name of the stored study (default: the study file's name)")
    p.add_argument("--total-steps", type=positive_int, help="env steps per trial and seed (overrides the study)")
    p.add_argument("--eval-interval", type=positive_int, help="env steps between evaluations (overrides the study)")
    p.add_argument("--eval-episodes", type=positive_int, help="episodes per evaluation (overrides the study)")
    p.add_argument("--seeds-per-trial", type=positive_int, help="seeds trained per trial (overrides the study)")
    p.add_argument("--timeout", type=float, help="seconds after which workers start no new trial")
    p.add_argument("--seed", type=int, help="base seed of training runs and samplers (default: the study's)")
    p.add_argument("--sampler", choices=SAMPLERS, help="sampler (default: the study's)")
    p.add_argument("--pruner", choices=PRUNERS, help="pruner (default: the study's)")
    p.add_argument("--device", default="cpu", help="torch device for training: cpu or cuda (default cpu)")
    p.add_argument("--out", help="folder for the default storage and per-trial files (default runs/<study>)")
    p.add_argument("--artifact-dir", help="Optuna artifact store folder (default <out>/artifacts); share it "
                   "between machines so retried trials can resume from checkpoints")  # fmt: skip
    p.add_argument("--heartbeat-interval", type=positive_int, default=HEARTBEAT_INTERVAL,
                   help=f"seconds between a running trial's heartbeats (default {HEARTBEAT_INTERVAL})")
    p.add_argument("--grace-period", type=positive_int, default=GRACE_PERIOD,
                   help=f"seconds without heartbeat after which a trial counts as dead, is failed and retried "
                   f"(default {GRACE_PERIOD})")  # fmt: skip
    add_common_flags(p)
    return p


def apply_overrides(spec: StudySpec, args: argparse.Namespace) -> StudySpec:
    changes = {}
    for flag, field in (("total_steps", "total_steps"), ("eval_interval", "eval_interval"),
                        ("eval_episodes", "eval_episodes"), ("seeds_per_trial", "seeds_per_trial"),
                        ("seed", "seed")):  # fmt: skip
        if getattr(args, flag) is not None:
            changes[field] = getattr(args, flag)
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    return dataclasses.replace(spec, **changes)


def search(args: argparse.Namespace) -> int:
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    spec = apply_overrides(load_study(args.study), args)
    make_sampler(spec, args.sampler, seed=0)  # sampler / pruner options are checked before anything runs
    make_pruner(spec, args.pruner)
    study_name = args.study_name or spec.name
    out = Path(args.out) if args.out else Path("runs") / study_name
    url = resolve_url(args.storage, out)
    _make_out(out)
    # heartbeat settings let this process fail the trials of dead workers before it counts the budget
    storage = open_storage(url, heartbeat=True, create_parent=url.startswith("sqlite:///") and not args.storage,
                           heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period)  # fmt: skip
    lock = BudgetLock(url, study_name)
    try:
        study, created = create_or_load(storage, spec, study_name, lock)
        c = counts(study.get_trials(deepcopy=False))
        where = redact_url(url)
        log.info("%s study %r (%s, %s steps per trial, seeds %s) in %s", "created" if created else "resuming",
                 study_name, spec.env_id, f"{spec.total_steps:,}", study_seeds(spec), where)  # fmt: skip
        if c["waiting"] == 0 and c["used"] >= args.trials:
            log.info("the study already holds %d finished trials (target %d): nothing to run", c["finished"],
                     args.trials)  # fmt: skip
            _summary(study, where)
            return 0
        log.info("%d finished so far; target %d; %d worker process(es)", c["finished"], args.trials, args.workers)
        # distinct per run, machine and worker: machines started together must not propose the same points
        run_seed = spec.seed + 1000 * len(study.trials) + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())
        settings = _worker_settings(args, spec, study_name, url, out, sampler_seed=run_seed % 2**31)
        display = ProgressDisplay(study, args.trials, spec.total_steps)
        if args.workers == 1:
            stopped_by, died = _run_in_process(settings, display), []
        else:
            stopped_by, died = _run_pool(settings, args.workers, display)
        _summary(study, where)
    finally:
        lock.close()
    if stopped_by:
        log.warning("stopped by %s; running trials were marked FAIL and queued again: rerun the same command to "
                    "resume", stopped_by)  # fmt: skip
        return 130 if stopped_by == "SIGINT" else 143
    if died:
        log.error("%d worker process(es) died (exit codes %s); their trials are retried once their heartbeat is "
                  "stale: rerun the same command to finish the budget", len(died), died)  # fmt: skip
        return 1
    return 0


def _worker_settings(args: argparse.Namespace, spec: StudySpec, study_name: str, url: str, out: Path,
                     sampler_seed: int) -> WorkerSettings:  # fmt: skip
    return WorkerSettings(
        spec=spec, study_name=study_name, storage_url=url, n_trials=args.trials, out_dir=str(out),
        artifact_dir=str(Path(args.artifact_dir) if args.artifact_dir else out / "artifacts"),
        device=args.device, sampler=args.sampler, pruner=args.pruner, sampler_seed=sampler_seed,
        timeout=args.timeout, log_level=logging.getLogger().level, heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
    )  # fmt: skip


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out}: {exc.strerror}; pick a writable --out") from None


def _run_in_process(settings: WorkerSettings, display: ProgressDisplay) -> str | None:
    array = [-1, 0]
    done = threading.Event()

    def show() -> None:
        while not done.wait(1.0):
            display.update([(array[0], array[1])])

    thread = threading.Thread(target=show, daemon=True)
    thread.start()
    try:
        return run_worker(settings, ProgressSlot(array, 0))
    finally:
        done.set()
        thread.join()
        display.update([], force=True)
        display.close()


def _run_pool(settings: WorkerSettings, workers: int, display: ProgressDisplay) -> tuple[str | None, list[int]]:
    """Run the worker processes; returns the signal that stopped them (if any) and abnormal exit codes."""
    pool = WorkerPool(settings, workers)
    pool.start()
    try:
        while pool.alive():
            display.update(pool.progress())
            for p in pool.procs:
                p.join(timeout=1.0 / len(pool.procs))
    finally:
        codes = pool.join()
        display.update([], force=True)
        display.close()
    if 2 in codes:
        raise UserError("a worker stopped on an error (see above)")
    by_signal = {130: "SIGINT", 143: "SIGTERM"}
    stopped_by = pool.signal_name or next((by_signal[c] for c in codes if c in by_signal), None)
    return stopped_by, [c for c in codes if c not in (0, *by_signal)]


def _summary(study, where: str) -> None:
    c = counts(study.get_trials(deepcopy=False))
    log.info("%d finished: %d complete, %d pruned, %d failed (%d retried, %d running, %d waiting)", c["finished"],
             c["complete"], c["pruned"], c["fail"], c["retried"], c["running"], c["waiting"])  # fmt: skip
    try:
        best = study.best_trial
    except ValueError:
        log.info("no complete trial yet")
        return
    log.info("best: trial %d with %.1f; params %s", best.number, best.value, best.params)
    log.info("export it with: python -m vmpo_tune.export --study %s --storage '%s'", study.study_name, where)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    quiet_library_noise(logging.getLogger().level)
    return run_cli(lambda: search(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
