"""The budget lock: serialises "count the trials, then create one" across processes and machines, which makes
``--trials N`` an exact global budget (an ``flock`` for SQLite and journal files, an advisory lock on
PostgreSQL / MySQL, a key with a time-to-live on Redis, the proxy's lock service over gRPC). Its release
survives a dead connection (the server released a session lock when the session died)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import random
import time
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy

from .errors import UserError
from .storage_faults import PATIENCE, StorageUnavailable, describe_fault, with_retries
from .storage_urls import (
    CONNECT_TIMEOUT,
    LOCK_SERVICE,
    engine_kwargs,
    grpc_address,
    grpc_module,
    is_grpc,
    is_redis,
    journal_path,
    normalize_url,
    parse_url,
    redis_client,
    sqlite_path,
)

log = logging.getLogger(__name__)

REDIS_LOCK_TTL = 120
"""Seconds (beyond ``--patience``) after which a Redis budget lock whose holder died frees itself."""
ASK_AGAIN_FIRST, ASK_AGAIN_MOST = 0.01, 0.5
"""Seconds a worker refused the Redis or proxy lock waits before it asks again: doubling from the first to the most
(each wait drawn from its upper half), so that many waiting workers do not keep the server busy with asks
(asking every 10-50 ms cost about 0.8 CPU-s per trial at 64 workers on 2 cores: BENCHMARKS.md, coordination)."""


def ask_again_waits() -> Iterator[float]:
    """The waits between a refused client's asks for a lock: jittered, doubling, capped."""
    wait = ASK_AGAIN_FIRST
    while True:
        yield random.uniform(wait / 2, wait)
        wait = min(ASK_AGAIN_MOST, 2 * wait)


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
        self._path = journal if parsed is None else sqlite_path(parsed)
        self._key = int.from_bytes(hashlib.sha256(f"vmpo-tune:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._engine = None
        self._held_conn: sqlalchemy.Connection | None = None
        self._redis = redis_client(self.url) if redis_store else None
        self._channel = grpc_module().insecure_channel("{}:{}".format(*grpc_address(self.url))) if proxy else None
        if self.backend not in ("sqlite", "journal", "redis", "grpc"):
            connect_args = engine_kwargs(parsed)["connect_args"]
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
        """Redis's own lock (a key with an expiry: a holder that died frees it after ``REDIS_LOCK_TTL`` s), asked
        for until granted, with the waits of :func:`ask_again_waits`."""
        ttl = REDIS_LOCK_TTL + self.patience  # longer than any hold, retries of an outage included
        lock = self._redis.lock(f"vmpo-tune:{self.study_name}:budget", timeout=ttl)
        deadline, waits = time.monotonic() + self.patience, ask_again_waits()
        while not with_retries(lambda: lock.acquire(blocking=False), "budget lock", self.patience):
            if time.monotonic() > deadline:
                raise StorageUnavailable(f"the budget lock in Redis stayed taken for {self.patience:.0f} s")
            time.sleep(next(waits))
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
        """The proxy's lock for this study: asked for until granted, with the waits of :func:`ask_again_waits` (a
        holder that died frees it after ``REDIS_LOCK_TTL`` + patience seconds, as in Redis)."""
        ttl = REDIS_LOCK_TTL + self.patience
        deadline, waits = time.monotonic() + self.patience, ask_again_waits()
        request = {"study": self.study_name, "ttl": ttl}
        while True:
            token = with_retries(lambda: self._lock_call("Acquire", request), "budget lock", self.patience)["token"]
            if token:
                break
            if time.monotonic() > deadline:
                raise StorageUnavailable(f"the budget lock at the proxy stayed taken for {self.patience:.0f} s")
            time.sleep(next(waits))
        try:
            yield
        finally:
            try:
                released = self._lock_call("Release", {"study": self.study_name, "token": token})["released"]
                if not released:  # the proxy restarted, or the lock expired: someone may hold it now
                    log.warning("storage: the proxy had dropped this budget lock before it was released")
            except Exception as exc:  # the lock expires at the proxy; nothing else to do here
                log.warning("storage: releasing the budget lock at the proxy failed (%s)", describe_fault(exc))

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
            raise LockLost(f"the budget lock's connection died ({describe_fault(exc)})") from exc

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
