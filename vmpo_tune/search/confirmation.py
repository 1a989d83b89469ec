"""The confirmation stage: the best configurations and the study's default, trained again on fresh seeds.

A search ranks configurations by their return on the tuning seeds, which on tasks such
as Hopper is largely luck. Confirmation takes the K best *distinct* complete trials plus
the study's documented default configuration (the baseline, always), and trains each on
N test seeds that no trial used. Every (candidate, test seed) pair is one *unit*: a
WAITING trial of the companion study ``<study>/confirm`` in the same storage, carrying
its complete configuration and its seed. The same worker processes as the search run
the units, with the same heartbeats, retries and exact resume, so many machines share a
confirmation, a killed worker's unit is resumed elsewhere, and a rerun of the command
continues it. Units are enqueued under the budget lock, keyed by (candidate, seed):
none runs twice, none is lost.

Test seeds are ``study seed + TEST_SEED_OFFSET + i`` (recorded in the plan); training
seed ``s`` uses env seeds ``s .. s + num_envs - 1`` and evaluation seeds from
``s + 10,000``, so they never meet the tuning seeds' either.

The confirmed winner's statistics are on the seeds that chose it among K candidates, so they
flatter it too. A *held-out check* trains the confirmed winner and the default once more, on
seeds ``study seed + HELD_OUT_SEED_OFFSET + i`` that neither the search nor the confirmation
used, as units of a second companion study ``<study>/held-out``: a number nothing chose.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import records
from ..budget_lock import BudgetLock, LockLost
from ..config import RunConfig
from ..errors import UserError
from ..stats import CandidateStats, describe, rank
from ..storage_faults import StorageUnavailable
from . import racing
from .liveness import requeue

log = logging.getLogger(__name__)

PLAN_ATTEMPTS = 5
"""Times the planning starts over after losing its lock before the storage counts as unusable."""

TEST_SEED_OFFSET = 1000
HELD_OUT_SEED_OFFSET = 2000
BASELINE = "default"


@dataclass(frozen=True)
class Candidate:
    label: str
    source_trial: int | None
    search_score: float | None
    config: RunConfig
    is_baseline: bool = False


def test_seeds(info: records.StudyInfo, n: int, first: int | None = None, held_out: Sequence[int] = ()) -> list[int]:
    """``n`` seeds disjoint from the tuning seeds: from ``first`` when given, else fixed by the study seed.

    ``first`` lets several studies share one set of test seeds (a benchmark that compares
    strategies confirms every winner on the same seeds); it must not overlap the tuning seeds.
    Nor may the seeds overlap those a held-out check trained (``held_out``): a winner chosen on them would
    no longer be checked on seeds nothing chose.
    """
    if info.seeds_per_trial >= TEST_SEED_OFFSET:
        raise UserError(f"a study with {info.seeds_per_trial} seeds per trial leaves no room for test seeds")
    start = info.seed + TEST_SEED_OFFSET if first is None else first
    seeds = list(range(start, start + n))
    tuning = set(info.tuning_seeds)
    if first is not None and (first < 0 or tuning & set(seeds)):
        raise UserError(
            f"--test-seed-start {first} gives test seeds {seeds[0]}-{seeds[-1]}, which overlap the study's tuning "
            f"seeds {sorted(tuning)} (or are negative); pick a start past them, e.g. {info.seed + TEST_SEED_OFFSET}"
        )
    if set(held_out) & set(seeds):
        raise UserError(
            f"test seeds {seeds[0]}-{seeds[-1]} include seeds the held-out check of the winner trained "
            f"({min(held_out)}-{max(held_out)}); confirm on fewer --seeds or pick a --test-seed-start past them"
        )
    return seeds


def held_out_seeds(info: records.StudyInfo, n: int, confirmed: Sequence[int], first: int | None = None) -> list[int]:
    """``n`` seeds for a held-out check: from ``first`` when given, else ``study seed + HELD_OUT_SEED_OFFSET``;
    never a tuning seed nor one the confirmation trained (``confirmed``)."""
    start = info.seed + HELD_OUT_SEED_OFFSET if first is None else first
    seeds = list(range(start, start + n))
    used = set(info.tuning_seeds) | set(confirmed)
    if start < 0:
        raise UserError(f"--test-seed-start {start} is negative; seeds are 0 or more")
    if used & set(seeds):
        raise UserError(
            f"held-out seeds {seeds[0]}-{seeds[-1]} include seeds the search or the confirmation trained "
            f"({', '.join(map(str, sorted(used & set(seeds))))}); pick a --test-seed-start past them, e.g. "
            f"{max(max(used) + 1, info.seed + HELD_OUT_SEED_OFFSET)}"
        )
    return seeds


def config_id(config: RunConfig) -> str:
    """A short fingerprint of the configuration's :meth:`~RunConfig.identity`: units and candidates are matched by
    it, not by label."""
    return hashlib.sha1(config.identity().encode()).hexdigest()[:16]


def select_candidates(study: optuna.Study, top: int) -> list[Candidate]:
    """The ``top`` best distinct complete trials, then the study's default configuration (the baseline)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if records.read_config(t)]
    if not complete:
        raise UserError(f"study {study.study_name!r} has no complete trial to confirm; run (or resume) its search")
    default = _default_config(study)
    if default is None:
        raise UserError(f"study {study.study_name!r} records no default configuration to compare with")
    default_key = default.identity()
    chosen: list[Candidate] = []
    seen: set[str] = set()
    for number, score, config in _ranked(study, complete):
        key = config.identity()
        if key in seen:
            continue
        seen.add(key)
        label = f"trial {number}" + (" (default)" if key == default_key else "")
        chosen.append(Candidate(label, number, score, config, key == default_key))
        if len(chosen) == top:
            break
    if default_key not in seen:
        source = next((t for t in complete if records.read_config(t).identity() == default_key), None)
        chosen.append(
            Candidate(
                BASELINE,
                None if source is None else source.number,
                None if source is None else float(source.value),
                default,
                True,
            )
        )
    return chosen


def confirmed_winner(
    study: optuna.Study, confirm_study: optuna.Study | None, why: str
) -> tuple[CandidateStats, RunConfig]:
    """The confirmed winner and the configuration its units ran, for a command that needs one (``why``: what it does
    with it, for the errors). Refused while the confirmation is missing or unfinished, or won by the default."""
    name = study.study_name
    confirmed = records.read_confirmation(study)
    if not confirmed or confirm_study is None:
        raise UserError(
            f"study {name!r} has no confirmation yet: {why} its confirmed winner; run "
            f"python -m vmpo_tune.confirm --study {name} first"
        )
    still_open = unit_counts(confirm_study)["open"]
    if still_open:
        raise UserError(
            f"the confirmation of study {name!r} has {still_open} unit(s) still open, so its winner may change: rerun "
            "the confirm command that queued them to finish it first"
        )
    winner = confirmed[0]
    if winner.is_baseline:
        raise UserError(
            f"the confirmed winner of study {name!r} is its default ({winner.label}): {why} another configuration, "
            "and there is none"
        )
    units = confirm_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    mine = (records.read_config(t) for t in units if t.user_attrs.get(records.CANDIDATE) == winner.label)
    config = next((c for c in mine if c is not None), None)
    if config is None:
        raise UserError(f"the confirmation of study {name!r} holds no complete unit of its winner {winner.label!r}")
    return winner, config


def held_out_candidates(study: optuna.Study, confirm_study: optuna.Study | None) -> list[Candidate]:
    """The confirmed winner, exactly as its confirmation units ran it, and the study's default (the baseline): what a
    held-out check trains again (:func:`confirmed_winner` says when there is none)."""
    winner, config = confirmed_winner(study, confirm_study, "a held-out check trains")
    default = _default_config(study)
    if default is None:
        raise UserError(f"study {study.study_name!r} records no default configuration to compare with")
    return [
        Candidate(winner.label, winner.source_trial, winner.search_score, config),
        Candidate(BASELINE, None, None, default, True),
    ]


def _ranked(study: optuna.Study, complete: list[FrozenTrial]) -> list[tuple[int, float, RunConfig]]:
    """``(trial number, search score, configuration)``, best first: trials by value, or with racing the
    configurations by the race's standing (most seeds, then mean over them), named by their first trial."""
    info = records.read_study_info(study)
    if info.search != "racing":
        ordered = sorted(complete, key=lambda t: (-t.value, t.number))
        return [(t.number, float(t.value), records.read_config(t)) for t in ordered]
    by_number = {t.number: t for t in complete}
    out = []
    for c in racing.standings(study.get_trials(deepcopy=False), info.seed):
        config = next((records.read_config(by_number[n]) for n in c.complete if n in by_number), None)
        if config:
            out.append((c.first, c.mean, config))
    return out


def _default_config(study: optuna.Study) -> RunConfig | None:
    info = records.read_study_info(study)
    if info.default_config:
        return info.default_config
    for trial in study.get_trials(deepcopy=False):  # a study stored before the default was recorded
        record = records.TrialRecord.of(trial)
        if record.is_default and record.config:
            return record.config
    return None


def open_confirm_study(storage, study_name: str, held_out: bool = False) -> optuna.Study:
    """The companion study of ``study_name`` that holds its confirmation units (its held-out check's with
    ``held_out``), created on first use."""
    name = records.companion_study_name(study_name, held_out)
    return optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)


def plan_units(
    confirm_study: optuna.Study,
    lock: BudgetLock,
    candidates: Sequence[Candidate],
    seeds: Sequence[int],
    total_steps: int,
    objective: str = "final",
) -> int:
    """Queue every (candidate, seed) unit not queued before; returns how many were added.

    The plan (budget, test seeds, candidates) is stored on the confirmation study; a rerun
    with another budget is refused, more seeds or candidates are added. Candidates and units
    are matched by their configuration (:func:`config_id`), so a configuration keeps the label
    it was first queued under, and no configuration is trained twice on a seed.
    """
    for attempt in range(PLAN_ATTEMPTS):
        try:
            with lock.hold():
                return _plan_under_lock(confirm_study, lock, candidates, seeds, total_steps, objective)
        except LockLost as exc:  # another command may be planning now: plan again once it is done
            log.warning("confirmation planning: %s; planning again (attempt %d)", exc, attempt + 2)
    raise StorageUnavailable(f"the confirmation's planning lock was lost {PLAN_ATTEMPTS} times in a row")


def _plan_under_lock(
    confirm_study: optuna.Study,
    lock: BudgetLock,
    candidates: Sequence[Candidate],
    seeds: Sequence[int],
    total_steps: int,
    objective: str,
) -> int:
    """:func:`plan_units`' work, under the lock; before each write it checks that the lock is still held, so a
    planner whose lock died stops before it writes what another planner may be writing now."""
    plan = records.read_confirm_plan(confirm_study)
    if plan.total_steps is not None and plan.total_steps != total_steps:
        raise UserError(
            f"the confirmation of this study ran {plan.total_steps:,} env steps per unit; rerun with "
            f"--total-steps {plan.total_steps} (or delete the study {confirm_study.study_name!r} to start over)"
        )
    if plan.total_steps is not None and plan.objective != objective:
        raise UserError(
            f"the confirmation of this study measured the {plan.objective!r} objective and the "
            f"study now optimises {objective!r}; delete the study {confirm_study.study_name!r} to confirm again"
        )
    known = {c.key: c for c in plan.candidates}
    for c in candidates:
        key = config_id(c.config)
        known.setdefault(key, records.PlannedCandidate(c.label, c.source_trial, c.search_score, c.is_baseline, key))
    lock.check_held()
    records.write_confirm_plan(
        confirm_study,
        records.ConfirmPlan(
            total_steps, objective, tuple(sorted(set(plan.test_seeds) | set(seeds))), tuple(known.values())
        ),
    )
    trials = confirm_study.get_trials(deepcopy=False)
    lock.check_held()
    added = requeue_failed_units(confirm_study, trials)
    queued = {
        (config_id(records.read_config(t)), tuple(records.read_seeds(t))) for t in trials if records.read_config(t)
    }
    for c in candidates:
        stored = known[config_id(c.config)]
        config = dataclasses.replace(c.config, total_steps=total_steps)
        for seed in seeds:
            if (stored.key, (seed,)) in queued:
                continue
            attrs = records.unit_attrs(stored.label, stored.source_trial, seed, config)
            lock.check_held()
            confirm_study.enqueue_trial({}, user_attrs=attrs)
            added += 1
    return added


def requeue_failed_units(confirm_study: optuna.Study, trials: Sequence[FrozenTrial]) -> int:
    """Queue again every unit that failed for a fault (a lost worker, an outage, retries used up), not for a
    result: a run that diverged diverges again on the same seed, and counts as the candidate's failure.
    Call it under the lock; returns how many were queued. The retry inherits the unit's resume record."""
    retried = records.retried_numbers(trials)
    again = 0
    for t in trials:
        reason = str(t.user_attrs.get(records.FAIL_REASON) or "")
        if t.state != TrialState.FAIL or t.number in retried or not records.read_config(t):
            continue
        if reason.startswith(records.DIVERGED):
            continue
        requeue(confirm_study, t, records.read_resume(t), count_failure=False)
        log.info("unit %d (%s) failed (%s): queued again", t.number, t.user_attrs.get(records.CANDIDATE), reason)
        again += 1
    return again


def unit_counts(confirm_study: optuna.Study) -> dict[str, int]:
    trials = confirm_study.get_trials(deepcopy=False)
    retried = records.retried_numbers(trials)
    live = [t for t in trials if t.number not in retried]
    return {
        "units": len(live),
        "complete": sum(t.state == TrialState.COMPLETE for t in live),
        "failed": sum(t.state == TrialState.FAIL for t in live),
        "open": sum(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in live),
    }


def collect(confirm_study: optuna.Study) -> list[CandidateStats]:
    """Statistics of every candidate with complete units, ranked by confirmed IQM (best first)."""
    plan = records.read_confirm_plan(confirm_study)
    units: dict[str, list[FrozenTrial]] = {}
    counted: set[tuple[str, int]] = set()
    for t in sorted(confirm_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        label, seed = t.user_attrs.get(records.CANDIDATE), records.read_seeds(t)[0]
        if (label, seed) in counted:  # a pair queued twice (by two planners at once) counts once: the first run
            continue
        counted.add((label, seed))
        units.setdefault(label, []).append(t)
    candidates = {c.label: c for c in plan.candidates}
    baseline = plan.baseline.label if plan.baseline else None
    if baseline is None or baseline not in units:
        return []
    baseline_returns = [float(t.value) for t in units[baseline]]
    out = []
    for label, trials in units.items():
        trials = sorted(trials, key=lambda t: records.read_seeds(t)[0])
        info = candidates.get(label)
        out.append(
            describe(
                label,
                [records.read_seeds(t)[0] for t in trials],
                [float(t.value) for t in trials],
                baseline_returns,
                source_trial=info.source_trial if info else None,
                search_score=info.search_score if info else None,
                best_returns=[records.TrialRecord.of(t).seed_best_returns[0] for t in trials],
                is_baseline=label == baseline,
                objective=plan.objective,
                final_returns=[records.TrialRecord.of(t).seed_returns[0] for t in trials],
            )
        )
    return rank(out)
