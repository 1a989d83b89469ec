"""Optuna's own storage tests (``optuna.testing.pytest_storages.StorageTestCase``, shipped in the wheel for
third-party storages) against :class:`ResilientStorage` as ``open_storage`` builds it (over Optuna's cache of
finished trials, for the databases) on SQLite, a journal file and PostgreSQL: without
faults, and with a transient ``OperationalError`` on every second write, raised before the write (nothing
committed) or after it (committed, and the caller told it failed). The wrapper must keep Optuna's
contract either way: no duplicated study, no write reported as someone else's, no conflict hidden."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.testing.pytest_storages import StorageTestCase

from vmpo_tune import optuna_private
from vmpo_tune.storage import ResilientStorage

WRITES = ("create_", "delete_", "set_", "_create_", "_set_")  # (Optuna's cache calls the private writers)


class Faulty:
    """A storage whose every second write fails with a transient error, before or after doing the write."""

    def __init__(self, inner, when: str) -> None:
        self.inner, self.when, self.calls, self.faults = inner, when, 0, 0

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)
        if not name.startswith(WRITES) or not callable(method):
            return method

        def call(*args, **kwargs):
            self.calls += 1
            fault = self.calls % 2 == 0
            if fault and self.when == "before":
                self.faults += 1
                raise sqlalchemy.exc.OperationalError("UPDATE ...", {}, ConnectionError("server closed the connection"))
            result = method(*args, **kwargs)
            if fault and self.when == "after":
                self.faults += 1
                raise sqlalchemy.exc.OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))
            return result

        return call

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


@pytest.fixture(scope="module")
def pg_database():
    """One PostgreSQL database for the module (made once: a database per test would triple its time)."""
    from .conftest import fresh_pg_database

    with fresh_pg_database("vmpo_contract") as url:
        yield url


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory):
    """An empty SQLite storage with Optuna's tables, made once: each test copies it (0.02 s) instead of creating
    the schema again (0.4 s on one core, times about 250 tests)."""
    path = tmp_path_factory.mktemp("template") / "s.db"
    RDBStorage(f"sqlite:///{path}").engine.dispose()
    return path


def _backend(kind: str, tmp_path, request):
    if kind == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "s.db")
        return optuna_private.SingleAttemptRDB(f"sqlite:///{tmp_path / 's.db'}")
    if kind == "journal":
        return JournalStorage(JournalFileBackend(str(tmp_path / "s.log")))
    url = request.getfixturevalue("pg_database")
    storage = optuna_private.SingleAttemptRDB(url)
    with storage.engine.begin() as conn:  # every test starts from an empty storage, as Optuna's tests expect
        conn.execute(sqlalchemy.text("TRUNCATE studies RESTART IDENTITY CASCADE"))
    return storage


# Without faults the wrapper is checked on PostgreSQL; on the two file storages, half the writes of the fault
# runs go through cleanly (Optuna's own tests cover those storages without a wrapper).
CASES = [("sqlite", "before"), ("sqlite", "after"), ("journal", "before"), ("journal", "after")] + [
    ("postgres", when) for when in ("no-faults", "before", "after")
]


@pytest.fixture(
    params=[
        pytest.param((kind, when), id=f"{kind}-{when}", marks=[pytest.mark.server] if kind == "postgres" else [])
        for kind, when in CASES
    ]
)
def storage(request, tmp_path):
    kind, when = request.param
    inner = _backend(kind, tmp_path, request)
    inner = inner if when == "no-faults" else Faulty(inner, when)
    if kind != "journal":  # as open_storage builds it: Optuna's cache of finished trials in front of the database
        inner = optuna_private.CachedRDB(inner)
    wrapped = ResilientStorage(inner, patience=30, first_delay=0.0)
    yield wrapped
    wrapped.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_faults_are_met_and_absorbed(tmp_path, when):
    """The injection is real: a study with 3 trials finished meets faults, and ends as it would without them."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    faulty = Faulty(RDBStorage(f"sqlite:///{tmp_path / 's.db'}"), when)
    storage = ResilientStorage(faulty, patience=30, first_delay=0.0)
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    for value in (1.0, 2.0, 3.0):
        trial_id = storage.create_new_trial(study_id)
        assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value]) is True
    assert faulty.faults >= 3
    assert [s.study_name for s in storage.get_all_studies()] == ["s"]  # no second study from a retry
    trials = storage.get_all_trials(study_id)
    assert [(t.number, t.state, t.values) for t in trials] == [
        (0, TrialState.COMPLETE, [1.0]),
        (1, TrialState.COMPLETE, [2.0]),
        (2, TrialState.COMPLETE, [3.0]),
    ]  # no trial created twice


def _lose_the_link_once_a_trial_is_committed(storage: RDBStorage) -> dict:
    """The next commit that stores a new trial reaches the database, then its connection is lost: the client is
    told the commit failed (as a server killing the session during COMMIT does)."""
    from optuna.storages._rdb import models

    state = {"armed": False, "fired": 0}

    def after_flush(session, context) -> None:
        state["armed"] = state["armed"] or any(isinstance(o, models.TrialModel) for o in session.new)

    def commit(conn) -> None:
        if state["armed"] and not state["fired"]:
            state["armed"], state["fired"] = False, 1
            conn.connection.driver_connection.commit()
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    sqlalchemy.event.listen(storage.scoped_session.session_factory, "after_flush", after_flush)
    sqlalchemy.event.listen(storage.engine, "commit", commit)
    return state


def test_a_trial_committed_before_its_link_was_lost_is_not_created_again(tmp_path):
    """Optuna's own trial creation tries again after any failed commit, so a trial that was stored gets a
    duplicate; the caller runs the second and the first stays RUNNING with no worker (seen on MariaDB with its
    connections killed: the search waited 10 minutes for it to go stale). If a release of Optuna stops doing
    that, the first half of this test says so. Built as ``open_storage`` builds it, one trial is stored and its
    own id comes back."""
    from optuna.study import StudyDirection

    plain = RDBStorage(f"sqlite:///{tmp_path / 'plain.db'}")
    study_id = plain.create_new_study([StudyDirection.MAXIMIZE], "s")
    fault = _lose_the_link_once_a_trial_is_committed(plain)
    trial_id = plain.create_new_trial(study_id)
    assert fault["fired"] == 1
    trials = plain.get_all_trials(study_id)
    assert [(t.number, t.state.name) for t in trials] == [(0, "RUNNING"), (1, "RUNNING")]  # Optuna's duplicate
    assert trial_id == trials[1]._trial_id  # the caller got the second: nobody owns the first

    once = optuna_private.SingleAttemptRDB(f"sqlite:///{tmp_path / 'once.db'}")
    storage = ResilientStorage(optuna_private.CachedRDB(once), patience=30, first_delay=0.0)
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    fault = _lose_the_link_once_a_trial_is_committed(once)
    trial_id = storage.create_new_trial(study_id)
    assert fault["fired"] == 1
    trials = storage.get_all_trials(study_id)
    assert [(t.number, t.state.name) for t in trials] == [(0, "RUNNING")]
    assert trial_id == trials[0]._trial_id


class TestResilientStorageKeepsOptunasContract(StorageTestCase):
    """Every test of Optuna's ``StorageTestCase``, through ``ResilientStorage`` (the ``storage`` fixture above)."""
