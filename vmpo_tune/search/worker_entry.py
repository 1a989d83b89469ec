"""The first code a worker process runs.

Importing this module (the process target is unpickled before anything heavy is
imported) makes the process ignore SIGINT and SIGTERM until the worker installs its own
handler: a Ctrl-C or a forwarded signal that arrives while the process imports torch
cannot kill it half-way with a traceback. A signal that came meanwhile reaches the worker
through the shared value the pool passes along, so none is lost.
"""

import signal

for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, signal.SIG_IGN)


def main(settings, array, log_queue, parent_signal) -> None:
    from .worker import worker_main

    worker_main(settings, array, log_queue, parent_signal)
