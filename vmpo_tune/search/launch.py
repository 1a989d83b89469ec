"""Running the workers of a search or a confirmation, with the live display, and what stopped them.

:class:`WorkerPool` starts the worker processes and forwards signals to them.

One worker runs in this process; several run as processes whose log records come back
through a queue, so every line reaches the console through the display.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing as mp
import os
import queue
import signal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from ..cli_common import DATE_FORMAT, LOG_FORMAT, ExitCode
from ..errors import UserError
from ..redaction import RedactingFormatter
from ..storage_faults import StorageUnavailable
from ..storage_urls import writable
from . import worker_entry
from .progress import DisplayHandler, ProgressDisplay
from .settings import ProgressSlot, WorkerSettings

_BY_SIGNAL = {ExitCode.SIGINT: "SIGINT", ExitCode.SIGTERM: "SIGTERM"}
WORKERS_PER_CORE = 4
"""More workers than this per core only slow each other down (each trains on one core)."""


def check_worker_count(workers: int, force: bool) -> None:
    cores = os.cpu_count() or 1
    if workers > WORKERS_PER_CORE * cores and not force:
        raise UserError(
            f"--workers {workers} is more than {WORKERS_PER_CORE} per CPU core ({cores} cores here): each worker "
            f"trains on one core; use at most {WORKERS_PER_CORE * cores}, or add --force"
        )


def check_folders(out: Path, artifact_dir: Path) -> None:
    """That the output folders could be made, without making them (a storage that cannot be reached then
    leaves no folder behind): the nearest existing folder of each is a writable folder."""
    for folder, flag in ((out, "--out"), (artifact_dir, "--artifact-dir")):
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise UserError(f"cannot create the output folder {folder}: {existing} is a file; pick another {flag}")
        if not writable(existing):
            what = f"the folder {existing} is not writable" if existing == folder else f"{existing} is not writable"
            raise UserError(f"cannot create the output folder {folder}: {what}; pick a writable {flag}")


def prepare_folders(out: Path, artifact_dir: Path) -> None:
    """Create the output folders and make sure they are writable, before anything is stored."""
    for folder, flag in ((out, "--out"), (artifact_dir, "--artifact-dir")):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create the output folder {folder}: {exc.strerror}; pick a writable {flag}"
            ) from None
        if not writable(folder):
            raise UserError(f"the folder {folder} is not writable; pick a writable {flag}")


@dataclass
class Outcome:
    stopped_by: str | None = None
    """The signal that stopped the run, if one did."""
    died: list[int] = field(default_factory=list)
    """Exit codes of workers that ended abnormally (killed, crashed)."""
    storage_lost: bool = False


@contextlib.contextmanager
def routed_logging(display: ProgressDisplay) -> Iterator[None]:
    """While it holds, the root logger prints through the display instead of straight to stderr."""
    root = logging.getLogger()
    saved = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    formatter = saved[0].formatter if saved and saved[0].formatter else RedactingFormatter(LOG_FORMAT, DATE_FORMAT)
    handler = DisplayHandler(display, formatter)
    for h in saved:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for h in saved:
            root.addHandler(h)


def run_workers(
    settings: WorkerSettings,
    workers: int,
    display: ProgressDisplay,
    per_worker: Callable[[int], dict] | None = None,
) -> Outcome:
    with routed_logging(display):
        try:
            if workers == 1:
                return _in_process(settings, display, per_worker)
            return _pool(settings, workers, display, per_worker)
        finally:
            display.update([], force=True)
            display.close()


def _in_process(settings: WorkerSettings, display: ProgressDisplay, per_worker) -> Outcome:
    array = [-1, 0]
    done = threading.Event()

    def show() -> None:
        while not done.wait(1.0):
            display.update([(array[0], array[1])])

    thread = threading.Thread(target=show, daemon=True)
    thread.start()
    try:
        from .worker import run_worker  # torch and the trainer: imported only by the process that trains

        settings = replace(settings, **(per_worker(0) if per_worker else {}))
        return Outcome(stopped_by=run_worker(settings, ProgressSlot(array, 0)))
    except StorageUnavailable:
        raise
    finally:
        done.set()
        thread.join()


def _pool(settings: WorkerSettings, workers: int, display: ProgressDisplay, per_worker) -> Outcome:
    records_queue = WorkerPool.make_queue()
    pool = WorkerPool(settings, workers, per_worker, log_queue=records_queue)
    pool.start()
    try:
        while pool.alive():
            _drain(records_queue, display)
            display.update(pool.progress())
            for p in pool.procs:
                p.join(timeout=0.5 / len(pool.procs))
    finally:
        codes = pool.join()
        _drain(records_queue, display)
    if ExitCode.USER_ERROR in codes:
        raise UserError("a worker stopped on an error (see above)")
    stopped_by = pool.signal_name or next((_BY_SIGNAL[c] for c in codes if c in _BY_SIGNAL), None)
    return Outcome(
        stopped_by=stopped_by,
        died=[c for c in codes if c not in (0, ExitCode.STORAGE_LOST, *_BY_SIGNAL)],
        storage_lost=ExitCode.STORAGE_LOST in codes,
    )


def _drain(records_queue, display: ProgressDisplay) -> None:
    while True:
        try:
            record = records_queue.get_nowait()
        except (queue.Empty, EOFError, OSError):
            return
        display.emit(record.getMessage())  # formatted in the worker ("HH:MM:SS wN ...")


class WorkerPool:
    """K worker processes; forwards SIGINT / SIGTERM to them and waits for their cleanup.

    The handlers are installed before the first process starts, and a signal stops the
    starting of further processes at once. Each process ignores the two signals until its
    own handler is in place (:mod:`~vmpo_tune.search.worker_entry`) and reads a signal that
    came meanwhile from a shared value, so none is lost and none kills a worker in the
    middle of its start-up.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        workers: int,
        per_worker: Callable[[int], dict] | None = None,
        log_queue=None,
    ) -> None:
        self.ctx = mp.get_context("spawn")
        self.settings, self.workers, self.log_queue = settings, workers, log_queue
        self.per_worker = per_worker or (lambda i: {})
        self.array = self.ctx.Array("q", [-1, 0] * workers, lock=False)
        self.parent_signal = self.ctx.Value("i", 0, lock=False)
        self.procs: list[mp.process.BaseProcess] = []
        self._previous: dict = {}

    @property
    def signal_name(self) -> str | None:
        return signal.Signals(self.parent_signal.value).name if self.parent_signal.value else None

    def start(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._forward)
        for i in range(self.workers):
            if self.parent_signal.value:
                break
            settings = replace(self.settings, worker_index=i, **self.per_worker(i))
            proc = self.ctx.Process(
                target=worker_entry.main,
                args=(settings, self.array, self.log_queue, self.parent_signal),
                name=f"{worker_entry.PROCESS_PREFIX}{i}",
            )
            proc.start()
            self.procs.append(proc)

    @staticmethod
    def make_queue():
        """A queue the workers' log records travel through to this process."""
        return mp.get_context("spawn").Queue()

    def _forward(self, signum, _frame) -> None:
        if not self.parent_signal.value:
            self.parent_signal.value = signum
        for p in self.procs:
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.procs)

    def progress(self) -> list[tuple[int, int]]:
        """(trial, env steps) of each live worker's running trial; a dead worker shows nothing."""
        out = []
        for i, p in enumerate(self.procs):
            out.append((self.array[2 * i], self.array[2 * i + 1]) if p.is_alive() else (-1, 0))
        return out

    def join(self) -> list[int]:
        """Wait for every worker, then put back this process's own signal handlers."""
        for p in self.procs:
            p.join()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return [p.exitcode for p in self.procs]
