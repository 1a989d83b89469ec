"""vmpo-tune: V-MPO for Gymnasium MuJoCo tasks, tuned with Optuna."""

import multiprocessing as _mp
import signal as _signal

__version__ = "0.1.0"

PROCESS_PREFIX = "vmpo-tune-worker-"
"""The multiprocessing name of a worker process (see :mod:`vmpo_tune.search.worker_entry`)."""

if _mp.current_process().name.startswith(PROCESS_PREFIX):  # a worker: signals wait for the worker's handler
    for _sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_sig, _signal.SIG_IGN)
