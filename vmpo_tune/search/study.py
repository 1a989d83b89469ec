"""Creating / loading a stored study, and the global trial budget.

Budget accounting: a study's ``--trials N`` counts every trial that is finished
(COMPLETE, PRUNED, FAIL), running or waiting, except a FAIL that was retried (its retry
stands in for it). :func:`reserve_trial` counts and creates under the
:class:`~vmpo_tune.search.storage.BudgetLock`, so N is exact across processes and
machines.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from .space import default_params
from .spec import StudySpec
from .storage import BudgetLock

log = logging.getLogger(__name__)

FINGERPRINT_ATTR = "vmpo_tune.fingerprint"
SPEC_ATTR = "vmpo_tune.study"
DEFAULT_TRIAL_ATTR = "enqueued"


def retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a later trial retries."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by state; ``finished`` and ``used`` follow the budget rules above."""
    retried = retried_numbers(trials)
    out = {s.name.lower(): 0 for s in TrialState}
    out["retried"] = 0
    for t in trials:
        if t.state == TrialState.FAIL and t.number in retried:
            out["retried"] += 1
        else:
            out[t.state.name.lower()] += 1
    out["finished"] = out["complete"] + out["pruned"] + out["fail"]
    out["used"] = out["finished"] + out["running"] + out["waiting"]
    return out


def create_or_load(storage, spec: StudySpec, study_name: str, lock: BudgetLock) -> tuple[optuna.Study, bool]:
    """The stored study (created if new, with the default configuration enqueued first)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                    load_if_exists=True)  # fmt: skip
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"study {study_name!r} already exists with direction {study.direction.name.lower()}; "
                        "vmpo-tune maximises the return: pick another --study-name or --storage")  # fmt: skip
    fingerprint = json.dumps(spec.fingerprint(), sort_keys=True)
    with lock.hold():
        fail_stale_trials(study)  # a worker that died: its trial is failed and queued before anyone counts
        stored = study.user_attrs.get(FINGERPRINT_ATTR)
        created = stored is None
        if created:
            study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
            study.set_user_attr(SPEC_ATTR, {"name": spec.name, "env_id": spec.env_id, "description": spec.description,
                                            "total_steps": spec.total_steps, "seeds_per_trial": spec.seeds_per_trial,
                                            "aggregate": spec.aggregate, "objective": spec.objective})  # fmt: skip
            _save_dashboard_note(study, spec)
            if not study.trials:
                study.enqueue_trial(default_params(spec), user_attrs={DEFAULT_TRIAL_ATTR: "default configuration"},
                                    skip_if_exists=True)  # fmt: skip
        elif stored != fingerprint:
            raise UserError(
                f"study {study_name!r} in this storage was created with another env, budget, evaluation, seeds, "
                f"fixed values or search space than {spec.path} and the given overrides; resume it with the same "
                "file and flags, or start a new one with --study-name NAME"
            )
    return study, created


def _save_dashboard_note(study: optuna.Study, spec: StudySpec) -> None:
    """The study's note in optuna-dashboard (what it tunes, env, budget), when the dashboard is installed."""
    try:
        from optuna_dashboard import save_note
    except ImportError:  # the optional [dashboard] extra
        return
    from analysis.dashboard import study_note

    save_note(study, study_note(study.user_attrs[SPEC_ATTR], params=[p.optuna_name for p in spec.space]))


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and queue for retry) RUNNING trials whose heartbeat is older than the grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def reserve_trial(study: optuna.Study, lock: BudgetLock, n_trials: int) -> optuna.Trial | None:
    """A new (or waiting) trial if the budget allows, else None; atomic across workers.

    The trial's first heartbeat is recorded before the lock is released: a trial with no
    heartbeat row would never be found stale if its worker died right away.
    """
    with lock.hold():
        fail_stale_trials(study)
        c = counts(study.get_trials(deepcopy=False))
        if c["waiting"] == 0 and c["used"] >= n_trials:
            return None
        trial = study.ask()
        storage = study._storage  # an RDBStorage, possibly behind Optuna's caching wrapper
        if getattr(storage, "get_heartbeat_interval", lambda: None)():
            storage.record_heartbeat(trial._trial_id)
        return trial
