"""The confirmation stage as a whole: choose candidates, queue units, run them on workers, rank, record.

Used by ``python -m vmpo_tune.confirm`` and by ``search --confirm-top K``; ``confirm --held-out`` runs the
same stage for the confirmed winner and the default on held-out seeds, in a companion study of its own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import optuna

from .. import notes, records, stored_study
from ..budget_lock import BudgetLock
from ..cli_common import ExitCode
from ..errors import UserError
from ..stats import CandidateStats, separated_from
from .confirmation import (
    collect,
    held_out_candidates,
    held_out_seeds,
    open_confirm_study,
    plan_units,
    select_candidates,
    test_seeds,
    unit_counts,
)
from .launch import Outcome, run_workers
from .progress import ProgressDisplay
from .settings import WorkerSettings
from .study import check_simulator

log = logging.getLogger(__name__)


@dataclass
class ConfirmationResult:
    ranked: list[CandidateStats]
    outcome: Outcome
    counts: dict[str, int]


def run_confirmation(
    study: optuna.Study,
    storage,
    settings: WorkerSettings,
    *,
    top: int,
    seeds: int,
    total_steps: int | None,
    workers: int,
    first_test_seed: int | None = None,
    held_out: bool = False,
) -> ConfirmationResult:
    """Confirm the ``top`` best trials of ``study`` and its default on ``seeds`` test seeds; with ``held_out``,
    its confirmed winner and its default on ``seeds`` held-out seeds (``top`` is not used).

    ``settings`` is the search's worker settings (storage, folders, heartbeats, device);
    the confirmation's own study, budget and mode replace those of the search.
    """
    info = records.read_study_info(study)
    if held_out:  # the winner as it was confirmed, at the confirmation's budget
        confirmed = stored_study.load_companion(storage, study.study_name)
        candidates = held_out_candidates(study, confirmed)
        plan = records.read_confirm_plan(confirmed)
        if total_steps is not None and total_steps != plan.total_steps:
            raise UserError(
                f"the winner was confirmed at {plan.total_steps:,} env steps per unit; a held-out check trains it at "
                f"the same budget: drop --total-steps"
            )
        total_steps = plan.total_steps
        seed_list = held_out_seeds(info, seeds, plan.test_seeds, first_test_seed)
    else:
        checked = stored_study.load_companion(storage, study.study_name, held_out=True)
        avoid = records.read_confirm_plan(checked).test_seeds if checked else ()
        seed_list = test_seeds(info, seeds, first_test_seed, avoid)
        candidates = select_candidates(study, top)
    budget = int(total_steps or info.total_steps or 0)
    if budget < 1:
        raise UserError("the study records no budget per trial; pass --total-steps")
    check_simulator(study, "search again in a new study on this one")
    confirm = open_confirm_study(storage, study.study_name, held_out)
    check_simulator(confirm, "search again in a new study on this one")
    lock = BudgetLock(settings.storage_url, confirm.study_name, patience=settings.patience)
    try:
        added = plan_units(confirm, lock, candidates, seed_list, budget, info.objective)
    finally:
        lock.close()
    counts = unit_counts(confirm)
    log.info(
        "%s %d candidate(s) (%s) on %d %s seed(s) %s, %s env steps each: %d unit(s), %d new, %d to run",
        "held-out check of" if held_out else "confirming",
        len(candidates),
        ", ".join(c.label for c in candidates),
        seeds,
        "held-out" if held_out else "test",
        seed_list,
        f"{budget:,}",
        counts["units"],
        added,
        counts["open"],
    )
    outcome = Outcome()
    if counts["open"]:
        unit_settings = replace(
            settings,
            study_name=confirm.study_name,
            n_trials=0,
            confirm=True,
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=optuna.pruners.NopPruner(),
            out_dir=str(Path(settings.out_dir) / ("held-out" if held_out else "confirm")),
        )
        display = ProgressDisplay(confirm, counts["units"], budget, label="units done", show_best=False)
        outcome = run_workers(unit_settings, min(workers, counts["open"]), display)
    ranked = collect(confirm)
    counts = unit_counts(confirm)
    if ranked and held_out:
        records.write_held_out(study, ranked)
    elif ranked:
        records.write_confirmation(study, ranked)
        notes.save_study_note(study, confirmed=ranked)
    return ConfirmationResult(ranked, outcome, counts)


def _ci(pair) -> str:
    return f"[{pair[0]:.1f}, {pair[1]:.1f}]"


def format_table(ranked: list[CandidateStats], counts: dict[str, int], kind: str = "test") -> str:
    """The ranked table the command ends with: confirmed statistics, resolution by the CIs, optimism; ``kind``
    names the seeds (``test``, ``held-out``)."""
    if not ranked:
        return "no candidate has complete units on the test seeds yet (the baseline's are needed too)"
    leader = ranked[0]
    averaged = leader.objective != "final"  # then the final return is shown beside the objective's statistic
    header = (
        f"rank | candidate | n | IQM [95% CI]{f' ({leader.objective})' if averaged else ''} | mean [95% CI] | "
        f"median | min-max | P(> default) [95% CI] | vs #1 | search score | search - IQM"
        + (" | final IQM" if averaged else "")
    )
    lines = [header, "-" * len(header)]
    for i, c in enumerate(ranked, 1):
        versus = "-" if c is leader else ("resolved" if separated_from(c, leader) else "within CI")
        poi = "baseline" if c.is_baseline else f"{c.poi:.2f} [{c.poi_ci[0]:.2f}, {c.poi_ci[1]:.2f}] {c.vs_baseline}"
        score = "" if c.search_score is None else f"{c.search_score:.1f}"
        optimism = "" if c.optimism is None or math.isnan(c.optimism) else f"{c.optimism:+.1f}"
        lines.append(
            f"{i} | {c.label} | {c.n} | {c.iqm:.1f} {_ci(c.iqm_ci)} | {c.mean:.1f} {_ci(c.mean_ci)} | "
            f"{c.median:.1f} | {c.min:.1f}-{c.max:.1f} | {poi} | {versus} | {score} | {optimism}"
            + (f" | {c.final_iqm:.1f}" if averaged else "")
        )
    lines.append(
        f"{kind} seeds {leader.seeds}; {counts['complete']} of {counts['units']} unit(s) complete"
        + (f", {counts['failed']} failed" if counts["failed"] else "")
        + (f", {counts['open']} still open (rerun to finish)" if counts["open"] else "")
    )
    lines.append(
        "'vs #1': 'resolved' when the IQM intervals do not overlap; 'P(> default)': better / worse when its "
        "interval excludes 0.5, else unresolved"
    )
    return "\n".join(lines)


def confirmation_exit_code(outcome: Outcome) -> int:
    """The same codes as the search's: a signal, a lost storage (3), a dead worker (1)."""
    if outcome.stopped_by:
        log.warning("confirmation stopped by %s: rerun the same command to finish its units", outcome.stopped_by)
        return ExitCode.of_signal(outcome.stopped_by)
    if outcome.storage_lost:
        log.error("the storage was unreachable for too long: rerun the same command when it is back")
        return ExitCode.STORAGE_LOST
    if outcome.died:
        log.error("the confirmation did not finish (a worker died): rerun the same command")
        return ExitCode.INTERNAL
    return ExitCode.OK
