"""Worker processes: each one loads the study and runs trials until the budget is spent.

Workers are separate processes (``spawn``), one torch thread each, all on the same
storage. We start them with ``multiprocessing`` rather than joblib/loky: a search needs
each worker's process handle, to forward SIGTERM and to wait for every running trial to
be marked FAIL before exiting, which loky's pool API hides (its shutdown kills workers
outright).

Signals: the first SIGINT / SIGTERM stops a worker. A trial that is running is
interrupted, closes its environments, ends as FAIL ("interrupted by SIGINT") and is
queued for retry, so a rerun resumes it from its last checkpoint. Further signals are
ignored while the worker cleans up.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from ..errors import TrialFailed, UserError
from .factories import make_pruner, make_sampler
from .objective import RESUME_ATTR, Objective, cleanup_resume_checkpoints
from .spec import StudySpec
from .storage import GRACE_PERIOD, HEARTBEAT_INTERVAL, BudgetLock, open_storage, retry_callback
from .study import reserve_trial

log = logging.getLogger(__name__)


class Interrupted(BaseException):
    """Raised in a running trial after SIGINT / SIGTERM (a BaseException: nothing swallows it)."""


@dataclass(frozen=True)
class WorkerSettings:
    spec: StudySpec
    study_name: str
    storage_url: str
    n_trials: int
    out_dir: str
    artifact_dir: str | None
    device: str = "cpu"
    sampler: str | None = None
    pruner: str | None = None
    sampler_seed: int = 0
    timeout: float | None = None
    worker_index: int = 0
    log_level: int = logging.INFO
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD


class SignalStopper:
    """Records the first SIGINT / SIGTERM; the training loop asks :meth:`check` between updates.

    Nothing is raised from the signal handler itself: an exception thrown at an arbitrary
    bytecode could land inside a database call and leave a transaction (and SQLite's write
    lock) open. The trial stops at the next update boundary instead (well under a second).
    """

    def __init__(self) -> None:
        self.stopping = False
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        if not self.stopping:
            self.stopping = True
            self.signal_name = signal.Signals(signum).name

    def check(self) -> None:
        """Raise :class:`Interrupted` once a signal has arrived."""
        if self.stopping:
            raise Interrupted(self.signal_name)


class Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds on a daemon thread."""

    def __init__(self, storage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.interval = storage.get_heartbeat_interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{trial_id}")

    def _run(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # a transient database hiccup must not kill the trial
                log.warning("heartbeat of trial id %d failed: %s", self.trial_id, exc)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class ProgressSlot:
    """Where a worker publishes (trial number, env steps) for the live display."""

    def __init__(self, array=None, index: int = 0) -> None:
        self.array, self.index = array, index

    def set(self, trial_number: int, steps: int) -> None:
        if self.array is not None:
            self.array[2 * self.index] = trial_number
            self.array[2 * self.index + 1] = steps


def run_worker(settings: WorkerSettings, slot: ProgressSlot | None = None, install_signals: bool = True) -> str | None:
    """Run trials until the budget, the timeout or a signal stops this worker.

    Returns the name of the signal that stopped it, or None.
    """
    torch.set_num_threads(1)
    spec = settings.spec
    slot = slot or ProgressSlot()
    stopper = SignalStopper()
    if install_signals:
        stopper.install()
    storage = open_storage(settings.storage_url, heartbeat=True, heartbeat_interval=settings.heartbeat_interval,
                           grace_period=settings.grace_period)  # fmt: skip
    lock = BudgetLock(settings.storage_url, settings.study_name)
    store = None
    if settings.artifact_dir:
        Path(settings.artifact_dir).mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(settings.artifact_dir)
    try:
        study = optuna.load_study(
            study_name=settings.study_name,
            storage=storage,
            sampler=make_sampler(spec, settings.sampler, seed=settings.sampler_seed + settings.worker_index),
            pruner=make_pruner(spec, settings.pruner),
        )
        objective = Objective(spec, Path(settings.out_dir), settings.device, store, on_progress=slot.set,
                              interrupt_check=stopper.check)  # fmt: skip
        deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
        while not stopper.stopping and (deadline is None or time.monotonic() < deadline):
            trial = reserve_trial(study, lock, settings.n_trials)
            if trial is None:
                break
            slot.set(trial.number, 0)
            run_trial(study, trial, objective, stopper, store)
            slot.set(-1, 0)
    finally:
        lock.close()
        storage.remove_session()
        storage.engine.dispose()
    return stopper.signal_name


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Objective, stopper: SignalStopper, store) -> None:
    """Run one trial and tell its outcome; nothing but a signal escapes."""
    value, state, reason, interrupted = None, TrialState.FAIL, None, False
    start = time.perf_counter()
    with Heartbeat(study._storage, trial._trial_id):
        try:
            stopper.check()  # a signal that came while this trial was being reserved
            value = objective(trial)
            state = TrialState.COMPLETE
        except optuna.TrialPruned as exc:
            state, reason = TrialState.PRUNED, str(exc)
        except TrialFailed as exc:
            reason = str(exc)
        except Interrupted as exc:
            reason, interrupted = f"interrupted by {exc.args[0]}", True
        except UserError as exc:
            reason = str(exc)
        except Exception as exc:  # a bug or an environment error: the study goes on
            log.debug("trial %d raised", trial.number, exc_info=True)
            reason = f"{type(exc).__name__}: {exc}"
    if not interrupted and state != TrialState.COMPLETE:  # nothing will resume it: drop its checkpoints
        _drop_resume_checkpoints(trial, store)
    told = _tell(study, trial, state, value, reason)
    frozen = study._storage.get_trial(trial._trial_id)
    if interrupted and told:  # (if another worker failed it as stale, it queued the retry already)
        retry_callback()(study, frozen)  # queued again; a rerun resumes it from its checkpoint
    _log_outcome(frozen, reason, time.perf_counter() - start)


def _drop_resume_checkpoints(trial: optuna.Trial, store) -> None:
    try:
        cleanup_resume_checkpoints(store, trial.user_attrs.get(RESUME_ATTR))
        trial.set_user_attr(RESUME_ATTR, {})
    except Exception as exc:  # the trial may already be finished by another worker
        log.debug("could not drop the resume checkpoints of trial %d: %s", trial.number, exc)


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, value, reason: str | None) -> bool:
    """Store the outcome; False if another worker had already failed the trial as stale."""
    try:
        if reason is not None and state == TrialState.FAIL:
            trial.set_user_attr("fail_reason", reason)
        study.tell(trial, value, state=state)
        return True
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another worker (its heartbeat went stale)", trial.number)
        return False


def _log_outcome(trial, reason: str | None, wall: float) -> None:
    sps = trial.user_attrs.get("env_steps_per_s")
    speed = f", {sps:,.0f} steps/s" if sps else ""
    if trial.state == TrialState.COMPLETE:
        seeds = ", ".join(f"{r:.1f}" for r in trial.user_attrs.get("seed_returns", []))
        log.info("trial %d COMPLETE: %.1f (seeds: %s) in %.0fs%s", trial.number, trial.value, seeds, wall, speed)
    elif trial.state == TrialState.PRUNED:
        log.info("trial %d PRUNED: %s (%.0fs%s)", trial.number, reason, wall, speed)
    else:
        log.warning("trial %d FAIL: %s", trial.number, reason)


# ---------------------------------------------------------------------------- processes


def quiet_library_noise(log_level: int) -> None:
    """Optuna's experimental-feature warnings and per-evaluation trainer lines are noise in a search."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    logging.getLogger("optuna").setLevel(logging.WARNING)
    if log_level > logging.DEBUG:
        logging.getLogger("vmpo_tune.trainer").setLevel(logging.WARNING)


def _worker_main(settings: WorkerSettings, array) -> None:
    logging.basicConfig(level=settings.log_level, format=f"%(asctime)s w{settings.worker_index} %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    quiet_library_noise(settings.log_level)
    try:
        stopped_by = run_worker(settings, ProgressSlot(array, settings.worker_index))
    except UserError as exc:
        log.error("error: %s", exc)
        raise SystemExit(2) from None
    raise SystemExit(130 if stopped_by == "SIGINT" else 143 if stopped_by == "SIGTERM" else 0)


class WorkerPool:
    """K worker processes; forwards SIGINT / SIGTERM to them and waits for their cleanup."""

    def __init__(self, settings: WorkerSettings, workers: int) -> None:
        ctx = mp.get_context("spawn")
        self.array = ctx.Array("q", [-1, 0] * workers, lock=False)
        self.procs = [
            ctx.Process(target=_worker_main, args=(replace(settings, worker_index=i), self.array), name=f"worker-{i}")
            for i in range(workers)
        ]
        self.signal_name: str | None = None

    def start(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._forward)
        for p in self.procs:
            p.start()

    def _forward(self, signum, _frame) -> None:
        self.signal_name = self.signal_name or signal.Signals(signum).name
        for p in self.procs:
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.procs)

    def progress(self) -> list[tuple[int, int]]:
        return [(self.array[2 * i], self.array[2 * i + 1]) for i in range(len(self.procs))]

    def join(self) -> list[int]:
        for p in self.procs:
            p.join()
        return [p.exitcode for p in self.procs]
