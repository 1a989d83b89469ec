"""Opening a study's storage, and :class:`ResilientStorage`, which survives dropped connections.

* :func:`open_storage` turns a ``--storage`` URL (:mod:`.storage_urls`: SQLite by default, a journal
  file, Redis, the gRPC proxy, PostgreSQL / MySQL) into a storage, with a one-line error for a server
  that is down, a missing driver or a file that is not a study. A database gets Optuna's cache of
  finished trials in front of it, as Optuna's own ``get_storage`` gives it, so that reading a study
  loads only its unfinished and new trials (a read of a 192-trial study: 186 ms of CPU without it,
  0.7 ms with it; ``benchmarks/study_reads.py``).
* :class:`ResilientStorage` wraps Optuna's storage and retries every call that fails transiently
  (:mod:`.storage_faults`: dropped connection, server restart, deadlock, lock timeout) with
  exponential backoff for up to ``patience`` seconds; then it raises ``StorageUnavailable``. A result
  that took an hour to train is not lost to a connection that dropped for a second. Retried writes
  are made idempotent where Optuna's are not (see each method).
* The study's exact trial budget is held by :mod:`.budget_lock`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import warnings
from typing import Any, Callable, Sequence, TypeVar

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from . import optuna_private
from .errors import UserError, first_line
from .optuna_private import DEFAULT_STUDY_NAME_PREFIX
from .redaction import redact_url
from .storage_faults import PATIENCE, StorageUnavailable, describe_fault, is_transient, with_retries
from .storage_urls import (
    CONNECT_TIMEOUT,
    engine_kwargs,
    grpc_address,
    grpc_module,
    is_grpc,
    is_redis,
    journal_path,
    normalize_url,
    parse_url,
    prepare_sqlite,
    redis_client,
    sqlite_path,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class ResilientStorage(BaseStorage):
    """An Optuna storage whose calls are retried on transient failures (see :func:`with_retries`).

    Reads and idempotent writes are simply retried. A write that is not idempotent may have
    committed before its connection dropped, and a blind retry would then do it twice or report
    its own write as someone else's; those look first, so that the result is the one Optuna's
    storage contract promises (``tests/test_storage_contract.py`` runs Optuna's own storage
    tests with faults injected before and after each write):

    * ``create_new_study``: the name is fixed before the first attempt (an unnamed study gets
      Optuna's default prefix and a UUID here, not inside the call), so a retry that finds the
      name taken after an attempt that may have committed returns that study (a name that was taken
      before the first attempt raises DuplicatedStudyError, as the contract says);
    * ``delete_study``: a retry that finds the study gone after such an attempt is done (one that was
      gone before the first attempt raises KeyError);
    * ``create_new_trial`` (made under the budget lock) looks whether the trial count moved and,
      if so, returns the trial that was created (a database's storage makes one attempt per call,
      :class:`~vmpo_tune.optuna_private.SingleAttemptRDB`: Optuna's own loop would create it again);
    * ``set_trial_state_values`` reads the state before writing: after a failed attempt, the
      target state found where another state was is this call's write (True); a trial that
      was in the target state already is the contract's conflict (False), as without faults.
    """

    def __init__(self, inner: BaseStorage, patience: float = PATIENCE, first_delay: float = 0.2) -> None:
        self.inner, self.patience, self.first_delay = inner, patience, first_delay

    def _retry(self, call: Callable[[], _T], what: str) -> _T:
        return with_retries(call, what, self.patience, on_retry=self.inner.remove_session, delay=self.first_delay)

    def _call(self, name: str, *args: Any) -> Any:
        method = getattr(self.inner, name)
        return self._retry(lambda: method(*args), name)

    def _first_attempt(self, call: Callable[[], _T], what: str) -> tuple[bool, _T | None]:
        """``(True, result)``, or ``(False, None)`` after a transient failure that may have committed."""
        try:
            return True, call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("storage: %s failed (%s); checking whether it was stored", what, describe_fault(exc))
            self.inner.remove_session()
            return False, None

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        name = study_name if study_name is not None else f"{DEFAULT_STUDY_NAME_PREFIX}{uuid.uuid4()}"
        if study_name is not None and self._exists(name):
            return self._call("create_new_study", directions, name)  # the contract's DuplicatedStudyError
        done, study_id = self._first_attempt(lambda: self.inner.create_new_study(directions, name), "creating a study")
        if done:
            return study_id

        def again() -> int:
            try:
                return self.inner.create_new_study(directions, name)
            except optuna.exceptions.DuplicatedStudyError:  # the first attempt committed
                return self.inner.get_study_id_from_name(name)

        return self._retry(again, "create_new_study")

    def _exists(self, name: str) -> bool:
        def look() -> bool:
            try:
                self.inner.get_study_id_from_name(name)
                return True
            except KeyError:
                return False

        return self._retry(look, "get_study_id_from_name")

    def _study_exists(self, study_id: int) -> bool:
        try:
            self._call("get_study_name_from_id", study_id)
            return True
        except KeyError:
            return False

    def delete_study(self, study_id: int) -> None:
        if not self._study_exists(study_id):
            return self._call("delete_study", study_id)  # the contract's KeyError for a study that is not there
        done, _ = self._first_attempt(lambda: self.inner.delete_study(study_id), "deleting a study")
        if done:
            return

        def again() -> None:
            with contextlib.suppress(KeyError):  # gone: the first attempt committed
                self.inner.delete_study(study_id)

        self._retry(again, "delete_study")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        return self._call("set_study_user_attr", study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        return self._call("set_study_system_attr", study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._call("get_study_id_from_name", study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._call("get_study_name_from_id", study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._call("get_study_directions", study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call("get_study_user_attrs", study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call("get_study_system_attrs", study_id)

    def get_all_studies(self) -> list:
        return self._call("get_all_studies")

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        before = self._call("get_n_trials", study_id)
        done, trial_id = self._first_attempt(
            lambda: self.inner.create_new_trial(study_id, template_trial), "creating a trial"
        )
        if done:
            return trial_id
        if self._call("get_n_trials", study_id) > before:  # it committed before the connection dropped
            return self._call("get_trial_id_from_study_id_trial_number", study_id, before)
        return self._call("create_new_trial", study_id, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution) -> None:
        return self._call("set_trial_param", trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._call("get_trial_id_from_study_id_trial_number", study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._call("get_trial_number_from_id", trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._call("get_trial_param", trial_id, param_name)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        """Retried like the rest, except that a retry after a failed attempt first looks whether that attempt
        committed (see the class docstring)."""
        before = self._call("get_trial", trial_id).state
        done, result = self._first_attempt(
            lambda: self.inner.set_trial_state_values(trial_id, state, values), f"setting a trial to {state.name}"
        )
        if done:
            return result

        def again() -> bool:
            if before != state and self.inner.get_trial(trial_id).state == state:
                return True  # the failed attempt committed
            return self.inner.set_trial_state_values(trial_id, state, values)

        return self._retry(again, "set_trial_state_values")

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        return self._call("set_trial_intermediate_value", trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        return self._call("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        return self._call("set_trial_system_attr", trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._call("get_trial", trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        return self._call("get_all_trials", study_id, deepcopy, states)

    def get_n_trials(self, study_id: int, state=None) -> int:
        return self._call("get_n_trials", study_id, state)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._call("get_best_trial", study_id)

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self._call("get_trial_params", trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._call("get_trial_user_attrs", trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._call("get_trial_system_attrs", trial_id)

    def remove_session(self) -> None:
        self.inner.remove_session()

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self._call("check_trial_is_updatable", trial_id, trial_state)

    def close(self) -> None:
        self.inner.remove_session()
        engine = getattr(self.inner, "engine", None)
        if engine is not None:
            engine.dispose()


# ---------------------------------------------------------------------------- opening


def _grpc_proxy(url: str) -> BaseStorage:
    """Optuna's client of the proxy at ``url``, once the proxy answered (else one line naming the fix)."""
    grpc_module()
    host, port = grpc_address(url)
    from optuna.storages import GrpcStorageProxy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=CONNECT_TIMEOUT)
    except ConnectionError:
        proxy.close()
        raise UserError(
            f"nothing answers at {url} within {CONNECT_TIMEOUT} s; start the proxy there (python -m vmpo_tune.proxy "
            f"--storage URL --host {host} --port {port}) or fix --storage"
        ) from None
    return proxy


FIRST_OPEN_PATIENCE = 10.0
"""Seconds a command's first opening of a database is retried on transient faults; past that, a server that does
not answer is a bad URL or a server that is down, said in one line. A worker opens what its command has already
opened, so its faults at opening are retried like any other storage call's (``patience``)."""


def open_storage(
    url: str, create_parent: bool = False, patience: float = PATIENCE, opened_before: bool = False
) -> ResilientStorage:
    """The storage behind ``url``; connection problems at opening become a one-line :class:`UserError`, or, when
    this command has ``opened_before`` (a worker), :class:`StorageUnavailable` after ``patience`` seconds."""
    url = normalize_url(url)
    prepare_sqlite(url, create_parent)
    journal = journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return ResilientStorage(JournalStorage(JournalFileBackend(str(journal))), patience)
    if is_redis(url):
        from optuna.storages.journal import JournalRedisBackend, JournalStorage

        redis_client(url).close()  # the client is installed and the server answers
        return ResilientStorage(JournalStorage(JournalRedisBackend(url)), patience)
    if is_grpc(url):
        return ResilientStorage(_grpc_proxy(url), patience)
    parsed = parse_url(url)
    try:
        window = patience if opened_before else min(patience, FIRST_OPEN_PATIENCE)
        inner = with_retries(lambda: _create_rdb_storage(url, engine_kwargs(parsed)), "connecting", window, quiet=True)
    except (UserError, StorageUnavailable) as exc:
        if isinstance(exc, StorageUnavailable) and exc.__cause__ is not None and not opened_before:
            raise connection_error(url, exc.__cause__) from None
        raise
    except ImportError as exc:  # Optuna re-raises a missing driver as a plain ImportError
        raise missing_driver(parsed) from exc
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise connection_error(url, exc) from None
    return ResilientStorage(optuna_private.CachedRDB(inner), patience)


def holds_optuna_schema(url: str) -> bool:
    """Whether the database behind an RDB ``url`` has Optuna's tables, found without changing anything.

    SQLite is opened read-only (no table created, the journal mode left as it is); a server
    is asked through SQLAlchemy's inspector. Read-only commands (export, confirm's opening,
    the report, play) call it before opening a storage, which would create the schema.
    """
    url = normalize_url(url)
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is None or not path.exists():
            return False
        import sqlite3

        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise UserError(
                f"{path}: cannot open it read-only ({first_line(exc)}); pass an SQLite study file"
            ) from None
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'").fetchone()
        except sqlite3.Error as exc:  # not an SQLite file at all
            raise UserError(f"{path} is not an SQLite database ({first_line(exc)}); pass a study's storage") from None
        finally:
            conn.close()
        return found is not None
    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs(parsed))
    except ImportError as exc:
        raise missing_driver(parsed) from exc
    try:
        return sqlalchemy.inspect(engine).has_table("studies")
    except ImportError as exc:
        raise missing_driver(parsed) from exc
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise connection_error(url, exc) from None
    finally:
        engine.dispose()


def missing_driver(parsed: sqlalchemy.engine.URL) -> UserError:
    """The one line for a storage URL whose database driver is not installed: which driver, which install."""
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    postgres = backend == "postgresql"
    extra, ours, scheme = ("postgres", "psycopg", "postgresql") if postgres else ("mysql", "pymysql", "mysql")
    hint = f"pip install 'vmpo-tune[{extra}]'"
    if driver not in (ours, ""):  # another driver named in the URL: its own package, or the one the extra installs
        hint = f"install it, or use {scheme}+{ours}://... with {hint}"
    return UserError(f"the database driver {driver or backend!r} for {backend} storage is not installed; {hint}")


def _create_rdb_storage(url: str, engine_kwargs: dict, attempts: int = 5) -> RDBStorage:
    """``RDBStorage(...)``, retried when another process is creating the same schema right now.

    Several workers or machines starting on a fresh database race to create Optuna's
    tables and its schema-version row; the loser sees "already exists" / "duplicate key" /
    a unique-constraint error and simply tries again.
    """
    for attempt in range(attempts):
        try:
            return optuna_private.SingleAttemptRDB(url, engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            text = str(exc).lower()
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or any(
                word in text for word in ("already exists", "duplicate", "unique constraint")
            )
            if attempt == attempts - 1 or not racing:
                raise
            log.debug("schema being created by another process (%s); retrying", text.splitlines()[0])
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def connection_error(url: str, exc: BaseException) -> UserError:
    """Turn a driver error into one line: what failed, where, and what to do."""
    orig = getattr(exc, "orig", None) or getattr(exc, "__cause__", None) or exc
    detail = " ".join(str(orig).split())[:300]
    lowered = detail.lower()
    if "password" in lowered or "access denied" in lowered:
        fix = "check the user name and password in the storage URL"
    elif "does not exist" in lowered or "unknown database" in lowered:
        fix = "create the database first (see README, 'Scaling out')"
    else:
        fix = "check that the database server is running and reachable, and the URL (--storage or $VMPO_TUNE_STORAGE)"
    return UserError(f"cannot use the storage {redact_url(url)}: {detail}; {fix}")
