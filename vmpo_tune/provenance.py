"""Where a result came from: package versions, git commit, host, command line."""

from __future__ import annotations

import functools
import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("vmpo-tune", "torch", "gymnasium", "mujoco", "optuna", "numpy")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout this package runs from (with ``-dirty`` if modified), if any."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^\s]*@")


def redact(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` URL in ``text`` with ``***``."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def record() -> dict:
    """Everything above in one JSON-friendly dict (passwords in the command line redacted)."""
    return {"versions": versions(), "git_commit": git_commit(), "host": socket.gethostname(),
            "command": redact(" ".join(sys.argv))}  # fmt: skip
