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
        return RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    if kind == "journal":
        return JournalStorage(JournalFileBackend(str(tmp_path / "s.log")))
    url = request.getfixturevalue("pg_database")
    storage = RDBStorage(url)
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


class TestResilientStorageKeepsOptunasContract(StorageTestCase):
    """Every test of Optuna's ``StorageTestCase``, through ``ResilientStorage`` (the ``storage`` fixture above)."""
