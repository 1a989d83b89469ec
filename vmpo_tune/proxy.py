"""python -m vmpo_tune.proxy: serve a study database through Optuna's gRPC storage proxy.

    python -m vmpo_tune.proxy --storage postgresql://tuner@db/vmpo --port 13000
    python -m vmpo_tune.search --study hopper --workers 8 --storage grpc://proxy-host:13000   # on each machine

Optuna advises the proxy once many workers would each hold database connections and poll
the study: workers talk to the proxy, and only the proxy talks to the database. Beside
Optuna's storage service it serves the studies' budget locks (``--trials N`` stays exact), so
every worker of a study must use the same proxy. The proxy retries a failing database for
``--patience`` seconds, like every vmpo-tune process; a worker retries a proxy that went away
for its own ``--patience``, so a proxy restarted within that time loses nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid

from . import optuna_private
from .cli_common import ExitCode, Parser, add_common_flags, configure_logging, run_cli
from .errors import UserError
from .redaction import redact_url
from .storage import open_storage
from .storage_faults import PATIENCE
from .storage_urls import ENV_STORAGE, LOCK_SERVICE, grpc_module, is_grpc, is_redis, journal_path, normalize_url

log = logging.getLogger("vmpo_tune.proxy")

DEFAULT_PORT = 13000
THREADS = 32
"""Server threads: calls are short (the budget lock is asked for, never waited for, on the server)."""


class LockService:
    """Per-study budget locks held in this process: granted at once or refused (the client asks again);
    each grant expires after its ``ttl`` seconds, so a worker that died holding one frees it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[str, tuple[str, float]] = {}

    def acquire(self, request: dict, _context) -> dict:
        now = time.monotonic()
        with self._mutex:
            holder = self._held.get(request["study"])
            if holder is not None and holder[1] > now:
                return {"token": None}
            token = uuid.uuid4().hex
            self._held[request["study"]] = (token, now + float(request["ttl"]))
            return {"token": token}

    def release(self, request: dict, _context) -> dict:
        with self._mutex:
            holder = self._held.get(request["study"])
            if holder is None or holder[0] != request["token"]:
                return {"released": False}
            del self._held[request["study"]]
            return {"released": True}

    def handler(self):
        import grpc

        def method(fn):
            return grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=lambda b: json.loads(b.decode()),
                response_serializer=lambda d: json.dumps(d).encode(),
            )

        return grpc.method_handlers_generic_handler(
            LOCK_SERVICE, {"Acquire": method(self.acquire), "Release": method(self.release)}
        )


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m vmpo_tune.proxy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--storage", help=f"the database's URL (PostgreSQL, MySQL or SQLite; default ${ENV_STORAGE})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--patience", type=float, default=PATIENCE, help="seconds a failing database is retried")
    add_common_flags(p)
    return p


def serve(args: argparse.Namespace) -> int:
    url = args.storage or os.environ.get(ENV_STORAGE)
    if not url:
        raise UserError(f"pass --storage URL (or set ${ENV_STORAGE}): the database the proxy serves")
    url = normalize_url(url)
    if journal_path(url) is not None or is_redis(url) or is_grpc(url):
        raise UserError(
            f"the proxy serves a database (PostgreSQL, MySQL or SQLite), not {redact_url(url)}; Optuna's gRPC proxy "
            "does not support journal storages"
        )
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    grpc_module()  # gRPC is installed (and its C core quiet)
    storage = open_storage(url, patience=args.patience)
    server = optuna_private.grpc_proxy_server(storage, THREADS)
    server.add_generic_rpc_handlers((LockService().handler(),))
    try:
        bound = server.add_insecure_port(f"{args.host}:{args.port}")
    except RuntimeError:
        bound = 0
    if not bound:
        where = f"{args.host}:{args.port}"
        raise UserError(f"cannot listen on {where} (in use, or not this machine's); pick another --port")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop.set())
    server.start()
    log.info("serving %s at grpc://%s:%d (Ctrl-C stops)", redact_url(url), args.host, args.port)
    stop.wait()
    server.stop(grace=2).wait()
    log.info("stopped")
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: serve(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
