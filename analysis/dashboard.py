"""The live view: the ``optuna-dashboard`` command for a study's storage.

For the default storage of a search run with ``--out runs/hopper``::

    optuna-dashboard sqlite:///runs/hopper/study.db --artifact-dir runs/hopper/artifacts \\
        --host 127.0.0.1 --port 8080

then open http://127.0.0.1:8080/dashboard. ``--artifact-dir`` lets the dashboard list and
serve each complete trial's best checkpoint and learning-curve CSV. The study's note
(what it tunes, its budget, the confirmed winner) is written by :mod:`vmpo_tune.notes`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from vmpo_tune.redaction import redact_url
from vmpo_tune.storage_urls import journal_path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def dashboard_argv(
    storage_url: str, artifact_dir: Path | str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> list[str]:
    """The ``optuna-dashboard`` command line (as a list) for a storage and its artifact folder.

    A journal storage (``journal:///path/study.log``) is given to the dashboard as its file path."""
    journal = journal_path(storage_url)
    argv = ["optuna-dashboard", str(journal) if journal is not None else storage_url]
    if artifact_dir is not None:
        argv += ["--artifact-dir", str(artifact_dir)]
    return argv + ["--host", host, "--port", str(port)]


def dashboard_command(
    storage_url: str, artifact_dir: Path | str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> str:
    """The same command as one line to show people; any password in the URL is replaced by ``***``."""
    return shlex.join(dashboard_argv(redact_url(storage_url), artifact_dir, host, port))
