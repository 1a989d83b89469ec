"""The full-budget campaign (benchmarks/study_results.py) runs every study's default first, then its search, then
the held-out check of its winner: a stage counts as done only when its own search and every candidate its
confirmation (or held-out check) planned are done on every seed."""

from __future__ import annotations

from types import SimpleNamespace

from optuna.trial import TrialState

from benchmarks import study_results
from benchmarks.study_results import (
    CONFIRM_SEEDS,
    CONFIRM_TOP,
    KEPT,
    MORE_TOP,
    MORE_TRIALS,
    QUEUE,
    SEARCH_QUEUE,
    STAGES,
    TRIALS,
    enqueued,
    reached,
    stage_done,
    stage_order,
    stage_plan,
    transfers,
)
from vmpo_tune import records
from vmpo_tune.search.confirmation import config_id
from vmpo_tune.search.spec import default_params, load_spec

DEFAULT_ONLY = ["trial 0 (default)"]
TOP_AND_DEFAULT = ["trial 12", "trial 7", "trial 3", "trial 0 (default)"]
DEFAULT_IN_TOP = ["trial 12", "trial 0 (default)", "trial 3"]  # the default is one of the best three


def stored(
    finished: int,
    planned: list[str],
    done: dict[str, int],
    ranked: list[str] | None = None,
    checked: dict[str, int] | None = None,
    wanted: list[str] | None = None,
) -> dict:
    """What the campaign reads from a storage: ``finished`` search trials, the confirmation's planned candidates,
    ``done[label]`` finished units per candidate (one diverged: a result too), the stored ranking (by default
    the candidates with a result), ``checked[label]`` finished held-out units per candidate, and the candidates
    ``confirm --top`` would plan now (by default those planned). A candidate's label is its configuration key."""

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
    ranking = [records.PlannedCandidate(label, None, None, "default" in label, label) for label in ranking]
    held_out = [unit(label, i) for label, n in (checked or {}).items() for i in range(n)]
    return {
        "finished": finished,
        "planned": plan,
        "units": [*units, running],
        "confirmation": ranking,
        "held_out_units": held_out,
        "wanted": planned if wanted is None else wanted,
    }


def test_the_default_stage_runs_first_and_the_search_stage_needs_its_own_trials_and_candidates():
    assert list(STAGES) == ["default", "search", "held-out"] and STAGES["default"] == (1, 1)
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
    got = [reached("halfcheetah", d) for d in (None, default_half_done, default_done, confirming, stopped, all_done)]
    assert got == [None, None, "default", "default", "default", "search"]


def test_the_held_out_stage_follows_a_confirmed_search_and_has_nothing_to_do_when_the_default_won():
    seeds = CONFIRM_SEEDS
    confirming = stored(TRIALS, TOP_AND_DEFAULT, {TOP_AND_DEFAULT[-1]: seeds, "trial 12": 4})
    searched = dict.fromkeys(TOP_AND_DEFAULT, seeds)
    unchecked = stored(TRIALS, TOP_AND_DEFAULT, searched)  # winner: trial 12
    half = stored(TRIALS, TOP_AND_DEFAULT, searched, checked={"trial 12": seeds, "default": seeds - 1})
    checked = stored(TRIALS, TOP_AND_DEFAULT, searched, checked={"trial 12": seeds, "default": seeds})
    default_won = stored(TRIALS, DEFAULT_IN_TOP, dict.fromkeys(DEFAULT_IN_TOP, seeds), ranked=DEFAULT_IN_TOP[1:])
    assert [stage_done(d, "held-out") for d in (None, confirming, unchecked, half)] == [False] * 4
    assert stage_done(checked, "held-out") and stage_done(default_won, "held-out")
    assert [reached("halfcheetah", d) for d in (unchecked, half, checked, default_won)] == [
        "search",
        "search",
        "held-out",
        "held-out",
    ]
    assert stage_order("held-out", list(QUEUE)) == list(SEARCH_QUEUE)
    command = study_results.held_out_command("walker2d", 2)
    assert command[:3] == ["vmpo_tune.confirm", "--study", "walker2d"] and "--held-out" in command
    assert command[command.index("--seeds") + 1] == str(CONFIRM_SEEDS) and "--top" not in command


def test_a_study_that_searches_on_is_not_confirmed_again_until_its_extra_trials_and_new_candidates_are_done(
    monkeypatch,
):
    study, seeds = "walker-walk", CONFIRM_SEEDS
    more, top = MORE_TRIALS[study], MORE_TOP[study]
    assert more > TRIALS and top > CONFIRM_TOP and stage_plan(study, "search") == (more, top)
    assert stage_plan("halfcheetah", "search") == (TRIALS, CONFIRM_TOP) and stage_plan(study, "default") == (1, 1)
    first_round = stored(TRIALS, TOP_AND_DEFAULT, dict.fromkeys(TOP_AND_DEFAULT, seeds))
    searching_on = stored(more - 1, TOP_AND_DEFAULT, dict.fromkeys(TOP_AND_DEFAULT, seeds))
    second_round = [*TOP_AND_DEFAULT, "trial 41"]  # a new trial among the best 3: queued beside the earlier ones
    confirming = stored(more, second_round, {**dict.fromkeys(TOP_AND_DEFAULT, seeds), "trial 41": 3})
    done = stored(more, second_round, dict.fromkeys(second_round, seeds))
    # the second round's winner gets its own held-out check: the first round's winner's does not count for it
    new_winner = ["trial 41", *TOP_AND_DEFAULT]
    first_checked = {"trial 12": seeds, "default": seeds}
    old_check = stored(more, second_round, dict.fromkeys(second_round, seeds), new_winner, first_checked)
    new_check = stored(more, second_round, dict.fromkeys(second_round, seeds), new_winner,
                       {**first_checked, "trial 41": seeds})  # fmt: skip
    assert stage_done(old_check, "search", more) and not stage_done(old_check, "held-out", more)
    assert stage_done(new_check, "held-out", more) and not stage_done(new_check, "held-out", more + 1)
    # killed between the search's last trial and the confirmation's planning: every unit planned has run, but the
    # new best trial is not planned yet, so the round is not confirmed (a rerun plans and runs it)
    unplanned = stored(more, TOP_AND_DEFAULT, dict.fromkeys(TOP_AND_DEFAULT, seeds), wanted=second_round)
    assert not stage_done(unplanned, "search", more) and reached(study, unplanned) == "default"
    assert reached("halfcheetah", first_round) == "search"
    assert [reached(study, d) for d in (first_round, searching_on, confirming, done)] == [
        "default", "default", "default", "search",
    ]  # fmt: skip
    # the held-out check waits for the second round, and its RESULTS.md section stays as it is meanwhile
    assert not stage_done(confirming, "held-out", more) and not stage_done(first_round, "search", more)
    printed, ran = [], []
    monkeypatch.setattr(study_results, "load_campaign_study", lambda name, path, top: confirming)
    monkeypatch.setattr(study_results, "cli", lambda *args: ran.append(args))
    monkeypatch.setattr("builtins.print", lambda *args, **kw: printed.append(" ".join(map(str, args))))
    study_results.tables([study], "the machine", 2)
    assert ran == [] and f"not confirmed yet at {more} trials" in printed[0]
    # its search command asks for the extra trials; the others keep theirs
    monkeypatch.setattr(study_results, "continue_from_kept", lambda live, kept: None)
    monkeypatch.setattr(study_results, "backup", lambda live, kept: None)
    monkeypatch.setattr(study_results, "transfers", lambda name: [])
    study_results.run_study(study, 2, "search")
    search, confirm = ran
    assert search[search.index("--trials") + 1] == str(more) and confirm[confirm.index("--top") + 1] == str(top)
    ran.clear()
    study_results.run_study("halfcheetah", 2, "search")
    assert ran[1][ran[1].index("--top") + 1] == str(CONFIRM_TOP)  # a study that searched once keeps its best 3


def test_hopper_1m_confirms_its_default_first_and_the_furthest_from_its_target_searches_first():
    assert stage_order("default", list(QUEUE)) == list(QUEUE) and QUEUE[0] == "hopper-1m"
    assert stage_order("search", list(QUEUE)) == ["halfcheetah", "walker-walk", "walker2d", "hopper-1m", "cheetah-run"]
    assert QUEUE[-1] == "cheetah-run"  # added last: every other study's default was confirmed before it
    assert stage_order("search", ["hopper-1m", "walker2d", "walker-walk"]) == ["walker-walk", "walker2d", "hopper-1m"]
    assert sorted(SEARCH_QUEUE) == sorted(QUEUE)  # every study has its place in both stages


def test_a_search_queues_the_confirmed_winners_of_the_searches_before_it_but_no_default(monkeypatch):
    seeds = CONFIRM_SEEDS
    kept = {
        "halfcheetah": stored(TRIALS, TOP_AND_DEFAULT, dict.fromkeys(TOP_AND_DEFAULT, seeds)),  # winner: trial 12
        "walker-walk": stored(TRIALS, TOP_AND_DEFAULT, {TOP_AND_DEFAULT[-1]: seeds, "trial 12": 4}),  # confirming
        "walker2d": stored(TRIALS, DEFAULT_IN_TOP, dict.fromkeys(DEFAULT_IN_TOP, seeds), ranked=DEFAULT_IN_TOP[1:]),
        "hopper-1m": stored(1, DEFAULT_ONLY, {DEFAULT_ONLY[0]: seeds}),
    }
    monkeypatch.setattr(study_results, "load_campaign_study", lambda study, db, top: kept[study])
    assert SEARCH_QUEUE == ("halfcheetah", "walker-walk", "walker2d", "hopper-1m", "cheetah-run")
    assert transfers("halfcheetah") == []  # the first search has nothing before it
    assert transfers("walker-walk") == ["halfcheetah"]
    # walker-walk's confirmation is not done; walker2d's winner is its default (a search found nothing better)
    assert transfers("hopper-1m") == ["halfcheetah"]
    kept["walker-walk"] = stored(TRIALS, TOP_AND_DEFAULT, dict.fromkeys(TOP_AND_DEFAULT, seeds))
    assert transfers("hopper-1m") == ["halfcheetah", "walker-walk"]
    # the last study takes every earlier winner but no default, whatever its place: hopper-1m's search is not done
    assert transfers("cheetah-run") == ["halfcheetah", "walker-walk"]


def test_the_search_command_shown_names_the_files_its_trials_were_queued_from():
    winner = KEPT / "halfcheetah.winner.yaml"
    trials = [
        SimpleNamespace(user_attrs=records.default_trial_attrs()),
        SimpleNamespace(user_attrs=records.enqueued_attrs(f"/elsewhere/results/studies/{winner.name}")),
        SimpleNamespace(user_attrs={}),
        SimpleNamespace(user_attrs=records.enqueued_attrs(str(winner))),  # its retry, on this machine
    ]
    assert enqueued({"trials": trials}) == [winner]
    command = study_results.search_command("walker-walk", 2, TRIALS, enqueued({"trials": trials}))
    assert command[-2:] == ["--enqueue", str(winner)] and command.count("--enqueue") == 1
    assert "--enqueue" not in study_results.search_command("walker-walk", 2, TRIALS)


def test_the_campaigns_studies_share_one_search_space_so_a_winner_is_a_valid_trial_of_every_other():
    spaces = {study: [p.describe() for p in load_spec(study, check_env=False).space] for study in QUEUE}
    first = spaces[QUEUE[0]]
    assert len(first) >= 10
    assert all(space == first for space in spaces.values()), {s: len(v) for s, v in spaces.items()}


def test_the_table_names_the_candidate_a_study_file_now_ships_as_its_default():
    shipped = default_params(load_spec("walker2d", check_env=False))
    other = {**shipped, "policy_lr": shipped["policy_lr"] * 2}
    # a trial stores one_minus_gamma as sampled; the study file holds gamma rounded to 12 digits: the same config
    unrounded = {**shipped, "one_minus_gamma": shipped["one_minus_gamma"] + 3e-15}
    assert unrounded != shipped

    def candidate(label, trial, baseline=False):
        return SimpleNamespace(label=label, source_trial=trial, is_baseline=baseline)

    trials = [SimpleNamespace(number=n, params=p) for n, p in enumerate([shipped, other, other, unrounded])]
    ranked = [candidate("trial 2", 2), candidate("trial 3", 3), candidate("trial 0 (default)", 0, baseline=True)]
    assert study_results.default_now("walker2d", {"trials": trials, "confirmation": ranked}) == "trial 3"
    # the confirmation's own default is never "the default now", and nothing else matches: the plain labels stay
    trials[3] = SimpleNamespace(number=3, params=other)
    assert study_results.default_now("walker2d", {"trials": trials, "confirmation": ranked}) is None


def test_the_kept_storages_of_confirmed_searches_want_no_candidate_their_confirmation_did_not_plan():
    """``wanted`` read from real storages: each confirmed search's best 3 and default, all of them planned."""
    for study in ("halfcheetah", "walker2d", "hopper-1m"):
        data = study_results.load_campaign_study(study, study_results.kept_db(study), CONFIRM_TOP)
        wanted, planned = data["wanted"], {c.key for c in data["planned"]}
        # the best 3 and the default (walker2d's default is one of its best 3)
        assert len(wanted) == CONFIRM_TOP + (study != "walker2d") and set(wanted) <= planned, study
        assert stage_done(data, "search") and not stage_done({**data, "wanted": [*wanted, "another"]}, "search")
    assert study_results.load_campaign_study("halfcheetah", study_results.kept_db("halfcheetah"))["wanted"] == []


def test_walker_walks_fourth_round_had_its_best_trial_confirmed_which_its_best_3_would_have_missed():
    """Read from the kept storage (later rounds add trials, not these): the fourth round's best trial ranked below the
    best 3 by search score of the 90 trials then finished, so ``confirm --top 3`` planned nothing new; it ranked
    within :data:`MORE_TOP`'s best, and the confirmation planned it."""
    study, round_size = "walker-walk", 20  # each round after the first runs 20 more trials
    fourth_round_end = TRIALS + 3 * round_size
    data = study_results.load_campaign_study(study, study_results.kept_db(study))
    retried = records.retried_numbers(data["trials"])
    by_number = sorted(data["trials"], key=lambda t: t.number)
    finished = [t for t in by_number if t.state.is_finished() and t.number not in retried][:fourth_round_end]
    assert len(finished) == fourth_round_end <= data["finished"]
    complete = sorted((t for t in finished if t.state == TrialState.COMPLETE), key=lambda t: (-t.value, t.number))
    fourth_round = {t.number for t in finished[-round_size:]}
    best_new = next(t for t in complete if t.number in fourth_round)
    ranked = list(dict.fromkeys(config_id(records.read_config(t)) for t in complete))  # distinct configurations
    rank = ranked.index(config_id(records.read_config(best_new))) + 1
    assert CONFIRM_TOP < rank <= MORE_TOP[study]
    planned = {c.key: c for c in data["planned"]}
    assert planned[ranked[rank - 1]].source_trial == best_new.number
    assert all(key in planned for key in ranked[: MORE_TOP[study]])  # and every other of the best 7 with it
