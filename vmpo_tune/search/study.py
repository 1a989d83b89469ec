"""Creating / loading a stored study, and the global trial budget.

Budget accounting: a study's ``--trials N`` counts every trial that is finished
(COMPLETE, PRUNED, FAIL), running or waiting, except a FAIL that was retried (its retry
stands in for it). :func:`reserve_trial` counts and creates under the
:class:`~vmpo_tune.budget_lock.BudgetLock`, so N is exact across processes and machines.
A worker whose budget is used while trials still run elsewhere waits for them (or for
their heartbeat to go stale, then fails and runs their retries) before it stops, so
the last worker standing never leaves a RUNNING trial behind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from typing import Callable

import optuna

from .. import notes, optuna_private, records, simulator
from ..budget_lock import BudgetLock, LockLost
from ..errors import UserError
from .liveness import beat, fail_stale_trials
from .spec import StudySpec, default_params
from .widening import widened_ranges

log = logging.getLogger(__name__)

SIMULATOR = "simulator"
"""The fingerprint's key for the simulator release (:func:`vmpo_tune.simulator.describe`)."""


def recorded_simulator(study: optuna.Study, stored: dict | None = None) -> str | None:
    """The simulator release the study's runs used: from its fingerprint, or (for a study stored before
    the fingerprint held it) the one its trials' provenance names most often; None if nothing ran."""
    if stored is None:
        text = records.read_fingerprint(study)
        stored = json.loads(text) if text else {}
    if SIMULATOR in stored:
        return stored[SIMULATOR]
    seen: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        version = ((records.TrialRecord.of(trial).provenance or {}).get("versions") or {}).get("mujoco")
        if version:
            seen[f"mujoco {version}"] = seen.get(f"mujoco {version}", 0) + 1
    return max(seen, key=seen.get) if seen else None


def check_simulator(study: optuna.Study, alternative: str, stored: dict | None = None) -> None:
    """Refuse (one line, nothing changed) to add runs of this environment's simulator to a study of another."""
    simulator.check_clean()
    recorded, current = recorded_simulator(study, stored), simulator.describe()
    if recorded is not None and recorded != current:
        version = recorded.split(" ", 1)[-1]
        raise UserError(
            f"study {study.study_name!r} was run on {recorded} and this environment has {current}: results of two "
            f"simulator releases are never mixed in one study; run it in an environment with "
            f"pip install 'mujoco=={version}', or {alternative}"
        )


def _widen(study: optuna.Study, spec: StudySpec, stored_fp: dict, widened: list[str]) -> None:
    """Record that the study goes on in ``spec``'s wider space (:mod:`.widening`): its fingerprint and the
    space of its recorded info. The recorded default stays the one the study started from (the confirmation's
    baseline)."""
    log.warning(
        "study %r: search space widened (%s); its %d stored trials stay as they are and inside it; TPE's "
        "multivariate model samples a widened parameter on its own from now on",
        study.study_name, "; ".join(widened), len(study.trials),
    )  # fmt: skip
    fingerprint = {**spec.fingerprint(), **({SIMULATOR: stored_fp[SIMULATOR]} if SIMULATOR in stored_fp else {})}
    records.write_fingerprint(study, json.dumps(fingerprint, sort_keys=True))
    info = records.read_study_info(study)
    if info.search_space:  # (a study stored before its info was recorded has none to update)
        records.write_study_info(study, dataclasses.replace(info, search_space=spec.info().search_space))


def create_or_load(
    storage, spec: StudySpec, study_name: str, lock: BudgetLock, grace: float
) -> tuple[optuna.Study, bool]:
    """The stored study (created if new, with the default configuration enqueued first).

    A study stored with another spec, or run on another simulator release, is refused before anything
    in it changes; a spec that only widens numeric ranges continues it in the wider space (:mod:`.widening`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(
            f"study {study_name!r} already exists with direction {study.direction.name.lower()}; "
            "vmpo-tune maximises the return: pick another --study-name or --storage"
        )
    fingerprint = {**spec.fingerprint(), SIMULATOR: simulator.describe()}
    with lock.hold():
        stored = records.read_fingerprint(study)
        if stored is not None:
            stored_fp = json.loads(stored)
            check_simulator(study, "start a new one with --study-name NAME", stored_fp)
            stored_core = {k: v for k, v in stored_fp.items() if k != SIMULATOR}
            mine = json.loads(json.dumps(spec.fingerprint()))
            widened = widened_ranges(stored_core, mine)
            if widened:
                _widen(study, spec, stored_fp, widened)
            elif stored_core != mine:
                raise UserError(
                    f"study {study_name!r} in this storage was created with another env, budget, evaluation, seeds, "
                    f"fixed values or search space than {spec.path} and the given overrides; resume it with the same "
                    "file and flags (numeric ranges may only widen), or start a new one with --study-name NAME"
                )
            if SIMULATOR not in stored_fp:  # stored before the simulator was recorded: it is recorded now
                log.info("study %r: recording its simulator, %s", study_name, fingerprint[SIMULATOR])
                records.write_fingerprint(study, json.dumps(fingerprint, sort_keys=True))
        created = stored is None
        if created:
            records.write_fingerprint(study, json.dumps(fingerprint, sort_keys=True))
            records.write_study_info(study, spec.info())
            if not study.trials:
                study.enqueue_trial(default_params(spec), user_attrs=records.default_trial_attrs(), skip_if_exists=True)
        fail_stale_trials(study, grace)  # a worker that died: its trial is failed and queued before anyone counts
    notes.save_study_note(study, only_if_missing=True)
    return study, created


def reserve_trial(
    study: optuna.Study,
    lock: BudgetLock,
    n_trials: int,
    grace: float,
    stopping: Callable[[], bool] = lambda: False,
    poll: float = 2.0,
    plan_more: Callable[[optuna.Study, int], int] | None = None,
) -> optuna.Trial | None:
    """A new (or waiting) trial if the budget allows, else None once no trial runs anywhere.

    Atomic across workers: counting and creating happen under the budget lock, and the
    trial's first heartbeat is recorded before the lock is released (a trial without a
    heartbeat would never be found stale if its worker died at once). A server's lock dies
    with its session: the holder checks that it still holds it before creating, and counts
    again under a new hold if not. ``n_trials = 0`` runs only queued trials (the
    confirmation's units). ``plan_more(study, room)`` may queue up to ``room`` trials first,
    under the same lock (racing's earned seeds).
    """
    announced = False
    while not stopping():
        with lock.hold():
            fail_stale_trials(study, grace)
            counts = records.budget_counts(study.get_trials(deepcopy=False))
            if plan_more is not None and counts.used < n_trials and plan_more(study, n_trials - counts.used):
                counts = records.budget_counts(study.get_trials(deepcopy=False))
            if counts.waiting or counts.used < n_trials:
                try:
                    lock.check_held()
                except LockLost as exc:  # another worker may have taken the lock, and a trial, since the count
                    log.warning("reserving a trial: %s; counting again", exc)
                    continue
                trial = study.ask()
                beat(study, optuna_private.trial_id(trial))
                return trial
            if counts.running == 0:
                return None
        if not announced:
            log.info("the budget is used; waiting for %d running trial(s) to finish (or to go stale)", counts.running)
            announced = True
        time.sleep(poll)
    return None
