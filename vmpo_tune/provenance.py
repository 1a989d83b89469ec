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


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of Linux's /proc/cpuinfo; None elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's name (Linux's /proc/cpuinfo; elsewhere what ``platform`` knows). Speed ratios depend on it,
    the simulator and the matrix products running at different relative speeds on different CPUs."""
    return _cpuinfo("model name") or platform.processor() or "an unnamed CPU"


MATRIX_FLAGS = ("avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16")
"""The CPU flags (Linux's names) by which PyTorch picks other matrix-product kernels than its vector instruction
set alone says: with ``matmul_precision: medium`` a CPU with one of them runs its float32 products through oneDNN
rather than MKL, in bfloat16 where it has AMX, in float32 with oneDNN's own bits on an AMD EPYC with AVX-512 BF16
(``ONEDNN_VERBOSE=1`` names the kernels, 2026-12-07)."""

REPRODUCTION_HELP = "Exact reproduction on another CPU"
"""The README section on CPU kinds and how a newer CPU computes an older one's bits (messages point to it)."""

ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OPENBLAS_CORETYPE")
"""Environment variables that hold oneDNN, MKL and OpenBLAS (NumPy's, ``acting: numpy``) to a smaller instruction set
(or one code path) than the CPU has (README, "Exact reproduction on another CPU"); PyTorch's own
``ATEN_CPU_CAPABILITY`` shows in its capability."""


@functools.lru_cache(maxsize=1)
def cpu_kind() -> str:
    """What decides which kernels the libraries run, so which bits a run computes: the processor's name, PyTorch's
    vector instruction set on it (ATen's CPU capability: ``AVX2``, ``AVX512``, ...), the :data:`MATRIX_FLAGS` it
    has and the :data:`ISA_LIMITS` set, as ``"AMD EPYC; AVX512 avx512_bf16"`` or ``"AMD EPYC; AVX2 avx512_bf16;
    ONEDNN_MAX_CPU_ISA=AVX2"``. Runs reproduce bit for bit on one kind (and one library build). The name alone does
    not tell the kind: an AMD EPYC with AVX2 only and one with AVX-512 both call themselves ``AMD EPYC`` and train
    one configuration to different returns (README, "Exact reproduction on another CPU")."""
    import torch  # here, not at the top: reading a study's provenance needs no PyTorch

    flags = set((_cpuinfo("flags") or "").split())
    isa = " ".join([torch.backends.cpu.get_cpu_capability(), *(f for f in MATRIX_FLAGS if f in flags)])
    limits = " ".join(f"{name}={os.environ[name]}" for name in ISA_LIMITS if os.environ.get(name))
    return "; ".join(part for part in (cpu_model(), isa, limits) if part)


def same_kind(name: str | None, kind: str | None) -> bool | None:
    """Whether a run recorded with the CPU ``name`` and ``kind`` (:func:`cpu_kind`; None for runs stored before it
    was recorded) ran on this kind of CPU; None when the record cannot tell (nothing, or only this CPU's name)."""
    if kind is not None:
        return kind == cpu_kind()
    return None if name is None or name == cpu_model() else False


def other_cpu(name: str | None, kind: str | None) -> str | None:
    """Why a run recorded with the CPU ``name`` and ``kind`` may compute other bits here, in words; None when it ran
    on this kind of CPU or recorded none (:func:`same_kind`)."""
    same = same_kind(name, kind)
    if same or (name is None and kind is None):
        return None
    if kind is not None:
        return f"ran on a CPU of another kind ({kind}; this one: {cpu_kind()})"
    if same is False:
        return f"ran on another CPU ({name}; this one: {cpu_kind()})"
    return (
        f"recorded its CPU's name ({name}) but not its instruction set, in which CPUs of one name differ (this "
        f"one: {cpu_kind()})"
    )


def record() -> dict:
    """Everything above in one JSON-friendly dict (passwords in the command line redacted)."""
    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_kind": cpu_kind(),
        "pid": os.getpid(),
        "command": redact_command(sys.argv),
    }
