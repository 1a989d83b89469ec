"""Racing: the rules on hand-made races, a race driven through Optuna's own queue, and real searches
(budgets exact, no (configuration, seed) run twice, a killed worker, two commands on one study, resume)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from vmpo_tune import records
from vmpo_tune.search import racing

from .search_helpers import (
    LONG_TOY,
    TOY_STUDY,
    cli,
    interrupt_search,
    load,
    running_with_values,
    spawn,
    wait_for,
    write_study,
)

BASE = 0
DIST = {"x": CategoricalDistribution(list(range(10)))}


def run(x: int, seed_index: int, value: float | None, state: TrialState = TrialState.COMPLETE):
    return optuna.trial.create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params={"x": x},
        distributions=DIST,
        user_attrs={records.SEEDS: [BASE + seed_index]},
    )


def race_of(*trials) -> list[racing.Contender]:
    study = optuna.create_study(direction="maximize")
    for t in trials:
        study.add_trial(t)
    return racing.contenders(study.get_trials(), BASE)


def asks(race, max_seeds=5) -> list[tuple[int, int]]:
    return [(c.params["x"], k) for c, k in racing.next_runs(race, max_seeds)]


def test_a_challenger_that_beats_the_incumbent_on_its_seed_takes_over_and_earns_the_next_seed():
    race = race_of(run(0, 0, 10.0), run(1, 0, 20.0))
    assert racing.incumbent(race).params == {"x": 1}
    assert asks(race) == [(1, 1)]  # the raced incumbent earns seed 1; the old one lost, it gets nothing


def test_a_challenger_earns_seeds_only_while_it_is_as_good_on_the_shared_seeds():
    incumbent = [run(0, k, v) for k, v in enumerate([10.0, 30.0, 20.0, 40.0])]  # mean on 1: 10, on 2: 20
    winning = [run(1, 0, 15.0)]  # 15 >= 10 on seed 0: doubles to 2 seeds
    losing = [run(2, 0, 5.0)]  # 5 < 10: out
    good_on_two = [run(3, 0, 12.0), run(3, 1, 29.0)]  # 20.5 >= 20 on seeds 0-1: doubles to 4
    bad_on_two = [run(4, 0, 11.0), run(4, 1, 20.0)]  # 15.5 < 20: out
    race = race_of(*incumbent, *winning, *losing, *good_on_two, *bad_on_two)
    assert asks(race) == [(1, 1), (3, 2), (3, 3)]


def test_pending_pruned_and_failed_runs_end_or_hold_a_race():
    race = race_of(
        run(0, 0, 10.0),
        run(0, 1, 10.0),
        run(1, 0, 50.0),
        run(1, 1, None, TrialState.RUNNING),  # its next seed is running: nothing more is asked for it
        run(2, 0, 60.0),
        run(2, 1, None, TrialState.PRUNED),  # a lost run ends its race
    )
    assert racing.incumbent(race).params == {"x": 0}  # the most seeds, then the mean
    assert asks(race) == []  # x=1 waits for its run; x=2 is out; nobody caught up with the incumbent's 2 seeds


def test_the_incumbent_stops_at_the_seed_limit():
    race = race_of(*[run(0, k, 10.0) for k in range(3)], *[run(1, k, 9.0) for k in range(3)])
    assert asks(race, max_seeds=3) == []
    assert asks(race, max_seeds=4) == [(0, 3)]


def test_the_end_of_the_budget_goes_to_the_incumbents_missing_seeds():
    race = race_of(run(0, 0, 10.0), run(1, 0, 45.0), run(2, 0, 40.0), run(2, 1, 41.0))
    assert asks(race) == [(1, 1)]  # plenty of budget: the race goes on
    assert [(c.params["x"], k) for c, k in racing.next_runs(race, 5, room=3)] == [(2, 2), (2, 3), (2, 4)]
    assert [(c.params["x"], k) for c, k in racing.next_runs(race, 5, room=2)] == [(2, 2), (2, 3)]


def test_a_clearly_better_configuration_gets_the_most_seeds_through_optunas_queue():
    """A race run through a real study: sample, queue earned seeds, ask, tell, under an exact budget."""
    true_means = {x: 100.0 if x == 7 else 50.0 + 2 * x for x in range(10)}
    noise = np.random.default_rng(0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    budget, max_seeds = 40, 5
    while len(study.trials) < budget:
        racing.queue_next(study, budget - len(study.trials), BASE, max_seeds)
        trial = study.ask()
        x = trial.suggest_categorical("x", list(range(10)))
        seeds = trial.user_attrs.get(records.SEEDS) or [BASE]
        trial.set_user_attr(records.SEEDS, seeds)
        study.tell(trial, true_means[x] + noise.normal(0, 5))
    assert len(study.trials) == budget
    table = racing.standings(study.trials, BASE)
    assert table[0].params == {"x": 7} and table[0].n == max_seeds
    assert all(c.n < max_seeds for c in table[1:])
    runs = [(t.params["x"], t.user_attrs[records.SEEDS][0]) for t in study.trials]
    seeds_of = {y: len({s for x, s in runs if x == y}) for y in range(10)}
    assert seeds_of[7] == max_seeds > max(n for y, n in seeds_of.items() if y != 7)
    earned = [r for r in runs if r[1] != BASE]  # (the sampler may propose a configuration again: that is its seed 0)
    assert len(earned) == len(set(earned))  # no earned seed was run twice


RACING_TOY = {
    **TOY_STUDY,
    "search": {"name": "racing", "seeds": 3},
    # 1e-4 survives the whole episode; 10.0 wrecks the policy at once: the wrecked ones lose on their first seed
    "search_space": {
        "policy_lr": {"choices": [1.0e-4, 10.0], "default": 1.0e-4},
        "epsilon_eta": {"low": 0.001, "high": 0.1, "log": True, "default": 0.01},
    },
}


def with_rivals(folder) -> list[str]:
    """``--enqueue`` flags for a second good configuration and a wrecked one, run right after the default."""
    (folder / "good.yaml").write_text("policy_lr: 1.0e-4\nepsilon_eta: 0.05\n")
    (folder / "wrecked.yaml").write_text("policy_lr: 10.0\nepsilon_eta: 0.05\n")
    return ["--enqueue", "good.yaml", "--enqueue", "wrecked.yaml"]


def runs_of(url: str) -> list[tuple[str, int]]:
    trials = load(url).get_trials()
    retried = records.retried_numbers(trials)
    return [(racing.config_key(t.params), records.read_seeds(t)[0]) for t in trials if t.number not in retried]


def check_race(url: str, n_trials: int, max_seeds: int) -> list[racing.Contender]:
    """The invariants of a finished race: exact budget, nothing left open, no run twice, a winner on all seeds."""
    trials = load(url).get_trials()
    counts = records.budget_counts(trials)
    assert counts.finished == n_trials and counts.running == 0 and counts.waiting == 0, counts
    runs = runs_of(url)
    assert len(runs) == len(set(runs)), "a (configuration, seed) ran twice"
    table = racing.standings(trials, 0)
    # the winner is a good configuration and holds the most seeds; with several workers finishing the budget at
    # once a late change of incumbent can leave it short of max_seeds (one worker: exactly max_seeds, see below)
    assert table[0].params["policy_lr"] == 1.0e-4 and table[0].n >= 2
    assert table[0].n == max(c.n for c in table) <= max_seeds
    for c in racing.contenders(trials, 0):
        if c.params.get("policy_lr") == 10.0:
            assert c.n <= 1 and not c.pending  # wrecked: lost on its first seed, never earned another
    return table


def test_a_racing_search_ends_with_a_winner_on_its_seeds_and_confirms_by_the_race(tmp_path):
    write_study(tmp_path, RACING_TOY)
    url = f"sqlite:///{tmp_path / 'runs' / 'study.db'}"
    args = ("--study", "toy.yaml", "--trials", "8", "--workers", "1", "--out", "runs", *with_rivals(tmp_path))
    search = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    assert "racing: " in search.stderr and "stands on 3 of 3 seeds" in search.stderr  # one worker: all N seeds
    table = check_race(url, 8, 3)
    assert table[0].n == 3
    confirm = cli(
        "vmpo_tune.confirm", "--study", "toy", "--run-dir", "runs", "--top", "1", "--seeds", "2", cwd=tmp_path
    )
    assert confirm.returncode == 0, confirm.stderr
    ranked = records.read_confirmation(load(url))
    assert ranked[0].source_trial == table[0].first or ranked[0].label == "default"
    assert ranked[0].search_score in (table[0].mean, None)
    # test seeds never overlap the seeds a racing configuration can earn
    assert min(ranked[0].seeds) >= 3


def test_racing_options_are_checked(tmp_path):
    write_study(tmp_path, {**RACING_TOY, "seeds_per_trial": 2})
    bad = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "2", cwd=tmp_path)
    assert bad.returncode == 2 and "seeds_per_trial" in bad.stderr
    write_study(tmp_path, {**RACING_TOY, "search": {"name": "racing", "seeds": 1}})
    bad = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "2", cwd=tmp_path)
    assert bad.returncode == 2 and "search.seeds" in bad.stderr
    write_study(tmp_path, TOY_STUDY)
    bad = cli("vmpo_tune.search", "--study", "toy.yaml", "--race-seeds", "3", cwd=tmp_path)
    assert bad.returncode == 2 and "--search racing" in bad.stderr
    assert not (tmp_path / "runs").exists()


SLOW_RACE = {**LONG_TOY, "search": {"name": "racing", "seeds": 2}, "total_steps": 8_000}
FAST_HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
@pytest.mark.slow
def test_a_killed_worker_loses_no_run_and_runs_none_twice(tmp_path, backend, request):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    write_study(tmp_path, SLOW_RACE)
    args = ("--study", "toy.yaml", "--storage", url, "--out", "run", "--trials", "5", "--workers", "2")
    proc = spawn("vmpo_tune.search", *args, *FAST_HEARTBEAT, cwd=tmp_path)
    try:
        running = wait_for(running_with_values(url, 1, min_values=2), timeout=180)
        os.kill(running[0].user_attrs[records.PROVENANCE]["pid"], signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    time.sleep(3.5)
    rerun = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    trials = load(url).get_trials()
    counts = records.budget_counts(trials)
    assert counts.finished == 5 and counts.running == 0 and counts.waiting == 0, counts
    runs = runs_of(url)
    assert len(runs) == len(set(runs))
    killed = next(t for t in trials if t.number == running[0].number)
    assert killed.state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get(records.RETRY_OF) == killed.number)
    assert retry.user_attrs[records.RESUMED_FROM] > 0 and retry.user_attrs[records.RESUME_EXACT] is True
    assert records.read_seeds(retry) == records.read_seeds(killed)  # the same run, continued


@pytest.mark.server
@pytest.mark.slow
def test_two_commands_share_one_race_on_postgresql(tmp_path, pg_url):
    write_study(tmp_path, RACING_TOY)
    args = ("--study", "toy.yaml", "--storage", pg_url, "--out", "run", "--trials", "10", "--workers", "2")
    args = (*args, *with_rivals(tmp_path))
    first, second = spawn("vmpo_tune.search", *args, cwd=tmp_path), spawn("vmpo_tune.search", *args, cwd=tmp_path)
    assert first.wait(timeout=600) == 0 and second.wait(timeout=600) == 0, (tmp_path / "proc.out").read_text()
    check_race(pg_url, 10, 3)


def test_an_interrupted_race_resumes_exactly(tmp_path):
    write_study(tmp_path, SLOW_RACE)
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "4", "--workers", "1")
    interrupt_search(url, args, tmp_path)
    rerun = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    trials = load(url).get_trials()
    assert records.budget_counts(trials).finished == 4
    runs = runs_of(url)
    assert len(runs) == len(set(runs))
    retry = next(t for t in trials if t.system_attrs.get(records.RETRY_OF) is not None)
    assert retry.user_attrs[records.RESUME_EXACT] is True and retry.user_attrs[records.RESUMED_FROM] > 0


def test_a_configuration_with_a_lost_run_cannot_stay_incumbent_and_seeds_are_never_asked_twice():
    race = race_of(
        *[run(0, k, 90.0) for k in range(2)],
        run(0, 2, None, TrialState.PRUNED),  # the best mean, but it lost a run: it cannot hold the title
        *[run(1, k, 50.0) for k in range(2)],
        run(2, 0, 60.0),
    )
    assert racing.incumbent(race).params == {"x": 1}
    assert asks(race) == [(2, 1), (1, 2)]  # the race goes on: a challenger earns a seed, the incumbent too
    assert racing.standings([t for c in [] for t in c], 0) == []
    resumed = race_of(*[run(0, k, 10.0) for k in (0, 1, 3)], run(0, 2, None, TrialState.WAITING))
    assert [(c.params["x"], k) for c, k in racing.next_runs(resumed, 5, room=1)] == [(0, 4)]  # not seed 3 again
