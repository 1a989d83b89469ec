"""The full-budget campaign (benchmarks/study_results.py) runs every study's default first, then its search: a
stage counts as done only when its own search and every candidate its confirmation planned are done on every
test seed."""

from __future__ import annotations

from types import SimpleNamespace

from optuna.trial import TrialState

from benchmarks.study_results import (
    CONFIRM_SEEDS,
    CONFIRM_TOP,
    QUEUE,
    SEARCH_QUEUE,
    STAGES,
    TRIALS,
    reached,
    stage_done,
    stage_order,
)
from vmpo_tune import records

DEFAULT_ONLY = ["trial 0 (default)"]
TOP_AND_DEFAULT = ["trial 12", "trial 7", "trial 3", "trial 0 (default)"]
DEFAULT_IN_TOP = ["trial 12", "trial 0 (default)", "trial 3"]  # the default is one of the best three


def stored(finished: int, planned: list[str], done: dict[str, int], ranked: list[str] | None = None) -> dict:
    """What the campaign reads from a storage: ``finished`` search trials, the confirmation's planned candidates,
    ``done[label]`` finished units per candidate (one diverged: a result too), and the stored ranking (by default
    the candidates with a result)."""

    def unit(label: str, i: int):
        if i == 0:
            return SimpleNamespace(
                state=TrialState.FAIL,
                user_attrs={records.CANDIDATE: label, records.FAIL_REASON: f"{records.DIVERGED}: loss became nan"},
            )
        return SimpleNamespace(state=TrialState.COMPLETE, user_attrs={records.CANDIDATE: label})

    units = [unit(label, i) for label, n in done.items() for i in range(n)]
    running = SimpleNamespace(state=TrialState.RUNNING, user_attrs={records.CANDIDATE: planned[-1]})
    ranking = ranked if ranked is not None else [label for label in planned if done.get(label)]
    plan = [records.PlannedCandidate(label, None, None, "default" in label, label) for label in planned]
    return {"finished": finished, "planned": plan, "units": [*units, running], "confirmation": ranking}


def test_the_default_stage_runs_first_and_the_search_stage_needs_its_own_trials_and_candidates():
    assert list(STAGES) == ["default", "search"] and STAGES["default"] == (1, 1)
    assert STAGES["search"] == (TRIALS, CONFIRM_TOP)
    seeds = CONFIRM_SEEDS
    default_half_done = stored(1, DEFAULT_ONLY, {DEFAULT_ONLY[0]: seeds - 1})
    default_done = stored(1, DEFAULT_ONLY, {DEFAULT_ONLY[0]: seeds})
    searching = stored(TRIALS // 2, DEFAULT_ONLY, {DEFAULT_ONLY[0]: seeds})
    # the search stage's confirmation under way: stage one's result and ranking stand until it ends
    confirming = stored(TRIALS, TOP_AND_DEFAULT, {TOP_AND_DEFAULT[-1]: seeds, "trial 12": 4}, ranked=DEFAULT_ONLY)
    # stopped by a signal: the ranking stored holds only the candidates with results, which are all done; the
    # fourth planned candidate has none yet, so the stage is not done (30 units would cover 3 x 10)
    stopped = stored(TRIALS, TOP_AND_DEFAULT, dict.fromkeys(TOP_AND_DEFAULT[1:], seeds))
    all_done = stored(TRIALS, TOP_AND_DEFAULT, dict.fromkeys(TOP_AND_DEFAULT, seeds))
    default_in_top = stored(TRIALS, DEFAULT_IN_TOP, dict.fromkeys(DEFAULT_IN_TOP, seeds))
    short = stored(TRIALS, TOP_AND_DEFAULT, {**dict.fromkeys(TOP_AND_DEFAULT, seeds), "trial 7": seeds - 1})
    assert [stage_done(d, "default") for d in (None, default_half_done, default_done)] == [False, False, True]
    assert [stage_done(d, "default") for d in (searching, confirming, all_done, default_in_top)] == [True] * 4
    for partial in (default_done, searching, confirming, stopped, short):
        assert not stage_done(partial, "search")
    assert stage_done(all_done, "search") and stage_done(default_in_top, "search")
    got = [reached(d) for d in (None, default_half_done, default_done, confirming, stopped, all_done)]
    assert got == [None, None, "default", "default", "default", "search"]


def test_hopper_1m_confirms_its_default_first_and_the_furthest_from_its_target_searches_first():
    assert stage_order("default", list(QUEUE)) == list(QUEUE) and QUEUE[0] == "hopper-1m"
    assert stage_order("search", list(QUEUE)) == ["halfcheetah", "walker-walk", "walker2d", "hopper-1m"]
    assert stage_order("search", ["hopper-1m", "walker2d", "walker-walk"]) == ["walker-walk", "walker2d", "hopper-1m"]
    assert sorted(SEARCH_QUEUE) == sorted(QUEUE)  # every study has its place in both stages
