"""A worker: it loads the study and runs trials until the budget is spent (in this process or a worker process).

Workers are separate processes (``spawn``), one torch thread each, all on the same
storage. We start them with ``multiprocessing`` rather than joblib/loky: a search needs
each worker's process handle, to forward SIGTERM and to wait for every running trial to
be marked FAIL before exiting, which loky's pool API hides (its shutdown kills workers
outright).

Signals: the first SIGINT / SIGTERM stops a worker. A trial that is running is
interrupted at the next update, closes its environments, ends as FAIL ("interrupted by
SIGINT") and is queued again, so a rerun resumes it exactly from its last evaluation.
Further signals are ignored while the worker cleans up.

The same workers run a search (trials sampled from the space) and a confirmation (queued
units, one configuration on one test seed each): :class:`WorkerSettings` says which.
"""

from __future__ import annotations

import functools
import logging
import signal
import time
from logging.handlers import QueueHandler
from pathlib import Path
from typing import Callable

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from .. import optuna_private, records
from ..budget_lock import BudgetLock
from ..cli_common import ExitCode
from ..errors import TrialFailed, UserError
from ..redaction import RedactingFormatter
from ..storage import open_storage
from ..storage_faults import StorageUnavailable
from . import racing
from .liveness import Heartbeat, fail_and_requeue
from .objective import Objective, UnitObjective
from .runner import TrialRunner, drop_resume
from .settings import ProgressSlot, WorkerSettings, quiet_library_noise
from .study import reserve_trial

log = logging.getLogger(__name__)


class Interrupted(BaseException):
    """Raised in a running trial after SIGINT / SIGTERM (a BaseException: nothing swallows it)."""


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalStopper:
    """Records the first SIGINT / SIGTERM; the training loop asks :meth:`check` between updates.

    Nothing is raised from the signal handler itself: an exception thrown at an arbitrary
    bytecode could land inside a database call and leave a transaction (and SQLite's write
    lock) open. The trial stops at the next update boundary instead (well under a second).

    ``parent_signal`` (a shared integer) carries a signal the parent received: a worker
    process starts with the signals ignored (:mod:`~vmpo_tune.search.worker_entry`), so one
    arriving while it imports cannot kill it half-way, and learns about it from there.
    """

    def __init__(self, parent_signal=None) -> None:
        self._signal = 0
        self._parent = parent_signal
        self._previous: dict = {}

    def install(self) -> None:
        for sig in _STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, _frame) -> None:
        if not self._signal:
            self._signal = signum

    @property
    def signum(self) -> int:
        return self._signal or (self._parent.value if self._parent is not None else 0)

    @property
    def stopping(self) -> bool:
        return bool(self.signum)

    @property
    def signal_name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None

    def check(self) -> None:
        """Raise :class:`Interrupted` once a signal has arrived."""
        if self.stopping:
            raise Interrupted(self.signal_name)


def _objective(settings: WorkerSettings, runner: TrialRunner) -> Callable[[optuna.Trial], float]:
    if settings.confirm or settings.spec is None:
        return UnitObjective(runner, settings.device)
    return Objective(settings.spec, runner, settings.device)


def run_worker(
    settings: WorkerSettings, slot: ProgressSlot | None = None, install_signals: bool = True, parent_signal=None
) -> str | None:
    """Run trials until the budget, the timeout or a signal stops this worker.

    Returns the name of the signal that stopped it, or None.
    """
    torch.set_num_threads(1)
    slot = slot or ProgressSlot()
    stopper = SignalStopper(parent_signal)
    if install_signals:
        stopper.install()
    storage = open_storage(settings.storage_url, patience=settings.patience, opened_before=True)  # by the command
    lock = BudgetLock(settings.storage_url, settings.study_name, patience=settings.patience)
    store = None
    if settings.artifact_dir:
        Path(settings.artifact_dir).mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(settings.artifact_dir)
    try:
        study = optuna.load_study(
            study_name=settings.study_name, storage=storage, sampler=settings.sampler, pruner=settings.pruner
        )
        runner = TrialRunner(
            Path(settings.out_dir),
            store,
            on_progress=slot.set,
            interrupt_check=stopper.check,
            tensorboard_dir=settings.tensorboard_dir,
        )
        objective = _objective(settings, runner)
        deadline = None if settings.timeout is None else time.monotonic() + settings.timeout

        def stopping() -> bool:
            return stopper.stopping or (deadline is not None and time.monotonic() >= deadline)

        plan_more = None
        if settings.spec is not None and settings.spec.search == "racing" and not settings.confirm:
            plan_more = functools.partial(
                racing.queue_next, base_seed=settings.spec.seed, max_seeds=settings.spec.race_seeds
            )
        while not stopping():
            trial = reserve_trial(
                study, lock, settings.n_trials, settings.grace_period, stopping=stopping, plan_more=plan_more
            )
            if trial is None:
                break
            slot.set(trial.number, 0)
            run_trial(study, trial, objective, stopper, store, settings.heartbeat_interval, lock)
            slot.set(-1, 0)
    finally:
        lock.close()
        storage.close()
        stopper.uninstall()
    return stopper.signal_name


def run_trial(
    study: optuna.Study, trial: optuna.Trial, objective, stopper: SignalStopper, store, interval, lock: BudgetLock
) -> None:
    """Run one trial and record its outcome; only a signal or a lost storage escapes."""
    value, state, reason, interrupted = None, TrialState.FAIL, None, False
    start = time.perf_counter()
    with Heartbeat(study, optuna_private.trial_id(trial), interval):
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
        except StorageUnavailable:
            raise  # nothing can be recorded; its heartbeat goes stale and the trial is retried elsewhere
        except UserError as exc:
            reason = str(exc)
        except Exception as exc:  # a bug or an environment error: the study goes on
            log.debug("trial %d raised", trial.number, exc_info=True)
            reason = f"{type(exc).__name__}: {exc}"
    if interrupted:  # queued again with its resume record: a rerun continues it exactly
        with lock.hold():  # the retry is a new trial: created under the budget lock, like every trial
            told = fail_and_requeue(study, optuna_private.fresh(study, trial), reason, interrupted=True)
    else:
        told = _tell(study, trial, state, value, reason, store)
    if not told:
        log.warning("trial %d was already finished by another worker (its heartbeat went stale)", trial.number)
    _log_outcome(records.TrialRecord.of(optuna_private.fresh(study, trial)), reason, time.perf_counter() - start)


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, value, reason: str | None, store) -> bool:
    """Store the outcome; False if another worker had already failed the trial as stale.

    A trial that ends without completing will never resume: its resume record is cleared
    (while the trial is still ours to change) and its blobs dropped.
    """
    try:
        if state != TrialState.COMPLETE:
            resume = records.read_resume(optuna_private.fresh(study, trial))
            records.write_resume(trial, {})
            drop_resume(store, resume)
        if reason is not None and state == TrialState.FAIL:
            records.write_fail_reason(trial, reason)
        study.tell(trial, value, state=state)
        return True
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    except ValueError as exc:  # Optuna's "Cannot tell a FAIL trial.": failed as stale during an outage meanwhile
        if str(exc).startswith("Cannot tell a "):
            return False
        raise


def run_name(trial: records.TrialRecord) -> str:
    """How a log line names a trial: ``trial 7``, or for a confirmation unit its candidate and seed
    (``unit 3: trial 11 on seed 1002``), never a bare number of the companion study."""
    if trial.candidate is None:
        return f"trial {trial.number}"
    seed = f" on seed {trial.seeds[0]}" if trial.seeds else ""
    return f"unit {trial.number}: {trial.candidate}{seed}"


def _log_outcome(trial: records.TrialRecord, reason: str | None, wall: float) -> None:
    sps = trial.env_steps_per_s
    speed = f", {sps:,.0f} steps/s" if sps else ""
    name = run_name(trial)
    if trial.state == TrialState.COMPLETE:
        if trial.candidate is None:
            seeds = ", ".join(f"{r:.1f}" for r in trial.seed_returns)
            log.info("%s COMPLETE: %.1f (seeds: %s) in %.0fs%s", name, trial.value, seeds, wall, speed)
        else:
            log.info("%s COMPLETE: %.1f in %.0fs%s", name, trial.value, wall, speed)
    elif trial.state == TrialState.PRUNED:
        log.info("%s PRUNED: %s (%.0fs%s)", name, reason, wall, speed)
    else:
        log.warning("%s FAIL: %s", name, reason)


# ---------------------------------------------------------------------------- processes


def worker_main(settings: WorkerSettings, array, log_queue, parent_signal) -> None:
    """A worker process: logging through the parent's queue, then :func:`run_worker`; exits with a status code."""
    handler: logging.Handler = logging.StreamHandler() if log_queue is None else QueueHandler(log_queue)
    handler.setFormatter(RedactingFormatter(f"%(asctime)s w{settings.worker_index} %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    quiet_library_noise()
    try:
        stopped_by = run_worker(settings, ProgressSlot(array, settings.worker_index), parent_signal=parent_signal)
    except StorageUnavailable as exc:
        log.error("error: %s", exc)
        raise SystemExit(ExitCode.STORAGE_LOST) from None
    except UserError as exc:
        log.error("error: %s", exc)
        raise SystemExit(ExitCode.USER_ERROR) from None
    raise SystemExit(int(ExitCode.of_signal(stopped_by)))
