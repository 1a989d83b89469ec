"""The physics simulator runs use: its version, recorded with every study, and a check that the install is clean.

Every study runs on one MuJoCo release (``pyproject.toml`` pins the range: 3.x, because dm-control,
which the DeepMind Control tasks need, does not support MuJoCo 4 yet). Two releases compute the same
model with different floating-point rounding, so a run is bit-for-bit reproducible only on the release
that made it; a stored study records the release (``fingerprint``) and refuses to mix results of two.

MuJoCo 4 is split into ``mujoco``, ``mujoco-core`` and ``mujoco-studio``. Installing 3.x over it
removes only ``mujoco``: the other two stay, with their own ``libmujoco`` beside the new one, and
``pip check`` sees nothing wrong. :func:`check_clean` refuses such an environment with the fix.

MuJoCo writes its own warnings straight to the process's stderr, past :mod:`logging`: MuJoCo 3.17 warns that
Gymnasium's ``half_cheetah.xml`` uses the deprecated ``settotalmass`` every time the model is compiled, 15 times
per HalfCheetah trial. :func:`route_warnings` sends them through :mod:`logging` instead, each text once per process.

``import mujoco`` also loads the OpenGL platform ``MUJOCO_GL`` names (``egl``, ``osmesa``); when that platform's
library is missing, PyOpenGL fails inside the import with an ``AttributeError`` (and MuJoCo raises a
``RuntimeError`` for a name it does not know). :func:`load` turns that into
a :class:`UserError` naming the fix: every import of MuJoCo in this package goes through it.
"""

from __future__ import annotations

import functools
import logging
import os
from importlib import metadata
from types import ModuleType

from .errors import UserError, first_line

log = logging.getLogger(__name__)

LEFTOVERS = ("mujoco-core", "mujoco-studio")
"""Distributions that belong to MuJoCo 4 only; with another ``mujoco`` installed they are left over from it."""

INSTALL_RENDERER = "scripts/install-renderer"
"""What installs a headless OpenGL platform (EGL and OSMesa, from Debian's packages; as root)."""

REBUILD = "rm -rf .venv && python3 -m venv .venv && . .venv/bin/activate && pip install -e ."
"""How to rebuild a mixed environment (the README's first command starts from a new one the same way)."""


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def mujoco_version() -> str:
    return _version("mujoco") or "not installed"


def describe() -> str:
    """The simulator as studies record it: ``mujoco 3.17.0``."""
    return f"mujoco {mujoco_version()}"


def leftovers() -> list[str]:
    """``name version`` of each MuJoCo 4 part installed beside another MuJoCo release."""
    current = mujoco_version()
    found = [(name, _version(name)) for name in LEFTOVERS]
    return [f"{name} {version}" for name, version in found if version is not None and version != current]


def check_clean() -> None:
    """A :class:`UserError` naming the fix when MuJoCo 4 files are left beside another release."""
    stale = leftovers()
    if stale:
        raise UserError(
            f"this Python environment holds MuJoCo {mujoco_version()} and files left over from another release "
            f"({', '.join(stale)}): two simulators side by side; rebuild the environment: {REBUILD}"
        )


def load() -> ModuleType:
    """``import mujoco``; a :class:`UserError` naming the fix when ``MUJOCO_GL`` names a platform that is missing
    (or none MuJoCo knows)."""
    try:
        import mujoco
    except Exception as exc:  # PyOpenGL's AttributeError / ImportError for a platform library it cannot load
        platform = os.environ.get("MUJOCO_GL")
        if not platform:
            raise
        raise UserError(
            f"MuJoCo does not start with MUJOCO_GL={platform} ({first_line(exc)}): use egl or osmesa, installed "
            f"with {INSTALL_RENDERER} (as root), or unset MUJOCO_GL where nothing is rendered"
        ) from None
    return mujoco


@functools.lru_cache(maxsize=1)
def route_warnings() -> None:
    """Send MuJoCo's warnings to this module's logger, each distinct text once per process (idempotent)."""
    mujoco = load()

    seen: set[str] = set()

    def warn(text: str) -> None:
        if text not in seen:
            seen.add(text)
            log.warning("MuJoCo: %s", text)

    mujoco.set_mju_user_warning(warn)
