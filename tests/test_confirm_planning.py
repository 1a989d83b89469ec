"""Two confirmations planning at once on a server, while the planning lock's connection is terminated at each
point of the plan: every (candidate, seed) unit is stored once, and the statistics count each pair once. And a
search worker whose budget lock dies between counting and creating counts again: the budget is not overshot.

Real PostgreSQL and MariaDB; the lock holder's own session is ended by the server (``pg_terminate_backend`` /
``KILL``), which frees the advisory lock exactly as a dropped connection does.
"""

from __future__ import annotations

import dataclasses
import threading

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from vmpo_tune import records
from vmpo_tune.budget_lock import BudgetLock
from vmpo_tune.config import RunConfig, TrainConfig, VMPOConfig
from vmpo_tune.search.confirmation import Candidate, collect, config_id, plan_units
from vmpo_tune.search.study import reserve_trial
from vmpo_tune.storage import open_storage

pytestmark = pytest.mark.server

SEEDS = [1000, 1001]
WRITES = 1 + 1 + 3 * len(SEEDS)  # the plan, the requeue check, then one unit per (candidate, seed)


def _config(eta: float) -> RunConfig:
    return RunConfig(VMPOConfig(epsilon_eta=eta), TrainConfig(env_id="X"), 9)


CANDIDATES = [
    Candidate("trial 3", 3, 10.0, _config(0.1)),
    Candidate("trial 5", 5, 9.0, _config(0.2)),
    Candidate("default", 0, 5.0, _config(0.3), is_baseline=True),
]


class KilledOnce(BudgetLock):
    """A budget lock whose server session is ended just before its ``at``-th check (then never again)."""

    def __init__(self, url: str, name: str, admin: sqlalchemy.Engine, at: int, started: threading.Event) -> None:
        super().__init__(url, name, patience=30)
        self.admin, self.at, self.calls, self.started = admin, at, 0, started

    def check_held(self) -> None:
        self.calls += 1
        self.started.set()  # the other planner may start now: it waits for this lock
        if self.calls == self.at:
            postgres = self.backend == "postgresql"
            ask = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
            session = self._held_conn.execute(sqlalchemy.text(ask)).scalar()
            end = f"SELECT pg_terminate_backend({session})" if postgres else f"KILL {session}"
            with self.admin.connect() as conn:
                conn.execute(sqlalchemy.text(end))
            self.after_kill()
        super().check_held()

    def after_kill(self) -> None:
        """What another process does while this holder's lock is free (nothing here)."""


def _server(request, backend: str) -> tuple[str, sqlalchemy.Engine]:
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        return url, sqlalchemy.create_engine(
            "postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
    return request.getfixturevalue("mysql_url")["url"], request.getfixturevalue("mysql_admin")


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_worker_whose_lock_died_after_counting_counts_again(request, backend):
    """Budget 1. Worker A counts 0 trials under the lock; then the server ends A's lock session, and worker B, now
    free to take the lock, reserves the one trial and finishes it. A must not create a second trial."""
    url, admin = _server(request, backend)
    optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")

    class Overtaken(KilledOnce):
        def after_kill(self) -> None:
            other = optuna.load_study(study_name="s", storage=open_storage(url, patience=30))
            lock = BudgetLock(url, "s", patience=30)
            trial = reserve_trial(other, lock, n_trials=1, grace=30)
            other.tell(trial, 1.0)
            lock.close()

    first = Overtaken(url, "s", admin, 1, threading.Event())
    study = optuna.load_study(study_name="s", storage=open_storage(url, patience=30))
    assert reserve_trial(study, first, n_trials=1, grace=30) is None  # counted again: the budget is used
    assert first.calls == 1  # its one check found the lock lost; counting again found the budget used
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]
    first.close()
    if backend == "postgresql":
        admin.dispose()


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="s/confirm", storage=open_storage(url, patience=30))


@pytest.mark.parametrize("at", range(1, WRITES + 1), ids=lambda at: f"killed-before-write-{at}")
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_two_planners_and_a_lost_lock_store_each_unit_once(request, backend, at):
    url, admin = _server(request, backend)
    optuna.create_study(storage=open_storage(url), study_name="s/confirm", direction="maximize")
    started = threading.Event()
    first = KilledOnce(url, "s/confirm", admin, at, started)
    second = BudgetLock(url, "s/confirm", patience=30)

    def plan(name: str, lock: BudgetLock) -> None:
        plan_units(_study(url), lock, CANDIDATES, SEEDS, 100)

    a = threading.Thread(target=plan, args=("first", first))
    a.start()
    assert started.wait(timeout=60)
    b = threading.Thread(target=plan, args=("second", second))
    b.start()
    a.join(timeout=120)
    b.join(timeout=120)
    assert not a.is_alive() and not b.is_alive()
    units = _study(url).get_trials()
    pairs = [(config_id(records.read_config(u)), tuple(records.read_seeds(u))) for u in units]
    assert len(pairs) == len(set(pairs)) == 3 * len(SEEDS), pairs  # every pair once: none lost, none doubled
    assert len(records.read_confirm_plan(_study(url)).candidates) == 3
    first.close()
    second.close()
    if backend == "postgresql":
        admin.dispose()


def test_a_pair_stored_twice_is_counted_once(tmp_path):
    """Whatever happened (units from before this fix, a planner that lost its lock between check and write),
    a (candidate, seed) pair that completed twice counts once in the statistics: its first run."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url, create_parent=True), study_name="s/confirm")
    plan_units(study, BudgetLock(url, "s/confirm"), CANDIDATES[1:], SEEDS, 100)
    extra = records.unit_attrs("trial 5", 5, SEEDS[0], dataclasses.replace(_config(0.2), total_steps=100))
    study.enqueue_trial({}, user_attrs=extra)  # the same pair again
    values = {("trial 5", 1000): [10.0, 99.0], ("trial 5", 1001): [20.0], ("default", 1000): [1.0]}
    values[("default", 1001)] = [2.0]
    for unit in sorted(study.get_trials(), key=lambda t: t.number):
        trial = study.ask()
        assert trial.number == unit.number
        key = (unit.user_attrs[records.CANDIDATE], records.read_seeds(unit)[0])
        value = values[key].pop(0)
        for name, attr in ((records.SEED_RETURNS, [value]), (records.SEED_BEST_RETURNS, [value])):
            trial.set_user_attr(name, attr)
        study.tell(trial, value, state=TrialState.COMPLETE)
    ranked = collect(study)
    winner = next(c for c in ranked if c.label == "trial 5")
    assert winner.n == 2 and sorted(winner.returns) == [10.0, 20.0]  # not 99.0: the pair's second run
    default = next(c for c in ranked if c.is_baseline)
    assert default.n == 2
