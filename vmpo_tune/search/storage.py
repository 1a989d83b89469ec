"""Study storage: URL resolution, RDB storages with heartbeats, clear errors, a budget lock.

* Default: an SQLite file ``runs/<study>/study.db`` (under ``--out``), in WAL mode with a
  60 s busy timeout, so several local worker processes never see ``database is locked``.
* ``--storage URL`` or ``$VMPO_TUNE_STORAGE``: any SQLAlchemy URL Optuna supports
  (``postgresql://``, ``mysql+pymysql://``, ``sqlite:///``); the environment variable
  keeps a password off the command line.
* Workers' storages send heartbeats; a trial whose worker died is failed after the grace
  period and retried (with its intermediate values) by the next worker that looks.
* :class:`BudgetLock` serialises "count the trials, then create one" across processes
  and machines (an ``flock`` for SQLite, an advisory lock on PostgreSQL / MySQL), which
  makes ``--trials N`` an exact global budget.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import URL, make_url

from ..errors import UserError

log = logging.getLogger(__name__)

ENV_STORAGE = "VMPO_TUNE_STORAGE"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
MAX_RETRY = 3
CONNECT_TIMEOUT = 5


def default_storage_url(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'study.db').resolve()}"


def resolve_url(cli_url: str | None, out_dir: Path) -> str:
    """``--storage`` wins, then ``$VMPO_TUNE_STORAGE``, then the default SQLite file."""
    return cli_url or os.environ.get(ENV_STORAGE) or default_storage_url(out_dir)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs, attributes and exports)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL we can parse: show nothing that could be secret
        return "<storage URL>"


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
    """Check (or create) the folder of an SQLite file and switch the database to WAL mode."""
    path = _sqlite_path(parse_url(url))
    if path is None:
        return
    folder = path.parent
    if not folder.exists():
        if not create_parent:
            raise UserError(f"the folder {folder} of the SQLite storage does not exist; create it or pick another "
                            "--storage")  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
    if not _writable(folder) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"the SQLite storage {path} is not writable (read-only folder or file); pick a writable "
                        "--storage or --out")  # fmt: skip
    _enable_wal(path)


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


def _writable(folder: Path) -> bool:
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


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Retries a failed (stale or interrupted) trial up to MAX_RETRY times, keeping its curve."""
    return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY, inherit_intermediate_values=True)


def open_storage(
    url: str,
    heartbeat: bool = True,
    create_parent: bool = False,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
) -> RDBStorage:
    """An RDB storage; connection problems become a one-line :class:`UserError`.

    With ``heartbeat`` the storage records trial heartbeats every ``heartbeat_interval``
    seconds and fails (then retries) trials silent for more than ``grace_period`` seconds.
    """
    parsed = parse_url(url)
    prepare_sqlite(url, create_parent)
    kwargs = {}
    if heartbeat:
        if heartbeat_interval < 1 or grace_period <= heartbeat_interval:
            raise UserError(f"the grace period ({grace_period} s) must be longer than the heartbeat interval "
                            f"({heartbeat_interval} s); fix --grace-period / --heartbeat-interval")  # fmt: skip
        kwargs = dict(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                      heartbeat_stale_trial_callback=retry_callback())  # fmt: skip
    try:
        return _create_rdb_storage(url, _engine_kwargs(parsed), kwargs)
    except UserError:
        raise
    except ModuleNotFoundError as exc:
        extra = "postgres" if parsed.get_backend_name() == "postgresql" else "mysql"
        raise UserError(f"the driver for {parsed.drivername} is not installed ({exc.name}); "
                        f"pip install 'vmpo-tune[{extra}]'") from None  # fmt: skip
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise connection_error(url, exc) from None


def _create_rdb_storage(url: str, engine_kwargs: dict, kwargs: dict, attempts: int = 5) -> RDBStorage:
    """``RDBStorage(...)``, retried when another process is creating the same schema right now.

    Several workers or machines starting on a fresh database race to create Optuna's
    tables and its schema-version row; the loser sees "already exists" / "duplicate key" /
    a unique-constraint error and simply tries again.
    """
    for attempt in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
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


class BudgetLock:
    """A cross-process (and cross-machine, on a server) mutex for one study's trial budget."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url, self.study_name = url, study_name
        parsed = parse_url(url)
        self.backend = parsed.get_backend_name()
        self._path = _sqlite_path(parsed)
        self._key = int.from_bytes(hashlib.sha256(f"vmpo-tune:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._engine = None
        if self.backend != "sqlite":
            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                                    **{k: v for k, v in _engine_kwargs(parsed).items()
                                                       if k == "connect_args"})  # fmt: skip

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self.backend == "sqlite":
            with self._flock():
                yield
        else:
            with self._advisory():
                yield

    @contextmanager
    def _flock(self) -> Iterator[None]:
        if self._path is None:  # in-memory database: one process only
            yield
            return
        with open(f"{self._path}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _advisory(self) -> Iterator[None]:
        assert self._engine is not None
        with self._engine.connect() as conn:
            if self.backend == "postgresql":
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                release = sqlalchemy.text("SELECT pg_advisory_unlock(:k)")
                params = {"k": self._key}
            else:
                name = f"vmpo-tune:{self.study_name}"[:64]
                got = conn.execute(sqlalchemy.text("SELECT GET_LOCK(:n, 120)"), {"n": name}).scalar()
                if got != 1:
                    raise UserError(f"timed out waiting 120 s for the budget lock of study {self.study_name!r}")
                release = sqlalchemy.text("SELECT RELEASE_LOCK(:n)")
                params = {"n": name}
            try:
                yield
            finally:
                conn.execute(release, params)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
