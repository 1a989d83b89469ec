"""Where a result came from: package versions, git commit, host, CPU, command line."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .redaction import redact_command

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
        status = ["git", "status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run(status, cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's name (Linux's /proc/cpuinfo; elsewhere what ``platform`` knows). Runs are bit for bit
    reproducible only on the same kind of CPU (the libraries pick their kernels by it), and speed ratios depend on
    it, the simulator and the matrix products running at different relative speeds on different CPUs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "an unnamed CPU"


def record() -> dict:
    """Everything above in one JSON-friendly dict (passwords in the command line redacted)."""
    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "pid": os.getpid(),
        "command": redact_command(sys.argv),
    }
