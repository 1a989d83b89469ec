"""The full-budget campaign (benchmarks/study_results.py) runs every study's default first, then its search: a
stage counts as done only when its own search and every one of its confirmed candidates' test seeds are done."""

from __future__ import annotations

from types import SimpleNamespace

from optuna.trial import TrialState

from benchmarks.study_results import CONFIRM_SEEDS, CONFIRM_TOP, STAGES, TRIALS, reached, stage_done


def stored(finished: int, candidates: int, units: int) -> dict:
    """What the campaign reads from a storage: ``finished`` search trials, a ranked confirmation of ``candidates``
    and ``units`` complete confirmation units."""
    unit = SimpleNamespace(state=TrialState.COMPLETE, user_attrs={})
    return {"finished": finished, "confirmation": [object()] * candidates, "units": [unit] * units}


def test_the_default_stage_runs_first_and_the_search_stage_needs_its_own_trials_and_candidates():
    assert list(STAGES) == ["default", "search"] and STAGES["default"] == (1, 1)
    assert STAGES["search"] == (TRIALS, CONFIRM_TOP)
    nothing = None
    default_half_done = stored(1, 1, CONFIRM_SEEDS - 1)
    default_done = stored(1, 1, CONFIRM_SEEDS)
    searching = stored(TRIALS // 2, 1, CONFIRM_SEEDS)  # the search stage under way: stage one's result stands
    confirming = stored(TRIALS, 1, CONFIRM_SEEDS + 7)  # its confirmation under way: still the old ranking
    all_done = stored(TRIALS, CONFIRM_TOP + 1, (CONFIRM_TOP + 1) * CONFIRM_SEEDS)
    short = stored(TRIALS, CONFIRM_TOP + 1, (CONFIRM_TOP + 1) * CONFIRM_SEEDS - 1)
    assert [stage_done(d, "default") for d in (nothing, default_half_done, default_done)] == [False, False, True]
    assert [stage_done(d, "default") for d in (searching, confirming, all_done)] == [True, True, True]
    assert [stage_done(d, "search") for d in (default_done, searching, confirming, short)] == [False] * 4
    assert stage_done(all_done, "search")
    assert [reached(d) for d in (nothing, default_half_done, default_done, confirming, all_done)] == [
        None,
        None,
        "default",
        "default",
        "search",
    ]
