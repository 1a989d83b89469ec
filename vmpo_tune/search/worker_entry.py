"""The first code a worker process runs.

A worker process ignores SIGINT and SIGTERM until the worker installs its own handler, so
a Ctrl-C or a forwarded signal that arrives while the process imports torch cannot kill it
half-way with a traceback; a signal that came meanwhile reaches the worker through the
shared value the pool passes along, so none is lost. The ignoring starts as early as our
code can run: when the ``vmpo_tune`` package is first imported in a process whose
multiprocessing name starts with :data:`PROCESS_PREFIX` (spawn sets the name before it
imports anything of ours), and again when this module is imported.
"""

import signal

from .. import PROCESS_PREFIX  # noqa: F401  (re-exported: the pool names its processes with it)

for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, signal.SIG_IGN)


def main(settings, array, log_queue, parent_signal) -> None:
    from .worker import worker_main

    worker_main(settings, array, log_queue, parent_signal)
