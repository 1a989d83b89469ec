"""Storage faults: which errors are transient (a dropped connection, a restart, a deadlock, a lock timeout) and
retrying them with backoff for up to ``--patience`` seconds, after which the storage counts as gone
(:class:`StorageUnavailable`, exit code 3)."""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from typing import Callable, TypeVar

import optuna
import sqlalchemy

from .errors import UserError

log = logging.getLogger(__name__)

PATIENCE = 300.0
"""Seconds a storage call keeps retrying a transient failure before the storage counts as gone."""
_T = TypeVar("_T")

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


def describe_fault(exc: BaseException) -> str:
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
            detail = describe_fault(exc)
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
