"""Study storage: URL resolution, storages that survive dropped connections, clear errors, a budget lock.

* Default: an SQLite file ``runs/<study>/study.db`` (under ``--out``), in WAL mode with a
  60 s busy timeout, so several local worker processes never see ``database is locked``.
* A journal file (``journal:///path/study.log``, or any path ending in ``.log``): Optuna's
  ``JournalStorage`` on a plain file, for a shared filesystem and no database server. The
  budget lock is an ``flock`` beside it (the filesystem must support ``flock``, as local
  disks and NFSv4 do); heartbeats and retries work as on the RDBs.
* ``--storage URL`` or ``$VMPO_TUNE_STORAGE``: any SQLAlchemy URL Optuna supports
  (``postgresql://`` (``postgres://`` is read as the same), ``mysql+pymysql://``,
  ``sqlite:///``); the environment variable keeps a password off the command line.
* ``grpc://HOST:PORT``: Optuna's gRPC storage proxy, served by ``python -m vmpo_tune.proxy`` in front
  of one RDB (Optuna's advice once hundreds of workers would each hold database connections).
  The proxy also holds the studies' budget locks (:class:`BudgetLock` asks it over the same
  channel), so every worker of a study must use the same proxy.
* :class:`ResilientStorage` wraps Optuna's storage and retries every call that fails
  transiently (dropped connection, server restart, deadlock, lock timeout) with
  exponential backoff, for up to ``patience`` seconds; then it raises
  :class:`StorageUnavailable`. A result that took an hour to train is not lost to a
  connection that dropped for a second.
* :class:`BudgetLock` serialises "count the trials, then create one" across processes
  and machines (an ``flock`` for SQLite, an advisory lock on PostgreSQL / MySQL), which
  makes ``--trials N`` an exact global budget. Its release survives a dead connection
  (the server has released a session lock already when the session died).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import sqlite3
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url

from .errors import UserError, first_line
from .optuna_private import DEFAULT_STUDY_NAME_PREFIX
from .redaction import redact_url

log = logging.getLogger(__name__)

ENV_STORAGE = "VMPO_TUNE_STORAGE"
CONNECT_TIMEOUT = 5
PATIENCE = 300.0
"""Seconds a storage call keeps retrying a transient failure before the storage counts as gone."""

_T = TypeVar("_T")
_ALIASES = {"postgres": "postgresql"}


def default_storage_url(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'study.db').resolve()}"


def resolve_url(cli_url: str | None, out_dir: Path) -> str:
    """``--storage`` wins, then ``$VMPO_TUNE_STORAGE``, then the default SQLite file."""
    return normalize_url(cli_url or os.environ.get(ENV_STORAGE) or default_storage_url(out_dir))


JOURNAL = "journal://"


REDIS_SCHEMES = ("redis://", "rediss://")
REDIS_INSTALL = "pip install 'vmpo-tune[redis]'"


def is_redis(url: str) -> bool:
    """A Redis URL: a journal storage kept in Redis (Optuna's ``JournalRedisBackend``)."""
    return url.startswith(REDIS_SCHEMES)


def _redis_client(url: str):
    """A Redis client for ``url``, checked with a ping; a missing client or an unreachable server is one line."""
    try:
        import redis
    except ImportError:
        raise UserError(f"a redis:// storage needs the Redis client: {REDIS_INSTALL}") from None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
    except ValueError as exc:
        raise UserError(f"cannot parse the Redis URL {redact_url(url)!r} ({exc}); use redis://HOST:PORT/DB") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise UserError(
            f"cannot reach Redis at {redact_url(url)} ({first_line(exc)}); start it or fix --storage"
        ) from None
    return client


GRPC = "grpc://"
GRPC_INSTALL = "pip install -e '.[grpc]'"
LOCK_SERVICE = "vmpo_tune.BudgetLock"
"""The proxy's own gRPC service (beside Optuna's): per-study budget locks, methods ``Acquire`` and ``Release``."""


def is_grpc(url: str) -> bool:
    """A gRPC URL: the storage proxy of ``python -m vmpo_tune.proxy``."""
    return url.startswith(GRPC)


def grpc_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``grpc://HOST:PORT``; anything else is one line naming the form."""
    host, _, port = url[len(GRPC) :].rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"cannot parse the proxy URL {redact_url(url)!r}; use grpc://HOST:PORT")
    return host, int(port)


def grpc_module():
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core logs to stderr; our one-line errors say it all
    try:
        import grpc
    except ImportError:
        raise UserError(f"a grpc:// storage needs gRPC: {GRPC_INSTALL}") from None
    return grpc


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


def journal_path(url: str) -> Path | None:
    """The file of a journal storage URL (``journal:///path/study.log``), or None for an RDB URL."""
    return Path(url[len(JOURNAL) :]) if url.startswith(JOURNAL) else None


def normalize_url(url: str) -> str:
    """``postgres://...`` (what many tools write) becomes ``postgresql://...``, which SQLAlchemy reads; a bare
    path ending in ``.log`` becomes ``journal:///<absolute path>``."""
    if "://" not in url and url.endswith(".log"):
        return f"{JOURNAL}{Path(url).resolve()}"
    scheme, sep, rest = url.partition("://")
    base, plus, driver = scheme.partition("+")
    return f"{_ALIASES.get(base, base)}{plus}{driver}{sep}{rest}" if sep else url


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except Exception:
        raise UserError(
            f"cannot parse the storage URL {redact_url(url)!r}; use e.g. sqlite:///path/study.db or "
            "postgresql://user@host/db"
        ) from None


def _sqlite_path(parsed: URL) -> Path | None:
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def prepare_sqlite(url: str, create_parent: bool) -> None:
    """Check (or create) the folder of an SQLite file (or journal file) and switch SQLite to WAL mode."""
    path = journal_path(url)
    if path is not None:
        _check_folder(path, create_parent)
        return
    if is_redis(url) or is_grpc(url):
        return
    path = _sqlite_path(parse_url(url))
    if path is None:
        return
    _check_folder(path, create_parent)
    _enable_wal(path)


def _check_folder(path: Path, create_parent: bool) -> None:
    folder = path.parent
    if not folder.exists():
        if not create_parent:
            raise UserError(
                f"the folder {folder} of the storage file does not exist; create it or pick another --storage"
            )
        folder.mkdir(parents=True, exist_ok=True)
    if not writable(folder) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(
            f"the storage file {path} is not writable (read-only folder or file); pick a writable --storage or --out"
        )


def _enable_wal(path: Path, attempts: int = 50) -> None:
    """Write-ahead logging: readers never block the writer. Switching needs a moment alone with the
    file (SQLite answers "locked" at once, without waiting), so retry while other processes use it."""
    for attempt in range(attempts):
        try:
            with sqlite3.connect(path, timeout=60) as conn:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise UserError(f"cannot open the SQLite storage {path}: {exc}; pick another --storage") from None
            time.sleep(0.05 * (attempt + 1))
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the SQLite storage {path}: {exc}; pick another --storage") from None


def writable(folder: Path) -> bool:
    """Try it: ``os.access`` says yes to root even for an immutable or read-only-mounted folder."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vmpo-tune-write-test-"):
            return True
    except OSError:
        return False


def _engine_kwargs(parsed: URL) -> dict:
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": 60}}
    if backend == "postgresql":
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    if backend in ("mysql", "mariadb"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True, "pool_recycle": 3600}
    raise UserError(f"unsupported storage backend {backend!r}; use sqlite, postgresql or mysql")


# ---------------------------------------------------------------------------- transient faults


class StorageUnavailable(UserError):
    """The storage kept failing for longer than the patience allowed."""

    exit_code = 3  # ExitCode.STORAGE_LOST


_TRANSIENT_WORDS = (
    "server closed the connection",
    "connection already closed",
    "terminating connection",
    "connection reset",
    "connection refused",
    "lost connection",
    "gone away",
    "broken pipe",
    "database is locked",
    "deadlock",
    "lock wait timeout",
    "could not connect",
    "can't connect",
    "connection timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "admin shutdown",
    "connection was killed",
    "query execution was interrupted",
)


_PERMANENT_WORDS = (
    "access denied",
    "password authentication failed",
    "authentication failed",
    "permission denied",
    "does not exist",
    "unknown database",
    "no such table",
    "could not translate host name",
    "name or service not known",
    "readonly database",
    "read-only",
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
    "no such column",
)


def is_transient(exc: BaseException) -> bool:
    """True for failures that a retry on a fresh connection can cure (never for a bad query, bad data,
    a wrong password or a missing database)."""
    if any(word in " ".join(str(e) for e in _chain(exc)).lower() for word in _PERMANENT_WORDS):
        return False
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, (sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.TimeoutError)):
            return True
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlite3.OperationalError)):
            return True
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        if _grpc_unavailable(exc):
            return True
        if type(exc).__module__.startswith("redis") and type(exc).__name__ in (
            "ConnectionError",
            "TimeoutError",
            "BusyLoadingError",
        ):
            return True
        text = str(exc).lower()
        if isinstance(exc, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)) and any(
            word in text for word in _TRANSIENT_WORDS
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _grpc_unavailable(exc: BaseException) -> bool:
    """A gRPC call that failed because the proxy could not be reached (or answered too late)."""
    code = getattr(exc, "code", None)
    if not type(exc).__module__.startswith("grpc") or not callable(code):
        return False
    return getattr(code(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


def _describe(exc: BaseException) -> str:
    """The most telling line of an error chain: the driver's message rather than Optuna's generic wrapper."""
    chain = _chain(exc)
    root = next((e for e in chain if isinstance(e, sqlalchemy.exc.DBAPIError)), chain[-1])
    text = str(getattr(root, "orig", None) or root)
    return " ".join(text.split())[:200]


def _chain(exc: BaseException | None) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


_TROUBLE = [0.0]
_WRITES = ("set_", "create_", "delete_")
OUTAGE = 2.0
"""Seconds of failing calls that make an outage (a lone 'database is locked' or a deadlock retry does not)."""


def last_trouble() -> float:
    """Wall-clock time at which the last storage outage (failing calls) or stall (a write that took ``OUTAGE``
    seconds or more: a blocked database; reads of a large study may be slow for good reason) this process saw
    ended (0 if none).

    The liveness rules read it: during an outage no worker can write a heartbeat, so once the
    storage is back, silence that the outage explains is not a dead worker (``liveness.stale_trials``).
    """
    return _TROUBLE[0]


def with_retries(
    call: Callable[[], _T],
    what: str,
    patience: float = PATIENCE,
    on_retry=None,
    quiet: bool = False,
    delay: float = 0.2,
) -> _T:
    """``call()``, retried with exponential backoff (``delay``, 0.2 s, doubling to 10 s, jittered) on transient
    failures.

    After ``patience`` seconds of failures, :class:`StorageUnavailable` names ``what`` and the last error.
    ``on_retry()`` runs before each retry (for example, to drop a dead connection).
    """
    deadline = time.monotonic() + patience
    attempt, first_failure = 0, None
    while True:
        try:
            started = time.monotonic()
            result = call()
            if first_failure is not None and time.time() - first_failure >= OUTAGE:
                _TROUBLE[0] = time.time()  # an outage just ended (see last_trouble)
            elif what.startswith(_WRITES) and time.monotonic() - started >= OUTAGE:
                _TROUBLE[0] = time.time()  # a stall: the database blocked this write (and every heartbeat) that long
            return result
        except Exception as exc:
            if not is_transient(exc):
                raise
            first_failure = first_failure or time.time()
            attempt += 1
            detail = _describe(exc)
            if time.monotonic() + delay > deadline:
                raise StorageUnavailable(
                    f"the storage failed for {patience:.0f} s ({what}: {detail}); check the database server, "
                    "then rerun the same command: finished results are stored and running trials resume"
                ) from exc
            loud = not quiet and (attempt == 1 or attempt % 5 == 0)  # the first failure, then every fifth
            (log.warning if loud else log.debug)(
                "storage: %s failed (%s); retry %d in %.1f s", what, detail, attempt, delay
            )
            if on_retry is not None:
                on_retry()
            time.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 10.0)


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
      if so, returns the trial that was created;
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
            log.warning("storage: %s failed (%s); checking whether it was stored", what, _describe(exc))
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


def open_storage(url: str, create_parent: bool = False, patience: float = PATIENCE) -> ResilientStorage:
    """The storage behind ``url``; connection problems at opening become a one-line :class:`UserError`."""
    url = normalize_url(url)
    prepare_sqlite(url, create_parent)
    journal = journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return ResilientStorage(JournalStorage(JournalFileBackend(str(journal))), patience)
    if is_redis(url):
        from optuna.storages.journal import JournalRedisBackend, JournalStorage

        _redis_client(url).close()  # the client is installed and the server answers
        return ResilientStorage(JournalStorage(JournalRedisBackend(url)), patience)
    if is_grpc(url):
        return ResilientStorage(_grpc_proxy(url), patience)
    parsed = parse_url(url)
    try:
        inner = with_retries(
            lambda: _create_rdb_storage(url, _engine_kwargs(parsed)), "connecting", min(patience, 10), quiet=True
        )
    except (UserError, StorageUnavailable) as exc:
        if isinstance(exc, StorageUnavailable) and exc.__cause__ is not None:
            raise connection_error(url, exc.__cause__) from None
        raise
    except ImportError as exc:  # Optuna re-raises a missing driver as a plain ImportError
        raise missing_driver(parsed) from exc
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise connection_error(url, exc) from None
    return ResilientStorage(inner, patience)


def holds_optuna_schema(url: str) -> bool:
    """Whether the database behind an RDB ``url`` has Optuna's tables, found without changing anything.

    SQLite is opened read-only (no table created, the journal mode left as it is); a server
    is asked through SQLAlchemy's inspector. Read-only commands (export, confirm's opening,
    the report, play) call it before opening a storage, which would create the schema.
    """
    url = normalize_url(url)
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
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
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **_engine_kwargs(parsed))
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
            return RDBStorage(url, engine_kwargs=engine_kwargs)
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


# ---------------------------------------------------------------------------- budget lock


REDIS_LOCK_TTL = 120
"""Seconds (beyond ``--patience``) after which a Redis budget lock whose holder died frees itself."""


class LockLost(Exception):
    """The budget lock's session died while it was held: the server has released the lock, and another
    process may hold it now. A holder checks (:meth:`BudgetLock.check_held`) before each write it makes
    under the lock, and starts over when this is raised."""


class BudgetLock:
    """A cross-process (and cross-machine, on a server) mutex for one study's trial budget."""

    def __init__(self, url: str, study_name: str, patience: float = PATIENCE) -> None:
        self.url, self.study_name, self.patience = normalize_url(url), study_name, patience
        journal = journal_path(self.url)
        redis_store, proxy = is_redis(self.url), is_grpc(self.url)
        parsed = None if journal is not None or redis_store or proxy else parse_url(self.url)
        if parsed is not None:
            self.backend = parsed.get_backend_name()
        else:
            self.backend = "journal" if journal is not None else "redis" if redis_store else "grpc"
        self._path = journal if parsed is None else _sqlite_path(parsed)
        self._key = int.from_bytes(hashlib.sha256(f"vmpo-tune:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._engine = None
        self._held_conn: sqlalchemy.Connection | None = None
        self._redis = _redis_client(self.url) if redis_store else None
        self._channel = grpc_module().insecure_channel("{}:{}".format(*grpc_address(self.url))) if proxy else None
        if self.backend not in ("sqlite", "journal", "redis", "grpc"):
            connect_args = _engine_kwargs(parsed)["connect_args"]
            self._engine = sqlalchemy.create_engine(
                self.url, poolclass=sqlalchemy.pool.NullPool, connect_args=connect_args
            )

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self.backend in ("sqlite", "journal"):
            with self._flock():
                yield
        elif self.backend == "redis":
            with self._redis_lock():
                yield
        elif self.backend == "grpc":
            with self._proxy_lock():
                yield
        else:
            with self._advisory():
                yield

    @contextmanager
    def _redis_lock(self) -> Iterator[None]:
        """Redis's own lock (a key with an expiry: a holder that died frees it after ``REDIS_LOCK_TTL`` s)."""
        ttl = REDIS_LOCK_TTL + self.patience  # longer than any hold, retries of an outage included
        lock = self._redis.lock(f"vmpo-tune:{self.study_name}:budget", timeout=ttl, sleep=0.05)
        got = with_retries(
            lambda: lock.acquire(blocking=True, blocking_timeout=self.patience), "budget lock", self.patience
        )
        if not got:
            raise StorageUnavailable(f"the budget lock in Redis stayed taken for {self.patience:.0f} s")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # expired meanwhile: another holder may have it now
                lock.release()

    def _lock_call(self, method: str, request: dict) -> dict:
        call = self._channel.unary_unary(
            f"/{LOCK_SERVICE}/{method}",
            request_serializer=lambda d: json.dumps(d).encode(),
            response_deserializer=lambda b: json.loads(b.decode()),
        )
        return call(request, timeout=CONNECT_TIMEOUT)

    @contextmanager
    def _proxy_lock(self) -> Iterator[None]:
        """The proxy's lock for this study: asked for until granted (a holder that died frees it after
        ``REDIS_LOCK_TTL`` + patience seconds, as in Redis)."""
        ttl = REDIS_LOCK_TTL + self.patience
        deadline = time.monotonic() + self.patience
        request = {"study": self.study_name, "ttl": ttl}
        while True:
            token = with_retries(lambda: self._lock_call("Acquire", request), "budget lock", self.patience)["token"]
            if token:
                break
            if time.monotonic() > deadline:
                raise StorageUnavailable(f"the budget lock at the proxy stayed taken for {self.patience:.0f} s")
            time.sleep(random.uniform(0.01, 0.05))
        try:
            yield
        finally:
            try:
                released = self._lock_call("Release", {"study": self.study_name, "token": token})["released"]
                if not released:  # the proxy restarted, or the lock expired: someone may hold it now
                    log.warning("storage: the proxy had dropped this budget lock before it was released")
            except Exception as exc:  # the lock expires at the proxy; nothing else to do here
                log.warning("storage: releasing the budget lock at the proxy failed (%s)", _describe(exc))

    @contextmanager
    def _flock(self) -> Iterator[None]:
        if self._path is None:  # in-memory database: one process only
            yield
            return
        # (not "<journal>.lock": Optuna's journal backend keeps its own lock there)
        suffix = ".budget.lock" if self.backend == "journal" else ".lock"
        with open(f"{self._path}{suffix}", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _statements(self) -> tuple[sqlalchemy.TextClause, sqlalchemy.TextClause, dict]:
        if self.backend == "postgresql":
            return (
                sqlalchemy.text("SELECT pg_advisory_lock(:k)"),
                sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                {"k": self._key},
            )
        name = f"vmpo-tune:{self.study_name}"[:64]
        return sqlalchemy.text("SELECT GET_LOCK(:n, 120)"), sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name}

    def _acquire(self) -> sqlalchemy.Connection:
        assert self._engine is not None
        acquire, _, params = self._statements()
        conn = self._engine.connect()
        try:
            got = conn.execute(acquire, params).scalar()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if self.backend != "postgresql" and got != 1:
            conn.close()
            raise UserError(f"timed out waiting 120 s for the budget lock of study {self.study_name!r}")
        return conn

    def check_held(self) -> None:
        """Raise :class:`LockLost` if the session holding a server's advisory lock has died (the server freed
        the lock with it). Files and Redis keys cannot be lost this way (a Redis key outlives any hold)."""
        if self._held_conn is None:
            return
        try:
            self._held_conn.execute(sqlalchemy.text("SELECT 1")).scalar()
        except Exception as exc:
            raise LockLost(f"the budget lock's connection died ({_describe(exc)})") from exc

    @contextmanager
    def _advisory(self) -> Iterator[None]:
        conn = with_retries(self._acquire, "taking the budget lock", self.patience)
        _, release, params = self._statements()
        self._held_conn = conn
        try:
            yield
        finally:
            self._held_conn = None
            try:
                conn.execute(release, params)
                conn.close()
            except Exception as exc:  # a dead session holds no lock: the server released it with the session
                log.warning(
                    "storage: releasing the budget lock failed (%s); the server dropped it with the connection",
                    " ".join(str(exc).split())[:200],
                )
                try:
                    conn.invalidate()
                    conn.close()
                except Exception:
                    log.debug("closing the dead lock connection failed", exc_info=True)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._redis is not None:
            self._redis.close()
        if self._channel is not None:
            self._channel.close()
