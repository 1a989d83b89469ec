"""Storage URLs: what ``--storage`` accepts and where a study's storage lives by default.

An SQLite file ``runs/<study>/study.db`` by default (WAL mode, a 60 s busy timeout); a journal file
(``journal:///path`` or a path ending in ``.log``); ``redis://``; ``grpc://HOST:PORT`` (the storage proxy);
any SQLAlchemy URL Optuna supports (``postgres://`` is read as ``postgresql://``). ``$VMPO_TUNE_STORAGE``
keeps a password off the command line.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from .errors import UserError, first_line
from .redaction import redact_url

log = logging.getLogger(__name__)

ENV_STORAGE = "VMPO_TUNE_STORAGE"
CONNECT_TIMEOUT = 5

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


def redis_client(url: str):
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


def sqlite_path(parsed: URL) -> Path | None:
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
    path = sqlite_path(parse_url(url))
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


def engine_kwargs(parsed: URL) -> dict:
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": 60}}
    if backend == "postgresql":
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    if backend in ("mysql", "mariadb"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True, "pool_recycle": 3600}
    raise UserError(f"unsupported storage backend {backend!r}; use sqlite, postgresql or mysql")
