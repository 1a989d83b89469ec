"""Which trials are alive: heartbeats, stale trials, and queueing a failed trial again.

A worker records a heartbeat (a trial system attribute holding the time) when it takes
a trial and then every ``interval`` seconds from a background thread. A RUNNING trial
whose heartbeat is older than the grace period belongs to a worker that died, was
killed or lost the storage: the next worker that takes the budget lock fails it, with
that reason, and queues it again (:func:`fail_and_requeue`).

Queueing again hands the trial's resume record (its checkpoints in the artifact store)
to the new trial and clears it on the failed one, so only one trial ever points at a
checkpoint. A trial is retried at most :data:`MAX_RETRY` times.

Heartbeats are attributes rather than a storage feature, so every storage (the RDBs,
and a journal file) gets the same liveness rules. The clocks of machines that share a
study must agree to well within ``grace - interval`` seconds (NTP does this).
"""

from __future__ import annotations

import logging
import threading
import time

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from .. import optuna_private, records
from ..errors import UserError
from ..storage_faults import last_trouble

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
MAX_RETRY = 3
"""A trial whose worker died this many times is not queued again (interruptions do not count)."""
NO_HEARTBEAT_GRACE = 600
"""Seconds after which a RUNNING trial that never recorded a heartbeat counts as stale."""
FAILURES = records.FAILURES


def beat(study: optuna.Study, trial_id: int) -> None:
    optuna_private.set_system_attr(study, trial_id, records.HEARTBEAT, time.time())


class Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds on a daemon thread."""

    def __init__(self, study: optuna.Study, trial_id: int, interval: float) -> None:
        self.study, self.trial_id, self.interval = study, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{trial_id}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                beat(self.study, self.trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # another worker failed it as stale; the trial's own code will find out
            except Exception as exc:  # the storage's own retries gave up; keep trying while the trial runs
                log.warning("heartbeat of trial id %d failed: %s", self.trial_id, exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=max(self.interval, 5.0))  # a beat stuck on a lost storage is left behind


def check_liveness(heartbeat_interval: float, grace_period: float) -> None:
    """Refuse a grace period that a live trial's heartbeats could not keep up with (search and confirm alike)."""
    if grace_period <= heartbeat_interval:
        raise UserError(
            f"the grace period ({grace_period} s) must be longer than the heartbeat interval "
            f"({heartbeat_interval} s); fix --grace-period / --heartbeat-interval"
        )


def stale_trials(study: optuna.Study, grace: float) -> list[tuple[FrozenTrial, float]]:
    """RUNNING trials whose worker is gone, with how long it has been silent.

    A trial with a heartbeat is stale when the heartbeat is older than ``grace`` seconds. A
    RUNNING trial that never got one (its worker died between taking it and the first beat,
    or it was started by plain Optuna) is stale once it started more than
    ``max(grace, NO_HEARTBEAT_GRACE)`` seconds ago, by the local clock. Both clocks start no
    earlier than the last storage failure this process saw (:func:`~vmpo_tune.storage_faults.last_trouble`):
    an outage stops every heartbeat, and a live worker gets ``grace`` seconds after it to beat again.
    """
    now = time.time()
    trouble = last_trouble()  # silence during an outage this process saw too is the outage's, not a dead worker's
    out = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.system_attrs.get(records.HEARTBEAT)
        if isinstance(last, (int, float)):
            if now - max(last, trouble) > grace:
                out.append((trial, now - last))
        elif trial.datetime_start is not None:
            age = now - max(trial.datetime_start.timestamp(), trouble)
            if age > max(grace, NO_HEARTBEAT_GRACE):
                out.append((trial, now - trial.datetime_start.timestamp()))
    return out


def fail_stale_trials(study: optuna.Study, grace: float) -> list[int]:
    """Fail and queue again every stale trial (call it under the budget lock); returns their numbers."""
    failed = []
    for trial, age in stale_trials(study, grace):
        reason = f"no heartbeat for {age:.0f} s: its worker died, was killed or lost the storage"
        if fail_and_requeue(study, trial, reason):
            failed.append(trial.number)
            log.warning("trial %d: %s; failed and queued again", trial.number, reason)
    return failed


def fail_and_requeue(study: optuna.Study, trial: FrozenTrial, reason: str, interrupted: bool = False) -> bool:
    """Mark a RUNNING trial FAIL with ``reason`` and queue a retry that inherits its resume record.

    Call it under the budget lock. An interruption (Ctrl-C, SIGTERM) does not count against
    :data:`MAX_RETRY`; a failure (a stale heartbeat) does. A trial that has been retried
    enough is failed and keeps its resume record (nothing deletes those blobs then). Returns
    False when the trial was finished already (by its own worker or another one).
    """
    storage, trial_id = optuna_private.storage_of(study), optuna_private.trial_id(trial)
    current = storage.get_trial(trial_id)
    resume = records.read_resume(current)
    again = interrupted or _failures(current) < MAX_RETRY
    try:
        storage.set_trial_user_attr(trial_id, records.FAIL_REASON, reason)
        if again:
            storage.set_trial_user_attr(trial_id, records.RESUME, {})
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    failed = storage.get_trial(trial_id)
    # a live owner may have stored a newer record between the read above and the FAIL: the newer one counts
    resume = records.read_resume(failed) or resume
    if not again:
        log.warning("trial %d failed after %d retries; not queued again", failed.number, _failures(failed))
        return True
    requeue(study, failed, resume, count_failure=not interrupted)
    return True


def _failures(trial: FrozenTrial) -> int:
    return int(trial.system_attrs.get(FAILURES, 0))


def requeue(study: optuna.Study, failed: FrozenTrial, resume: dict, count_failure: bool = True) -> FrozenTrial:
    """Queue a WAITING copy of ``failed``: its parameters, curve, configuration and resume record.

    What belongs to one attempt (its timing, returns, fail reason, heartbeat) is not copied.
    """
    history = list(failed.system_attrs.get(records.RETRY_HISTORY, []))
    system_attrs = {k: v for k, v in failed.system_attrs.items() if k != records.HEARTBEAT}
    system_attrs.update({records.RETRY_OF: failed.number, records.RETRY_HISTORY: [*history, failed.number]})
    system_attrs[FAILURES] = _failures(failed) + (1 if count_failure else 0)
    user_attrs = {k: v for k, v in failed.user_attrs.items() if k in records.INHERITED}
    user_attrs[records.RESUME] = resume
    retry = create_trial(
        state=TrialState.WAITING,
        params=failed.params,
        distributions=failed.distributions,
        user_attrs=user_attrs,
        system_attrs=system_attrs,
        intermediate_values=failed.intermediate_values,
    )
    study.add_trial(retry)
    return retry
