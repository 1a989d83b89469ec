"""python -m vmpo_tune.search: run (or resume) a hyperparameter search.

Why this module is long (about 450 lines): it is the search's whole command line (flags, their checks
against the stored study, the pre-flight messages and the closing summary). The work itself is
elsewhere: workers in :mod:`.launch` / :mod:`.worker`, the study in :mod:`.study`, the confirmation
in :mod:`.stage`; what is left here is the order of user-facing checks, which reads best in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys
import zlib
from pathlib import Path

import optuna

from .. import next_steps, records, simulator, tblog
from ..budget_lock import BudgetLock
from ..cli_common import ExitCode, Parser, add_common_flags, configure_logging, positive_int, run_cli
from ..cli_flags import storage_help
from ..envs import EnvError, check_env
from ..errors import UserError
from ..redaction import redact_url
from ..stats import check_objective
from ..storage import open_storage
from ..storage_faults import PATIENCE
from ..storage_urls import ENV_STORAGE, parse_url, resolve_url
from . import racing
from .enqueue import configs_to_enqueue
from .factories import make_pruner, make_sampler
from .launch import WORKERS_PER_CORE, Outcome, check_folders, check_worker_count, prepare_folders, run_workers
from .liveness import GRACE_PERIOD, HEARTBEAT_INTERVAL, check_liveness
from .progress import ProgressDisplay, duration
from .settings import WorkerSettings, quiet_library_noise
from .spec import PRUNERS, SAMPLERS, SEARCHES, StudySpec, load_spec
from .stage import confirmation_exit_code, format_table, run_confirmation
from .study import create_or_load
from .studyfiles import study_listing

log = logging.getLogger("vmpo_tune.search")

EPILOG = """
studies (--study NAME, or a path to a study YAML file):
{studies}

examples:
  python -m vmpo_tune.search --study demo --trials 12 --workers 2        # under a minute on 2 cores
  python -m vmpo_tune.search --study hopper --trials 200 --workers 8 --confirm-top 5 --confirm-seeds 10
  python -m vmpo_tune.search --study hopper --trials 200 --workers 8 \\
      --storage postgresql://tuner@db.example/vmpo      # many machines: run this on each

--trials is the study's target of finished trials (complete, pruned or failed), shared
by every worker on the same storage: rerunning a study that holds 120 runs 80 more.
A failed trial that was retried is replaced by its retry and not counted twice.

Storage: --storage, else ${env_storage}, else the SQLite file <out>/study.db. Reruns resume.
Ctrl-C / SIGTERM stop cleanly: running trials end as FAIL and are queued again, so the
next run resumes them exactly where they stopped.
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m vmpo_tune.search",
        description=__doc__,
        epilog=EPILOG.format(studies=study_listing(), env_storage=ENV_STORAGE),  # read when the parser is built
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--study", required=True, help="study name (studies/NAME.yaml) or path to a study YAML file")
    p.add_argument(
        "--trials",
        type=positive_int,
        default=100,
        help="target number of finished trials in the study, across all workers (default 100)",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument(
        "--force", action="store_true", help=f"allow more than {WORKERS_PER_CORE} workers per CPU core of this machine"
    )
    p.add_argument("--storage", help=storage_help("<out>"))
    p.add_argument("--study-name", help="name of the stored study (default: the study file's name)")
    p.add_argument("--total-steps", type=positive_int, help="env steps per trial and seed (overrides the study)")
    p.add_argument("--eval-interval", type=positive_int, help="env steps between evaluations (overrides the study)")
    p.add_argument("--eval-episodes", type=positive_int, help="episodes per evaluation (overrides the study)")
    p.add_argument("--seeds-per-trial", type=positive_int, help="seeds trained per trial (overrides the study)")
    p.add_argument(
        "--objective",
        help="per seed: final, best, auc (mean of all evaluations) or last_K (mean of the last K, e.g. last_3) "
        "(overrides the study)",
    )
    p.add_argument("--timeout", type=float, help="seconds after which workers start no new trial")
    p.add_argument("--seed", type=int, help="base seed of training runs and samplers (default: the study's)")
    p.add_argument(
        "--search",
        choices=SEARCHES,
        help="standard: every trial trains all its seeds; racing: a trial is one seed run and a configuration "
        "earns more seeds only while it may beat the incumbent on the same seeds (default: the study's)",
    )
    p.add_argument(
        "--race-seeds", type=positive_int, help="with racing: the seeds the winner accumulates (default: the study's)"
    )
    p.add_argument("--sampler", choices=SAMPLERS, help="sampler (default: the study's)")
    p.add_argument("--pruner", choices=PRUNERS, help="pruner (default: the study's)")
    p.add_argument("--device", default="cpu", help="torch device for training: cpu or cuda (default cpu)")
    p.add_argument("--out", help="folder for the default storage and per-trial files (default runs/<study>)")
    p.add_argument(
        "--artifact-dir",
        help="Optuna artifact store folder (default <out>/artifacts); share it between machines so retried "
        "trials can resume from checkpoints",
    )
    p.add_argument(
        "--enqueue",
        metavar="FILE",
        action="append",
        default=[],
        help="queue the configuration(s) in FILE (an exported run file, or a YAML mapping of config fields) "
        "before sampling; checked against the study's search space",
    )
    p.add_argument(
        "--confirm-top",
        type=positive_int,
        help="once the budget is used, confirm the K best trials and the default on fresh seeds",
    )
    p.add_argument(
        "--confirm-seeds", type=positive_int, default=10, help="test seeds per confirmed candidate (default 10)"
    )
    p.add_argument(
        "--heartbeat-interval",
        type=positive_int,
        default=HEARTBEAT_INTERVAL,
        help=f"seconds between a running trial's heartbeats (default {HEARTBEAT_INTERVAL})",
    )
    p.add_argument(
        "--grace-period",
        type=positive_int,
        default=GRACE_PERIOD,
        help="seconds without heartbeat after which a trial counts as dead, is failed and retried "
        f"(default {GRACE_PERIOD})",
    )
    p.add_argument(
        "--patience",
        type=positive_int,
        default=int(PATIENCE),
        help=f"seconds a failing storage call is retried before the storage counts as gone (default {PATIENCE:.0f})",
    )
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars of every run under DIR")
    add_common_flags(p)
    return p


def apply_overrides(spec: StudySpec, args: argparse.Namespace) -> StudySpec:
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    changes = {
        field: getattr(args, field)
        for field in ("total_steps", "eval_interval", "eval_episodes", "seeds_per_trial", "seed")
        if getattr(args, field) is not None
    }
    if args.search is not None:
        changes["search"] = args.search
    if args.race_seeds is not None:
        if (args.search or spec.search) != "racing":
            raise UserError("--race-seeds needs a racing search: add --search racing")
        if args.race_seeds < 2:
            raise UserError(f"--race-seeds must be at least 2, got {args.race_seeds}")
        changes["race_seeds"] = args.race_seeds
    if changes.get("search", spec.search) == "racing" and changes.get("seeds_per_trial", spec.seeds_per_trial) != 1:
        raise UserError("a racing search trains one seed per trial (seeds are earned): drop --seeds-per-trial")
    if args.objective is not None:
        try:
            changes["objective"] = check_objective(args.objective)
        except ValueError as exc:
            raise UserError(f"--objective: {exc}") from None
    return dataclasses.replace(spec, **changes)


def check_args(args: argparse.Namespace) -> None:
    """Everything about the flags that can be checked before anything is opened or stored."""
    simulator.check_clean()
    if args.timeout is not None and not (args.timeout > 0 and args.timeout != float("inf")):
        raise UserError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    check_worker_count(args.workers, args.force)
    if args.tensorboard:
        tblog.check_available(args.tensorboard)
    check_liveness(args.heartbeat_interval, args.grace_period)


def search(args: argparse.Namespace) -> int:
    check_args(args)
    spec = apply_overrides(load_spec(args.study), args)
    queued = [(path, params) for path in args.enqueue for params in configs_to_enqueue(spec, Path(path))]
    if queued and 1 + len(queued) > args.trials:  # the default runs first: refused before any study is created
        raise UserError(
            f"--trials {args.trials} leaves no room for {len(queued)} queued configuration(s) and the default; raise "
            f"--trials to at least {1 + len(queued)}"
        )
    try:  # parsing checked the id against the registry; one env built here checks its spaces before anything is stored
        check_env(spec.env_id)
    except EnvError as exc:
        raise UserError(f"{spec.path}: env_id: {exc}") from None
    study_name = args.study_name or spec.name
    if records.is_companion(study_name):
        raise UserError(
            f"study name {study_name!r} is the name of a confirmation's companion study (names ending in "
            f"{' or '.join(map(repr, records.COMPANION_SUFFIXES))} are reserved for them); pick another --study-name"
        )
    out = Path(args.out) if args.out else records.default_run_dir(study_name)
    artifact_dir = Path(args.artifact_dir) if args.artifact_dir else records.artifact_dir(study_name, out)
    # distinct per run, machine and worker: machines started together must not propose the same points
    run_seed = zlib.crc32(f"{spec.seed}:{socket.gethostname()}:{os.getpid()}".encode()) % 2**31
    samplers = [make_sampler(spec, args.sampler, seed=(run_seed + i) % 2**31) for i in range(args.workers)]
    pruner = make_pruner(spec, args.pruner)
    url = resolve_url(args.storage, out)
    storage = _open_storage(args, url, out, artifact_dir)
    lock = BudgetLock(url, study_name, patience=args.patience)
    where = redact_url(url)
    try:
        study, created = create_or_load(storage, spec, study_name, lock, args.grace_period)
        if queued:
            _enqueue(study, lock, queued, args.trials)
        counts = records.budget_counts(study.get_trials(deepcopy=False))
        log.info(
            "%s study %r (%s, %s steps per trial, tuning seeds %s) in %s; objective: %s",
            "created" if created else "resuming",
            study_name,
            spec.env_id,
            f"{spec.total_steps:,}",
            spec.tuning_seeds,
            where,
            spec.info().objective_description(),
        )
        settings = WorkerSettings(
            spec=spec,
            study_name=study_name,
            storage_url=url,
            n_trials=args.trials,
            out_dir=str(out),
            artifact_dir=str(artifact_dir),
            pruner=pruner,
            device=args.device,
            timeout=args.timeout,
            log_level=logging.getLogger().level,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
            patience=args.patience,
            tensorboard_dir=args.tensorboard,
        )
        outcome = Outcome()
        if counts.waiting == 0 and counts.used >= args.trials and counts.running == 0:
            log.info(
                "the study already holds %d finished trials (target %d): nothing to run", counts.finished, args.trials
            )
        else:
            log.info("%s; target %d; %d worker process(es)", counts.summary(), args.trials, args.workers)
            _expectation(spec, study, args)
            display = ProgressDisplay(study, args.trials, spec.total_steps)
            outcome = run_workers(settings, args.workers, display, per_worker=lambda i: {"sampler": samplers[i]})
        complete = _summary(study)
        code = _exit_code(study, args.trials, outcome)
        if code == 0 and args.confirm_top and complete:
            code = _confirm(study, storage, settings, args)
        if code == 0 and complete:
            confirmed = bool(records.read_confirmation(study))
            hint_flags = next_steps.locating_flags(study_name, args.storage and url, args.out)
            check = next_steps.held_out_pending(study)
            lines = next_steps.suggestions(
                study_name,
                hint_flags,
                confirmed=confirmed,
                workers=args.workers,
                held_out=check,
                adopt=next_steps.adoptable(study, spec),
            )
            for line in lines:
                log.info("next: %s", line)
        return code
    finally:
        lock.close()
        storage.close()


def _open_storage(args: argparse.Namespace, url: str, out: Path, artifact_dir: Path):
    """The study's storage, with the output folders checked first and made (for a server, once it answered)."""
    if url.startswith("sqlite:") and parse_url(url).database in (None, "", ":memory:"):
        raise UserError(
            "an in-memory SQLite storage lives inside one process, and worker processes cannot share it; use a "
            "file (--storage sqlite:///path/study.db, or no --storage for runs/<study>/study.db)"
        )
    check_folders(out, artifact_dir)
    server = not url.startswith(("sqlite:", "journal:"))  # a file storage may live in the output folder
    if not server:
        prepare_folders(out, artifact_dir)
    storage = open_storage(url, create_parent=not args.storage and url.startswith("sqlite:///"), patience=args.patience)
    if server:  # made once the server answered: an unreachable one leaves no folder behind
        prepare_folders(out, artifact_dir)
    return storage


def _enqueue(study: optuna.Study, lock: BudgetLock, queued: list, n_trials: int) -> None:
    """Queue hand-written configurations; they count against --trials like every trial (under the lock)."""
    with lock.hold():
        trials = study.get_trials(deepcopy=False)
        there = [{**t.system_attrs.get("fixed_params", {}), **t.params} for t in trials]
        # a rerun of the same command: a configuration a trial already holds (its other parameters sampled) is skipped
        queued = [
            (path, params)
            for path, params in queued
            if not any(all(k in held and held[k] == v for k, v in params.items()) for held in there)
        ]
        used = records.budget_counts(trials).used
        if used + len(queued) > n_trials:
            raise UserError(
                f"the study holds {used} trial(s) and --trials is {n_trials}: no room for {len(queued)} queued "
                f"configuration(s); raise --trials to at least {used + len(queued)}"
            )
        for path, params in queued:
            study.enqueue_trial(params, user_attrs=records.enqueued_attrs(path), skip_if_exists=True)
            log.info("queued the configuration of %s (parameters %s)", path, params)


def _expectation(spec: StudySpec, study: optuna.Study, args: argparse.Namespace) -> None:
    """Say at the start how long the budget will take, from this study's finished trials if it has some."""
    trials = study.get_trials(deepcopy=False)
    left = max(args.trials - records.budget_counts(trials).finished, 0)
    cores = os.cpu_count() or 1
    per_trial = seconds_per_trial(trials)
    if per_trial is not None:
        log.info(
            "expected: about %s for %d more trial(s) with %d worker(s) (%.0f s per trial so far, pruned ones included)",
            duration(per_trial * -(-left // args.workers)),  # rounds of trials: one trial never splits
            left,
            args.workers,
            per_trial,
        )
    elif spec.timing.get("seconds_per_trial") and args.total_steps is None and args.seeds_per_trial is None:
        per_trial = float(spec.timing["seconds_per_trial"])
        log.info(
            "expected: about %s for %d trial(s) with %d worker(s) (%.0f s per trial measured on %s)",
            duration(per_trial * -(-left // args.workers)),
            left,
            args.workers,
            per_trial,
            spec.timing.get("measured_on", "the reference machine"),
        )
    else:
        log.info("expected time: the status line shows an estimate once trials report progress")
    if args.workers < cores and left > args.workers:
        log.info("this machine has %d cores: --workers %d would use them all", cores, cores)


def seconds_per_trial(trials) -> float | None:
    """Mean seconds a trial of this study takes, from its finished trials (None before the first).

    Seconds per env step actually trained, times the steps a finished trial ran in all: a trial
    that was resumed trained only its last part in its recorded wall time, so its wall time
    alone would make the estimate too short.
    """
    timed = [t for t in trials if t.state.is_finished() and t.user_attrs.get(records.WALL_TIME)]
    trained = sum(int(t.user_attrs.get(records.ENV_STEPS_TRAINED) or 0) for t in timed)
    if not timed or not trained:
        return None
    rate = sum(float(t.user_attrs[records.WALL_TIME]) for t in timed) / trained
    retried = records.retried_numbers(trials)  # an interrupted attempt is not a trial of its own
    whole = [t for t in timed if t.number not in retried] or timed
    return rate * sum(_full_steps(t) for t in whole) / len(whole)


def _full_steps(trial) -> int:
    """Env steps a finished trial ran over all its attempts (all seeds)."""
    seeds = len(trial.user_attrs.get(records.SEEDS) or []) or 1
    trained = int(trial.user_attrs.get(records.ENV_STEPS_TRAINED) or 0)
    return trained + seeds * int(trial.user_attrs.get(records.RESUMED_FROM) or 0)


def _summary(study: optuna.Study) -> bool:
    counts = records.budget_counts(study.get_trials(deepcopy=False))
    log.info("%s", counts.summary())
    try:
        best = study.best_trial
    except ValueError:
        log.info("no complete trial yet")
        return False
    info = records.read_study_info(study)
    if info.search == "racing":
        _race_summary(study, info)
        return True
    scored = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    default = next((t for t in scored if records.TrialRecord.of(t).is_default), None)
    versus = ""
    if default is not None and default.number != best.number:
        versus = f" (the default configuration, trial {default.number}, scored {default.value:.1f})"
    log.info(
        "best (on the tuning seeds): trial %d with %.1f%s; params %s", best.number, best.value, versus, best.params
    )
    return True


def _race_summary(study: optuna.Study, info: records.StudyInfo) -> None:
    """The race's standing: the incumbent on its seeds, and how the seed runs were spent."""
    table = racing.standings(study.get_trials(deepcopy=False), info.seed)
    if not table:
        log.info("racing: no configuration has completed its first seed yet")
        return
    leader = table[0]
    log.info(
        "racing: %d configuration(s) raced; the winner (configuration of trial %d) stands on %d of %d seeds "
        "with a mean of %.1f (seeds: %s)",
        len(racing.contenders(study.get_trials(deepcopy=False), info.seed)),
        leader.first,
        leader.n,
        info.race_seeds,
        leader.mean,
        ", ".join(f"{v:.1f}" for v in leader.seed_values()),
    )
    for c in table[1:4]:
        log.info("  then: configuration of trial %d, %d seed(s), mean %.1f", c.first, c.n, c.mean)


def _exit_code(study: optuna.Study, n_trials: int, outcome: Outcome) -> int:
    """Say truly how the run ended: stopped, storage lost, workers died with work left, or done."""
    counts = records.budget_counts(study.get_trials(deepcopy=False))
    if outcome.stopped_by:
        log.warning(
            "stopped by %s; running trials were marked FAIL and queued again: rerun the same command to resume them",
            outcome.stopped_by,
        )
        return ExitCode.of_signal(outcome.stopped_by)
    if outcome.storage_lost:
        log.error("the storage was unreachable for too long; rerun the same command when it is back")
        return ExitCode.STORAGE_LOST
    short = counts.waiting or counts.running or counts.used < n_trials
    if outcome.died:
        log.error(
            "%d worker process(es) died (exit codes %s)%s",
            len(outcome.died),
            outcome.died,
            "; rerun the same command to finish the budget" if short else "; the budget was finished by the others",
        )
        return ExitCode.INTERNAL
    return ExitCode.OK


def _confirm(study: optuna.Study, storage, settings: WorkerSettings, args: argparse.Namespace) -> int:
    result = run_confirmation(
        study, storage, settings, top=args.confirm_top, seeds=args.confirm_seeds, total_steps=None, workers=args.workers
    )
    print(format_table(result.ranked, result.counts))
    return confirmation_exit_code(result.outcome)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    quiet_library_noise()
    return run_cli(lambda: search(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
