"""What a search or confirmation command hands its workers, kept apart from the worker itself: the command's own
process imports this and never torch (its workers are separate processes, except with ``--workers 1``, where the
command imports :mod:`~vmpo_tune.search.worker` when it runs the one worker itself)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import optuna

from ..cli_common import quiet_start_up_notes
from ..storage_faults import PATIENCE
from .liveness import GRACE_PERIOD, HEARTBEAT_INTERVAL
from .spec import StudySpec


@dataclass(frozen=True)
class WorkerSettings:
    spec: StudySpec | None
    """The study file's spec (a search); None for a confirmation, whose units carry their configs."""
    study_name: str
    storage_url: str
    n_trials: int
    out_dir: str
    artifact_dir: str | None
    sampler: Any = None
    pruner: Any = None
    confirm: bool = False
    """Run the queued confirmation units of ``study_name`` instead of sampling new trials."""
    device: str = "cpu"
    timeout: float | None = None
    worker_index: int = 0
    log_level: int = logging.INFO
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD
    patience: float = PATIENCE
    tensorboard_dir: str | None = None


class ProgressSlot:
    """Where a worker publishes (trial number, env steps) for the live display."""

    def __init__(self, array=None, index: int = 0) -> None:
        self.array, self.index = array, index

    def set(self, trial_number: int, steps: int) -> None:
        if self.array is not None:
            self.array[2 * self.index] = trial_number
            self.array[2 * self.index + 1] = steps


def quiet_library_noise() -> None:
    """Optuna's experimental-feature warnings and info lines are noise in a search, and so are SQLAlchemy's
    tracebacks for pooled connections the server killed (the pool replaces them; our retries log the fault)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    debug = logging.getLogger().level <= logging.DEBUG
    quiet_start_up_notes(debug)
    if not debug:
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
